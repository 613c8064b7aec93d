"""pytest-xdist: a state directory per worker by default, one shared by every worker on request.

Each run starts two real xdist workers (``-n 2 --dist each``: both run the same test). The
test reserves two cores of an emulated inf1.xlarge, waits until the other worker has
reserved too (so both hold their cores at the same time), and records what it got.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

pytest.importorskip("xdist")

pytestmark = pytest.mark.slow

HOLDING_TEST = '''
import json, os, time
from pathlib import Path
import pytest
import ncrt

SYNC = Path(os.environ["SYNC_DIR"])
WORKER = os.environ["PYTEST_XDIST_WORKER"]

def barrier(name, count=2, timeout=60.0):
    (SYNC / f"{name}-{WORKER}").touch()
    deadline = time.monotonic() + timeout
    while len(list(SYNC.glob(f"{name}-*"))) < count:
        if time.monotonic() > deadline:
            pytest.fail(f"the other worker did not reach {name!r} within {timeout} s")
        time.sleep(0.02)

@pytest.mark.neuron(instance="inf1.xlarge", num_cores=2)
def test_hold_two_cores():
    cores = [core.global_index for core in ncrt.get_runtime().cores]
    barrier("reserved")  # both workers hold their cores now
    record = {"state_dir": os.environ["NCRT_STATE_DIR"], "cores": cores}
    (SYNC / f"result-{WORKER}.json").write_text(json.dumps(record))
    barrier("recorded")
'''


def run_workers(inner, tmp_path, monkeypatch, *options: str) -> list[dict]:
    sync = tmp_path / "sync"
    sync.mkdir()
    monkeypatch.setenv("SYNC_DIR", str(sync))
    inner.makepyfile(test_holding=HOLDING_TEST)
    result = inner.runpytest("-n", "2", "--dist", "each", *options)
    result.assert_outcomes(passed=2)
    return [json.loads(path.read_text()) for path in sorted(sync.glob("result-*.json"))]


def test_each_worker_gets_its_own_state_directory_by_default(inner, tmp_path, monkeypatch):
    first, second = run_workers(inner, tmp_path, monkeypatch)
    assert first["state_dir"] != second["state_dir"]
    assert first["cores"] == second["cores"] == [0, 1]  # neither sees the other's reservation
    assert not Path(first["state_dir"]).exists()  # each worker removed its own


def test_shared_state_makes_workers_contend_for_the_cores(inner, tmp_path, monkeypatch):
    first, second = run_workers(inner, tmp_path, monkeypatch, "--neuron-shared-state")
    assert first["state_dir"] == second["state_dir"]
    assert sorted(first["cores"] + second["cores"]) == [0, 1, 2, 3]  # disjoint: held at the same time
    assert not Path(first["state_dir"]).exists()  # made and removed by the controlling process


def test_a_named_state_directory_is_shared_and_kept(inner, tmp_path, monkeypatch):
    shared = tmp_path / "host-state"
    first, second = run_workers(inner, tmp_path, monkeypatch, "--neuron-state-dir", str(shared))
    assert first["state_dir"] == second["state_dir"] == str(shared)
    assert sorted(first["cores"] + second["cores"]) == [0, 1, 2, 3]
    assert shared.is_dir() and oct(shared.stat().st_mode & 0o777) == "0o700"
    assert sorted(path.name for path in shared.glob("core-*.lock")) == [f"core-00{i}.lock" for i in range(4)]


def test_without_xdist_the_shared_directory_is_shared_by_every_test(inner, tmp_path):
    inner.makepyfile(test_two='''
        import os
        import pytest

        SEEN = []

        @pytest.mark.neuron(instance="inf1.xlarge")
        def test_one():
            SEEN.append(os.environ["NCRT_STATE_DIR"])

        def test_two(neuron_state_dir):
            assert str(neuron_state_dir) == SEEN[0]
    ''')
    inner.runpytest("--neuron-shared-state").assert_outcomes(passed=2)
    assert "NCRT_STATE_DIR" in os.environ  # the outer test's own, untouched


def test_an_unsafe_state_directory_is_a_usage_error(inner, tmp_path):
    unsafe = tmp_path / "shared"
    unsafe.mkdir(mode=0o777)
    unsafe.chmod(0o777)
    inner.makepyfile(test_nothing="def test_nothing():\n    pass\n")
    result = inner.runpytest("--neuron-state-dir", str(unsafe))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*--neuron-state-dir: ncrt state path {unsafe} is group- or world-writable (mode 0o777)*"])
