"""Ray counts emulated NeuronCores itself once ``ncrt ray link-neuron-ls`` has run.

The documented step writes ``/opt/aws/neuron/bin/neuron-ls``; here it runs in a private
namespace whose ``/opt`` is an overlay (``ray_helpers.namespaced``), then a real one-node
Ray cluster starts there with no hand-written resource. Where such namespaces are not
allowed the test is skipped; test_ray_resources.py still runs Ray's own parser on ncrt's
output.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ray_helpers import namespaced, node_environment, unavailable_reason

pytestmark = pytest.mark.slow

DRIVER = Path(__file__).with_name("detect_driver.py")


def steps(python: str) -> str:
    """Check (fails: no neuron-ls yet), link, check again, then the Ray driver."""
    return (f"rm -f /opt/aws/neuron/bin/neuron-ls; {python} -m ncrt ray check; echo CHECK-RC $?; "
            f"{python} -m ncrt ray link-neuron-ls && {python} -m ncrt ray check && exec {python} {DRIVER}")


def test_ray_detects_the_emulated_cores_through_the_linked_neuron_ls(tmp_path):
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    env = node_environment(NCRT_INSTANCE_TYPE="inf2.xlarge", NCRT_STATE_DIR=str(tmp_path))
    result = subprocess.run(namespaced(["sh", "-c", steps(sys.executable)]), env=env,
                            capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    lines = result.stdout.splitlines()
    assert lines[0] == "Ray detects 0 neuron_cores; ncrt emulates 2" and "ncrt ray link-neuron-ls" in lines[1]
    assert lines[2] == "CHECK-RC 1"
    assert lines[3].startswith("/opt/aws/neuron/bin/neuron-ls -> ") and "bin/neuron-ls: Ray now counts" in lines[3]
    assert lines[4] == "Ray detects 2 neuron_cores; ncrt emulates 2"
    report = json.loads(lines[5])
    assert report["resources"]["neuron_cores"] == 2 and report["resources"]["accelerator_type:aws-neuron-core"] == 1
    workers = report["workers"]
    assert sorted(worker["global_cores"][0] for worker in workers) == [0, 1]
    assert all(worker["ray_core_ids"] == worker["global_cores"] and worker["instance_type"] == "inf2.xlarge"
               for worker in workers)
    assert len({worker["pid"] for worker in workers}) == 2
