"""The ``neuron`` marker fails a test that leaves models or reserved cores behind."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def test_models_the_test_no_longer_references_are_not_leaks(inner):
    inner.makepyfile(test_clean='''
        import pytest
        import ncrt

        MARK = pytest.mark.neuron(instance="inf1.xlarge")

        @pytest.fixture
        def model():
            return ncrt.load(lambda x: x * 2, name="from_fixture")  # no teardown of its own

        @MARK
        def test_local_model():
            model = ncrt.load(lambda x: x + 1, name="local")
            assert model(1) == 2
            future = model.submit((5,))
            assert future.result() == 6

        @MARK
        def test_fixture_model(model):
            assert model(3) == 6

        @MARK
        def test_unloaded_model():
            KEEP.append(ncrt.load(lambda x: x, name="unloaded"))
            KEEP[-1].unload()

        @MARK
        def test_runtime_closed_by_the_test():
            KEEP.append(ncrt.load(lambda x: x, name="closed"))
            ncrt.reset_runtime()

        KEEP = []
    ''')
    inner.runpytest().assert_outcomes(passed=4)


def test_a_model_kept_in_a_global_fails_the_test_naming_it(inner):
    inner.makepyfile(test_leak='''
        import pytest
        import ncrt

        CACHE = {}

        @pytest.mark.neuron(instance="inf1.xlarge", visible_cores="1-3")
        def test_caches_a_model():
            CACHE["model"] = ncrt.load(lambda x: x, name="cached", replicas=2)
            CACHE["model"](1)
            dropped = ncrt.load(lambda x: x, name="dropped", start=2)
            assert dropped(1) == 1 and dropped.submit((2,)).result() == 2  # its jobs ran last

        @pytest.mark.neuron(instance="inf1.xlarge")
        def test_next_test_gets_every_core():
            assert CACHE["model"].runtime.closed
            assert len(ncrt.get_runtime().cores) == 4
    ''')
    result = inner.runpytest()
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines([
        "*ERROR at teardown of test_caches_a_model*",
        "ResourceLeakError: test_leak.py::test_caches_a_model ended with NeuronCores or models still held*",
    ])
    output = result.stdout.str()
    assert ("  - model 'cached' [python] on NC0-1 (global 1-2) is still referenced after the test (a global, a "
            "cache, a fixture of wider scope or a thread): drop the reference, or call its unload()") in output
    assert "'dropped'" not in output and "During handling" not in output


def test_a_module_scoped_fixture_model_is_a_leak(inner):
    inner.makepyfile(test_scoped='''
        import pytest
        import ncrt

        @pytest.fixture(scope="module")
        def shared_model():
            return ncrt.load(lambda x: x, name="module_model")

        @pytest.mark.neuron(instance="inf1.xlarge")
        def test_uses_it(shared_model):
            assert shared_model(1) == 1

        def test_module_fixture_still_alive(shared_model):
            assert shared_model.runtime.closed  # the marker closed the runtime it was placed in
    ''')
    result = inner.runpytest()
    result.assert_outcomes(passed=2, errors=1)
    assert "model 'module_model' [python] on NC0 (global 0) is still referenced" in result.stdout.str()


def test_a_failing_test_is_not_also_reported_for_the_models_its_traceback_holds(inner):
    inner.makepyfile(test_failing='''
        import pytest
        import ncrt

        @pytest.mark.neuron(instance="inf1.xlarge")
        def test_fails():
            model = ncrt.load(lambda x: x, name="in_traceback")
            assert model(1) == 2
    ''')
    result = inner.runpytest()
    result.assert_outcomes(failed=1)
    assert "ResourceLeakError" not in result.stdout.str()


def test_a_runtime_the_test_keeps_open_is_a_reservation_leak(inner):
    inner.makepyfile(test_open='''
        import os
        import pytest
        import ncrt

        OPEN = []

        @pytest.mark.neuron(instance="inf1.xlarge", num_cores=2)
        def test_opens_a_second_runtime():
            ncrt.get_runtime()  # cores 0-1, released by the plugin
            OPEN.append(ncrt.Runtime(environ=dict(os.environ)))  # cores 2-3, kept open
    ''')
    result = inner.runpytest()
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines([
        f"*global cores 2-3 are still reserved by this test process (pid {os.getpid()})*close() or release() it*",
    ])


@pytest.mark.slow
def test_a_process_left_holding_cores_is_a_reservation_leak(inner, tmp_path):
    pid_file = tmp_path / "pid"
    inner.makepyfile(test_child=f'''
        import subprocess, sys
        import pytest

        @pytest.mark.neuron(instance="inf1.xlarge", num_cores=3)
        def test_starts_and_forgets_a_server():
            child = subprocess.Popen([sys.executable, {str(HERE / "apps" / "placer.py")!r}, "server",
                                      "--hold", "/nonexistent/never"], stdout=subprocess.PIPE, text=True)
            open({str(pid_file)!r}, "w").write(str(child.pid))
            while "READY" not in child.stdout.readline():
                assert child.poll() is None
    ''')
    try:
        result = inner.runpytest()
    finally:
        pid = int(pid_file.read_text()) if pid_file.exists() else 0
    assert pid
    try:
        result.assert_outcomes(passed=1, errors=1)
        result.stdout.fnmatch_lines([f"*global cores 0-2 are still reserved by pid {pid} (*placer.py server*"
                                     "a process the test started is still running; wait for it or stop it*"])
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


def test_a_failing_fixture_teardown_keeps_its_error_and_notes_the_leak(inner):
    inner.makepyfile(test_broken='''
        import os
        import pytest
        import ncrt

        OPEN = []

        @pytest.fixture
        def broken():
            yield
            raise RuntimeError("the fixture's teardown broke")

        @pytest.mark.neuron(instance="inf1.xlarge", num_cores=2)
        def test_with_a_broken_fixture(broken):
            ncrt.get_runtime()
            OPEN.append(ncrt.Runtime(environ=dict(os.environ)))

        def test_next_sees_the_environment_restored():
            assert "NEURON_RT_NUM_CORES" not in os.environ
    ''')
    result = inner.runpytest()
    result.assert_outcomes(passed=2, errors=1)
    output = result.stdout.str()
    assert "RuntimeError: the fixture's teardown broke" in output
    assert "ResourceLeakError: test_broken.py::test_with_a_broken_fixture ended with NeuronCores" in output
    assert "global cores 2-3 are still reserved by this test process" in output
