"""Every examples/torch script runs with the env of its ``# env:`` line and prints its placements."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "torch"

EXPECTED = {
    "dataparallel_default.py": ["model_parallel -> NC0-3", "matches the plain model"],
    "dataparallel_device_ids.py": ["model_parallel -> NC0-2"],
    "dataparallel_dim2.py": ["cannot enable dynamic batching: dim=2", "model_parallel -> NC0-3"],
    "dataparallel_dynamic_batching.py": [f"batch {size}: output ({size}, 10) matches" for size in range(2, 7)],
    "dataparallel_no_dynamic_batching.py": ["batch 8 refused", "got 8 / 4 = 2", "batch 4: output (4, 10) matches"],
    "multiple_models_one_group.py": ["model0 -> NC0", "model1 -> NC1"],
    "pipeline_cores.py": ["model_neuron -> NC0-1", "stage 0 on NC0: features_0 .. ", "stage 1 on NC1: ",
                          "16 requests streamed through both stages (NC0 16 runs, NC1 16 runs); outputs match"],
    "model_groups_one_process.py": ["model0 -> NC0-1", "model1 -> NC2-5", "model2 -> NC6-8", "model3 -> NC9-12"],
    "two_processes.py": ["model0 -> NC0 (global nc0; the process holds nc0-nc1)",
                         "model0 -> NC0 (global nc2; the process holds nc2-nc3)"],
    "explicit_core_selection.py": ["m0 -> NC0-1", "m1 -> NC2-3", "m2 -> NC0-2", "m3 -> NC3"],
    "explicit_multicore.py": ["m0 -> NC0-7 (8 replicas)", "executions per core: [1, 1, 1, 1, 1, 1, 1, 1]"],
    "explicit_replication.py": ["m0 -> NC2-5 (replicas NC2-3, NC4-5)"],
    "unload_and_dataparallel.py": ["load 0 -> NC0", "load 1 -> NC0", "load 2 -> NC0",
                                   "DataParallel over a loaded model: placed ['NC0-3']",
                                   "after both are freed: placed []"],
}


def example_env(path: Path) -> dict[str, str]:
    line = next(line for line in path.read_text().splitlines() if line.startswith("# env:"))
    return dict(re.findall(r"(\w+)=(\S+)", line))


def test_every_example_is_checked():
    assert sorted(EXPECTED) == sorted(p.name for p in EXAMPLES.glob("*.py") if not p.name.startswith("_"))


DRIVER = """
import os, runpy, sys, warnings
warnings.simplefilter("ignore")
import ncrt
sys.path.insert(0, EXAMPLES)  # the examples share examples/torch/_cnn.py, as when run as scripts
base = dict(os.environ)
for name, assignments in zip(sys.argv[1::2], sys.argv[2::2]):
    os.environ.clear()
    os.environ.update(base)
    os.environ.update(dict(item.split("=", 1) for item in assignments.split()))
    ncrt.reset_runtime()
    print("=== " + name, flush=True)
    runpy.run_path(os.path.join(EXAMPLES, name), run_name="__main__")
"""


@pytest.fixture(scope="module")
def example_outputs(tmp_path_factory) -> dict[str, str]:
    """Run every example in one interpreter (torch is imported once), each with its env."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NEURON", "NCRT_"))}
    env.update(NCRT_STATE_DIR=str(tmp_path_factory.mktemp("state")), PYTHONWARNINGS="ignore")
    args = []
    for name in sorted(EXPECTED):
        args += [name, " ".join(f"{k}={v}" for k, v in example_env(EXAMPLES / name).items())]
    code = DRIVER.replace("EXAMPLES", repr(str(EXAMPLES)))
    out = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    parts = re.split(r"^=== (\S+)$", out.stdout, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2]))


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_runs_and_prints_its_placement(name, example_outputs):
    for expected in EXPECTED[name]:
        assert expected in example_outputs[name], example_outputs[name]
