"""The timeout matrix: every caller gets ExecTimeoutError within 1.1 T + 50 ms.

Models that never return (they wait on an event released at teardown) are called
synchronously, asynchronously, queued behind another call, as several calls of one job,
on a multi-core replica and through the data-parallel runner, for T = 0.5, 1 and 2 s.
After each timeout the core serves other models at once and the runaway's late result
is discarded.
"""

from __future__ import annotations

import threading
import time
import warnings

import numpy as np
import pytest

import ncrt
from ncrt.adapters.numpy import ADAPTER as numpy_ops
from ncrt.errors import ExecTimeoutError
from ncrt.parallel import DataParallelRunner
from deadlines import TIMEOUTS, bound

pytestmark = pytest.mark.slow


def never_returns(hang: threading.Event, name: str = "stuck", cores: int = 1, batch: int | None = None) -> ncrt.Model:
    manifest = ncrt.Manifest("python", pipeline_cores=cores, batch_size=batch)
    return ncrt.Model(name, "python", manifest, lambda *args: hang.wait(60) and "late")


def quick(name: str = "quick") -> ncrt.Model:
    return ncrt.Model(name, "python", ncrt.Manifest("python"), lambda x: x * 2)


def timed(call):
    """(the error call raised, seconds it took)."""
    started = time.monotonic()
    with pytest.raises(ExecTimeoutError) as info:
        call()
    return info.value, time.monotonic() - started


def load_shared(runtime: ncrt.Runtime, model: ncrt.Model, **placement) -> ncrt.LoadedModel:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ncrt.ModelSwitchWarning)
        return runtime.load(model, **placement)


@pytest.mark.parametrize("timeout", TIMEOUTS)
def test_a_synchronous_call_that_never_returns(runtime_env, hang, timeout):
    runtime = runtime_env(NEURON_RT_EXEC_TIMEOUT=str(timeout), NEURON_RT_VISIBLE_CORES="0")
    stuck = runtime.load(never_returns(hang))
    other = load_shared(runtime, quick(), device_ids=[0])
    error, waited = timed(lambda: stuck())
    assert waited <= bound(timeout), waited
    assert error.status.name == "TIMEOUT" and "'stuck' did not finish on NeuronCore NC0" in str(error)
    started = time.monotonic()
    assert other(21) == 42  # the same core, right after
    assert time.monotonic() - started < 0.5
    assert runtime.counters[0].timeouts == 1


@pytest.mark.parametrize("timeout", TIMEOUTS)
def test_an_asynchronous_call_that_never_returns(runtime_env, hang, timeout):
    runtime = runtime_env(NEURON_RT_EXEC_TIMEOUT=str(timeout), NEURON_RT_VISIBLE_CORES="0")
    stuck = runtime.load(never_returns(hang))
    error, waited = timed(lambda: stuck.submit(()).result())
    assert waited <= bound(timeout), waited
    assert load_shared(runtime, quick(), device_ids=[0])(1) == 2


@pytest.mark.parametrize("timeout", TIMEOUTS)
def test_calls_queued_behind_a_call_that_never_returns(runtime_env, hang, timeout):
    runtime = runtime_env(NEURON_RT_EXEC_TIMEOUT=str(timeout), NEURON_RT_VISIBLE_CORES="0")
    stuck = runtime.load(never_returns(hang))
    first = stuck.submit(())
    queued_async = stuck.submit(())
    errors, waits = [], []

    def queued_sync() -> None:
        error, waited = timed(lambda: stuck())
        errors.append(error)
        waits.append(waited)

    caller = threading.Thread(target=queued_sync)
    caller.start()
    for future in (first, queued_async):
        error, waited = timed(future.result)
        waits.append(waited)
    caller.join(bound(timeout) + 5)
    assert len(waits) == 3 and max(waits) <= bound(timeout), waits
    assert load_shared(runtime, quick(), device_ids=[0])(1) == 2


def test_a_call_queued_behind_a_runaway_says_it_never_started(runtime_env, hang):
    runtime = runtime_env(NEURON_RT_EXEC_TIMEOUT="0.5", NEURON_RT_VISIBLE_CORES="0")
    stuck = runtime.load(never_returns(hang))
    other = load_shared(runtime, quick("behind"), device_ids=[0])
    stuck.submit(())
    error, waited = timed(lambda: other.submit((1,)).result())
    assert waited <= bound(0.5)
    assert "'behind' waited NEURON_RT_EXEC_TIMEOUT=0.5 s for NeuronCore NC0" in str(error)
    assert "never started" in str(error)


@pytest.mark.parametrize("timeout", TIMEOUTS)
def test_data_parallel_over_replicas_that_never_return(runtime_env, hang, timeout):
    runtime = runtime_env(NEURON_RT_EXEC_TIMEOUT=str(timeout), NCRT_INSTANCE_TYPE="inf1.xlarge")
    loaded = runtime.load(never_returns(hang, batch=2), replicas=4)
    runner = DataParallelRunner(loaded, numpy_ops, dim=0)
    error, waited = timed(lambda: runner(np.ones((16, 3))))
    assert waited <= bound(timeout), waited
    fresh = load_shared(runtime, quick(), replicas=4)
    assert [fresh.run((np.ones(1),), replica=index)[0] for index in range(4)] == [2.0] * 4


def test_a_multi_call_job_times_out_after_the_last_call_that_finished(runtime_env, hang):
    runtime = runtime_env(NEURON_RT_EXEC_TIMEOUT="0.5", NEURON_RT_VISIBLE_CORES="0")
    calls = iter(range(10))

    def three_quick_then_stuck(_):
        if next(calls) >= 3:
            hang.wait(60)
        time.sleep(0.3)  # each call takes 0.6 T: the job as a whole takes longer than T
        return 1

    loaded = runtime.load(ncrt.Model("steps", "python", ncrt.Manifest("python"), three_quick_then_stuck))
    started = time.monotonic()
    future = loaded.run_many([(i,) for i in range(5)])
    with pytest.raises(ExecTimeoutError):
        future.result()
    assert 3 * 0.3 + 0.5 - 0.05 <= time.monotonic() - started <= 3 * 0.3 + bound(0.5)


def test_a_multi_core_replica_that_never_returns_frees_all_its_cores(runtime_env, hang):
    runtime = runtime_env(NEURON_RT_EXEC_TIMEOUT="0.5", NCRT_INSTANCE_TYPE="inf1.xlarge")
    wide = runtime.load(never_returns(hang, cores=3), start=0)
    _, waited = timed(lambda: wide())
    assert waited <= bound(0.5)
    narrow = [load_shared(runtime, quick(f"q{core}"), start=core) for core in range(3)]
    assert [model(1) for model in narrow] == [2, 2, 2]


def test_a_call_nobody_waits_for_is_abandoned_and_frees_its_core(runtime_env, hang):
    runtime = runtime_env(NEURON_RT_EXEC_TIMEOUT="0.5", NEURON_RT_VISIBLE_CORES="0")
    stuck = runtime.load(never_returns(hang))
    forgotten = stuck.submit(())
    done = threading.Event()
    forgotten.add_done_callback(lambda _: done.set())
    assert done.wait(bound(0.5))  # the watchdog settled it: callbacks run, the core is free
    assert isinstance(forgotten.exception(), ExecTimeoutError)
    started = time.monotonic()
    assert load_shared(runtime, quick(), device_ids=[0])(3) == 6
    assert time.monotonic() - started < 0.5


def test_a_result_asked_for_late_is_already_the_timeout(runtime_env, hang):
    runtime = runtime_env(NEURON_RT_EXEC_TIMEOUT="0.5", NEURON_RT_VISIBLE_CORES="0")
    future = runtime.load(never_returns(hang)).submit(())
    time.sleep(0.8)
    started = time.monotonic()
    with pytest.raises(ExecTimeoutError):
        future.result()
    assert time.monotonic() - started < 0.05


def test_the_runaway_result_is_discarded(runtime_env, hang):
    runtime = runtime_env(NEURON_RT_EXEC_TIMEOUT="0.5", NEURON_RT_VISIBLE_CORES="0")
    stuck = runtime.load(never_returns(hang))
    future = stuck.submit(())
    with pytest.raises(ExecTimeoutError):
        future.result()
    executions = runtime.counters[0].executions
    hang.set()  # the runaway call returns "late" now
    time.sleep(0.2)
    assert isinstance(future.exception(), ExecTimeoutError)
    assert runtime.counters[0].executions == executions and runtime.counters[0].timeouts == 1
    assert stuck() == "late"  # the model itself works again, on a fresh runner


def test_models_kept_on_their_core_thread_time_out_too(runtime_env, hang):
    runtime = runtime_env(NEURON_RT_EXEC_TIMEOUT="0.5", NEURON_RT_VISIBLE_CORES="0")
    model = never_returns(hang)
    model.inline = False  # a model only the core's own thread may run
    _, waited = timed(runtime.load(model))
    assert waited <= bound(0.5)


def test_a_queue_of_calls_that_each_finish_in_time_never_times_out(runtime_env):
    runtime = runtime_env(NEURON_RT_EXEC_TIMEOUT="0.5", NEURON_RT_VISIBLE_CORES="0")
    model = runtime.load(lambda: time.sleep(0.2) or 1)
    futures = [model.submit(()) for _ in range(6)]  # 1.2 s of work, 0.2 s each
    job = model.run_many([()] * 4)  # one job of 0.8 s: progress after every call
    assert [future.result() for future in futures] == [1] * 6
    assert job.result() == [1] * 4
    assert runtime.counters[0].timeouts == 0
