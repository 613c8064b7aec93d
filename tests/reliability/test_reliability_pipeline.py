"""NeuronCore Pipeline requests keep the executor's promises: timeouts, freed cores, errors.

A two-stage pipelined model (stage k on NC k of an emulated inf1.xlarge) whose stage 0 or
stage 1 never returns for one request: its caller gets ExecTimeoutError within
1.1 T + 50 ms, synchronous or not, waited for or not, and afterwards both cores serve the
pipeline and other models at once. Requests queued behind the stuck stage get their
outcome within the same bound. An error raised in stage k fails only the request it
belongs to, under concurrent load.
"""

from __future__ import annotations

import threading
import time
import warnings

import pytest

import ncrt
from ncrt.errors import ExecTimeoutError, ExecutionError
from ncrt.pipeline import StageSpec
from deadlines import TIMEOUTS, bound

pytestmark = pytest.mark.slow


def stage(index: int, hang: threading.Event) -> StageSpec:
    """Stage ``index``: passes ``(tag, n)`` on, adding ``index`` to ``n``; the tag says what to do here:
    ``hang<k>`` never returns in stage k, ``fail<k>`` raises in stage k."""
    def run(model, value, core):
        tag, n = value  # stage 0 gets the call's positional inputs, stage 1 what stage 0 returned
        if tag == f"hang{index}":
            hang.wait(60)
            return tag, -1
        if tag == f"fail{index}":
            raise ValueError(f"bad input {n} in stage {index}")
        return tag, n + index

    return StageSpec(None, run, f"stage{index}")


def pipelined(runtime: ncrt.Runtime, hang: threading.Event) -> ncrt.LoadedModel:
    model = ncrt.Model("piped", "python", ncrt.Manifest("python", pipeline_cores=2), lambda *args: args,
                       stages=[stage(0, hang), stage(1, hang)])
    loaded = runtime.place(model, ncrt.PlacementRequest(cores_per_replica=2, device_ids=(0, 1)))
    assert loaded.pipelines is not None and [s.core.index for s in loaded.pipelines[0].stages] == [0, 1]
    return loaded


def quick(runtime: ncrt.Runtime, core: int) -> ncrt.LoadedModel:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ncrt.ModelSwitchWarning)
        return runtime.load(ncrt.Model(f"quick{core}", "python", ncrt.Manifest("python"), lambda x: x * 2),
                            device_ids=[core])


def timed(call):
    """(the error call raised, seconds it took)."""
    started = time.monotonic()
    with pytest.raises(ExecTimeoutError) as info:
        call()
    return info.value, time.monotonic() - started


def assert_usable_at_once(runtime: ncrt.Runtime, loaded: ncrt.LoadedModel) -> None:
    """The pipeline and a plain model on each of its cores answer right away."""
    started = time.monotonic()
    assert loaded("ok", 1) == ("ok", 2)
    assert loaded.submit(("ok", 5)).result() == ("ok", 6)
    assert [quick(runtime, core)(21) for core in (0, 1)] == [42, 42]
    assert time.monotonic() - started < 0.5
    assert loaded.pipelines[0].in_flight() == [0, 0]


@pytest.mark.parametrize("synchronous", [True, False], ids=["sync", "async"])
@pytest.mark.parametrize("stuck", [0, 1])
@pytest.mark.parametrize("timeout", TIMEOUTS)
def test_a_stage_that_never_returns_times_its_caller_out(runtime_env, hang, timeout, stuck, synchronous):
    runtime = runtime_env(NEURON_RT_EXEC_TIMEOUT=str(timeout), NCRT_INSTANCE_TYPE="inf1.xlarge")
    loaded = pipelined(runtime, hang)
    call = (lambda: loaded(f"hang{stuck}", 0)) if synchronous else (lambda: loaded.submit((f"hang{stuck}", 0)).result())
    error, waited = timed(call)
    assert waited <= bound(timeout), waited
    assert timeout * 0.95 <= waited, waited  # not earlier than T either
    assert f"stage {stuck} of 2 of model 'piped' did not finish on NeuronCore NC{stuck}" in str(error)
    assert error.status.name == "TIMEOUT"
    assert_usable_at_once(runtime, loaded)
    assert [runtime.counters[core].timeouts for core in (0, 1)] == [int(stuck == 0), int(stuck == 1)]


@pytest.mark.parametrize("timeout", [0.5, 1.0])
def test_requests_queued_behind_a_stuck_stage_get_their_outcome_in_time(runtime_env, hang, timeout):
    runtime = runtime_env(NEURON_RT_EXEC_TIMEOUT=str(timeout), NCRT_INSTANCE_TYPE="inf1.xlarge",
                          NEURON_MAX_NUM_INFERS="32")
    loaded = pipelined(runtime, hang)
    stuck = loaded.submit(("hang1", 0))
    outcomes: list[tuple[str, float, object]] = []
    lock = threading.Lock()

    def wait_for(name: str, started: float, get) -> None:
        try:
            value = get()
        except ExecTimeoutError as error:
            value = error
        with lock:
            outcomes.append((name, time.monotonic() - started, value))

    started = time.monotonic()
    futures = [loaded.submit(("ok", n)) for n in range(5)]
    callers = [threading.Thread(target=wait_for, args=(f"sync{n}", time.monotonic(), lambda n=n: loaded("ok", n)))
               for n in range(3)]
    for caller in callers:
        caller.start()
    wait_for("stuck", started, stuck.result)
    for n, future in enumerate(futures):
        wait_for(f"async{n}", started, future.result)
    for caller in callers:
        caller.join(bound(timeout) + 5)
    assert len(outcomes) == 9
    late = [(name, waited) for name, waited, _ in outcomes if waited > bound(timeout) + 0.1]
    assert not late, late
    by_name = {name: value for name, _, value in outcomes}
    assert isinstance(by_name["stuck"], ExecTimeoutError) and "stage 1 of 2" in str(by_name["stuck"])
    for name, value in by_name.items():  # each got its own result, or a timeout of its own
        n = int(name[-1]) if name != "stuck" else None
        assert name == "stuck" or value == ("ok", n + 1) or isinstance(value, ExecTimeoutError), (name, value)
    assert_usable_at_once(runtime, loaded)


def test_a_stuck_request_nobody_waits_for_is_abandoned_and_frees_its_core(runtime_env, hang):
    runtime = runtime_env(NEURON_RT_EXEC_TIMEOUT="0.5", NCRT_INSTANCE_TYPE="inf1.xlarge")
    loaded = pipelined(runtime, hang)
    forgotten = loaded.submit(("hang1", 0))
    done = threading.Event()
    forgotten.add_done_callback(lambda _: done.set())
    assert done.wait(bound(0.5) + 0.1)  # the watchdog settled it: callbacks run, the cores are free
    assert isinstance(forgotten.exception(), ExecTimeoutError)
    assert_usable_at_once(runtime, loaded)


def test_the_stuck_stages_late_result_is_discarded(runtime_env, hang):
    runtime = runtime_env(NEURON_RT_EXEC_TIMEOUT="0.5", NCRT_INSTANCE_TYPE="inf1.xlarge")
    loaded = pipelined(runtime, hang)
    future = loaded.submit(("hang0", 0))
    with pytest.raises(ExecTimeoutError):
        future.result()
    hang.set()  # the runaway stage returns now
    time.sleep(0.2)
    assert isinstance(future.exception(), ExecTimeoutError)
    assert loaded.pipelines[0].in_flight() == [0, 0]  # the late value entered no stage
    assert loaded("ok", 3) == ("ok", 4)


@pytest.mark.parametrize("failing", [0, 1])
def test_an_error_in_stage_k_reaches_only_its_request_under_load(runtime_env, hang, failing):
    runtime = runtime_env(NEURON_RT_EXEC_TIMEOUT="2", NCRT_INSTANCE_TYPE="inf1.xlarge", NEURON_MAX_NUM_INFERS="32")
    loaded = pipelined(runtime, hang)
    results: dict[tuple[int, int], object] = {}
    lock = threading.Lock()

    def feed(thread: int) -> None:
        for n in range(30):
            tag = f"fail{failing}" if n % 3 == 0 else "ok"
            try:
                value = loaded(tag, n) if n % 2 else loaded.submit((tag, n)).result()
            except ExecutionError as error:
                value = error
            with lock:
                results[(thread, n)] = value

    threads = [threading.Thread(target=feed, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(results) == 120
    for (thread, n), value in results.items():
        if n % 3 == 0:
            assert isinstance(value, ExecutionError) and not isinstance(value, ExecTimeoutError), value
            assert f"bad input {n} in stage {failing}" in str(value)
            assert f"stage {failing} of 2 of model 'piped'" in str(value) and f"NC{failing}" in str(value)
        else:
            assert value == ("ok", n + 1), ((thread, n), value)
    stats = {entry["stage"]: entry for entry in loaded.describe()["stages"]}
    assert stats[failing]["errors"] == 40 and stats[1 - failing]["errors"] == 0
    assert loaded.pipelines[0].in_flight() == [0, 0]
    # one job of several calls fails as a whole when one of its calls fails; the others' jobs do not
    job = loaded.run_many([("ok", 1), (f"fail{failing}", 2), ("ok", 3)])
    others = [loaded.submit(("ok", n)) for n in range(4)]
    with pytest.raises(ExecutionError, match=f"bad input 2 in stage {failing}"):
        job.result()
    assert [future.result() for future in others] == [("ok", n + 1) for n in range(4)]
    assert [runtime.counters[core].timeouts for core in (0, 1)] == [0, 0]
