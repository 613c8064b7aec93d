"""``neuron_process``: programs run under ncrt in their own processes, with their placements."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import pytest

import ncrt
from ncrt.errors import BadInputError, ConfigError, ProcessTimeoutError
from ncrt.testing import ModelPlacement, NeuronRun

PLACER = Path(__file__).resolve().parent / "apps" / "placer.py"

pytestmark = pytest.mark.slow


def test_a_run_returns_exit_status_output_and_each_models_placement(neuron_process):
    result = neuron_process(PLACER, "A", "Bx2", "C@0", instance="inf1.xlarge", visible_cores="1-3")
    assert isinstance(result, NeuronRun)
    assert result.returncode == 0 and result.exit_status == 0
    assert "compat installed: True" in result.stdout  # run as `ncrt run` runs it
    assert "A -> NC0 global [1]" in result.stdout
    assert [model.name for model in result.models] == ["A", "B", "C"]
    a, b, c = result.models
    assert a == result.model("A") == result.placement.model("A")
    assert isinstance(a, ModelPlacement)
    assert (a.framework, a.cores, a.global_cores, a.replicas, a.label) == ("python", (0,), (1,), 1, "NC0")
    assert (b.cores, b.global_cores, b.replicas, b.replica_cores) == ((1, 2), (2, 3), 2, ((1,), (2,)))
    assert b.global_label == "2-3"
    assert c.shared_with == ("A",) and c.global_cores == (1,)
    assert c.executions == {"NC0": 2}  # the core's executions: A and C both ran on NC0
    assert (a.model_switches, b.model_switches, c.model_switches) == (1, 0, 1)
    assert result.placement.reserved_cores == (1, 2, 3)
    assert result.placement.topology == "inf1.xlarge:4x4"
    assert result.placement.settings["NEURON_RT_VISIBLE_CORES"] == "1-3"
    with pytest.raises(KeyError, match=r"has no model named 'D' \(loaded: A, B, C\)"):
        result.model("D")


def test_the_process_gets_only_the_variables_given(neuron_process, monkeypatch):
    monkeypatch.setenv("NEURON_RT_NUM_CORES", "1")  # the test's own, not passed on
    monkeypatch.setenv("NCRT_INSTANCE_TYPE", "inf1.xlarge")  # the test's instance is
    result = neuron_process([sys.executable, "-c", "import os, ncrt; print(len(ncrt.get_runtime().cores), "
                             "os.environ['NCRT_INSTANCE_TYPE'], os.environ['EXTRA'], os.environ['WHERE'])"],
                            env={"EXTRA": "yes", "WHERE": Path("/some/path")})
    assert result.check().stdout.split() == ["4", "inf1.xlarge", "yes", "/some/path"]


def test_several_processes_share_the_hosts_cores(neuron_process, tmp_path):
    release = tmp_path / "release"
    first = neuron_process.start(PLACER, "first", "--hold", release, instance="inf1.xlarge", num_cores=2)
    first.wait_for_output("READY")
    second = neuron_process(PLACER, "second", instance="inf1.xlarge", num_cores=2)
    assert second.check().model("second").global_cores == (2,)
    assert second.placement.reserved_cores == (2, 3)
    refused = neuron_process(PLACER, "third", instance="inf1.xlarge", num_cores=3)
    assert refused.returncode == 1 and refused.processes == ()
    assert "CoresUnavailableError" in refused.stderr and str(first.pid) in refused.stderr
    release.touch()
    assert first.wait().check().placement.reserved_cores == (0, 1)


def test_a_killed_holder_frees_its_cores_at_once(neuron_process, tmp_path):
    holder = neuron_process.start(PLACER, "holder", "--hold", tmp_path / "never", instance="inf1.xlarge")
    holder.wait_for_output("READY")
    holder.kill()
    killed = holder.wait()
    assert (killed.returncode, killed.exit_status, killed.processes) == (-signal.SIGKILL, 137, ())
    with pytest.raises(AssertionError, match="wrote no placement report"):
        killed.placement
    after = neuron_process(PLACER, "after", instance="inf1.xlarge")
    assert after.check().placement.reserved_cores == (0, 1, 2, 3)


def test_a_failing_program_reports_its_status_and_output(neuron_process):
    result = neuron_process(PLACER, "A", "--exit", "3", instance="inf1.xlarge")
    assert result.returncode == 3
    assert result.model("A").global_cores == (0,)  # it exited normally: the report is written
    with pytest.raises(AssertionError, match=r"(?s)exited with status 3.*--- stdout ---.*A -> NC0"):
        result.check()


def test_a_process_past_its_time_limit_is_killed(neuron_process):
    process = neuron_process.start(PLACER, "--sleep", "60", instance="inf1.xlarge", timeout=0.5)
    with pytest.raises(ProcessTimeoutError, match=r"was still running after 0.5 s and was killed") as caught:
        process.wait()
    assert caught.value.status.name == "TIMEOUT"
    assert not process.running


def test_a_program_that_never_prints_what_is_awaited(neuron_process):
    quiet = neuron_process.start(PLACER, instance="inf1.xlarge")
    with pytest.raises(AssertionError, match="exited with status 0 without printing 'READY'"):
        quiet.wait_for_output("READY", timeout=60)


@pytest.mark.neuron(instance="inf1.xlarge", num_cores=2)
def test_processes_share_the_cores_of_a_marked_test(neuron_process, neuron_state_dir):
    runtime = ncrt.get_runtime()
    assert runtime.state_dir == neuron_state_dir
    assert [core.global_index for core in runtime.cores] == [0, 1]
    child = neuron_process(PLACER, "child", num_cores=2)  # the marker's instance, the same state dir
    assert child.check().model("child").global_cores == (2,)


def test_bad_arguments(neuron_process):
    with pytest.raises(BadInputError, match="unknown argument.*cores; accepted: instance, num_cores"):
        neuron_process.start(PLACER, cores=2)
    with pytest.raises(BadInputError, match="command .* is not valid"):
        neuron_process.start([])
    with pytest.raises(ConfigError, match="NEURON_RT_VISIBLE_CORES"):
        neuron_process.start(PLACER, visible_cores={"a": 1})
    with pytest.raises(BadInputError, match="cannot start /nonexistent/program"):
        neuron_process.start("/nonexistent/program")
    assert neuron_process.started == []


def test_a_process_still_running_when_the_test_ends_fails_it_and_is_killed(inner, tmp_path):
    inner.makepyfile(test_left=f'''
        def test_leaves_a_server_running(neuron_process):
            server = neuron_process.start({str(PLACER)!r}, "server", "--hold", {str(tmp_path / "never")!r},
                                          instance="inf1.xlarge")
            server.wait_for_output("READY")
            open({str(tmp_path / "pid")!r}, "w").write(str(server.pid))
    ''')
    result = inner.runpytest()
    result.assert_outcomes(passed=1, errors=1)
    pid = (tmp_path / "pid").read_text()
    result.stdout.fnmatch_lines([f"*ResourceLeakError: test_left.py::test_leaves_a_server_running ended with "
                                 f"process(es) still running, now killed: *placer.py server* (pid {pid})*"])
    assert not Path(f"/proc/{pid}").exists()
