"""The runtime end to end with plain Python callables as models."""

from __future__ import annotations

import threading
import time
import warnings

import numpy as np
import pytest

import ncrt
from ncrt.errors import (
    ConfigError, ExecTimeoutError, ExecutionError, ModelLoadError, PlacementError, QueueFullError,
)


def double(x):
    return x * 2


def sized(size, fn=double, name=None):
    """A plain-Python model that needs ``size`` cores."""
    return ncrt.Model(name or f"m{size}", "python", ncrt.Manifest("python", pipeline_cores=size), fn)


def test_default_runtime_reserves_all_host_cores(runtime_env):
    runtime = runtime_env()
    assert [core.index for core in runtime.cores] == list(range(len(runtime.topology)))


def test_cores_are_numbered_from_zero_in_each_process(runtime_env):
    runtime = runtime_env(NCRT_INSTANCE_TYPE="inf1.6xlarge", NEURON_RT_VISIBLE_CORES="7-15")
    assert [c.index for c in runtime.cores] == list(range(9))
    assert [c.global_index for c in runtime.cores] == list(range(7, 16))
    assert runtime.cores[0].chip == 1


def test_seed_000_thirteen_cores_four_groups(runtime_env):
    runtime = runtime_env(NCRT_INSTANCE_TYPE="inf1.6xlarge", NEURON_RT_NUM_CORES="13")
    loaded = [runtime.load(sized(size)) for size in (2, 4, 3, 4)]
    assert [m.placement.label for m in loaded] == ["NC0-1", "NC2-5", "NC6-8", "NC9-12"]
    assert [m(np.ones(2)).tolist() for m in loaded] == [[2.0, 2.0]] * 4


def settled(future):
    """Wait for ``future`` without ``result()`` (a waiting caller may run its queued job itself)."""
    done = threading.Event()
    future.add_done_callback(lambda _: done.set())
    assert done.wait(5)
    return future.result()


def test_sync_calls_run_on_the_callers_runner_and_async_calls_on_the_core_thread(runtime_env):
    runtime = runtime_env()
    seen = []
    model = runtime.load(lambda x: seen.append(threading.current_thread().name) or x + 1)
    assert model(41) == 42  # on the caller's runner, holding the core: abandonable at the timeout
    assert settled(model.submit((1,))) == 2
    assert seen == ["ncrt-runner", "ncrt-nc0"]


def test_a_caller_waiting_for_a_job_nothing_started_may_run_it_on_its_runner(runtime_env):
    runtime = runtime_env()
    seen = []
    model = runtime.load(lambda x: seen.append(threading.current_thread().name) or x + 1)
    assert [model.submit((x,)).result() for x in range(20)] == list(range(1, 21))
    assert set(seen) <= {"ncrt-runner", "ncrt-nc0"} and threading.current_thread().name not in seen
    assert runtime.counters[0].executions == 20


def test_without_a_timeout_sync_calls_run_in_the_callers_thread(runtime_env):
    runtime = runtime_env(NEURON_RT_EXEC_TIMEOUT="0")
    seen = []
    model = runtime.load(lambda x: seen.append(threading.current_thread().name) or x + 1)
    assert model(41) == 42  # like nrt_execute: nothing to abandon, so no handoff at all
    assert settled(model.submit((1,))) == 2
    assert seen == ["MainThread", "ncrt-nc0"]


def test_each_caller_thread_has_its_own_runner(runtime_env):
    runtime = runtime_env(NCRT_INSTANCE_TYPE="inf1.xlarge")
    seen = []
    model = runtime.load(lambda: seen.append(threading.current_thread()), replicas=2)
    together = threading.Barrier(2, timeout=5)

    def caller() -> None:
        together.wait()
        for _ in range(3):
            model()
        together.wait()  # both callers (and so their runners) are alive until here

    callers = [threading.Thread(target=caller) for _ in range(2)]
    for thread in callers:
        thread.start()
    for thread in callers:
        thread.join(5)
    assert len(seen) == 6 and {thread.name for thread in seen} <= {"ncrt-runner", "ncrt-nc0", "ncrt-nc1"}
    runners = {thread for thread in seen if thread.name == "ncrt-runner"}
    assert 1 <= len(runners) <= 2 and not set(callers) & set(seen)  # never the callers themselves


def test_the_callers_cpu_is_read_holding_the_gil():
    """``sched_getcpu`` is read as a Python-API call: looking up the CPU (every queued job
    does) must not let the process's other threads take the GIL first."""
    import ctypes
    import os

    from ncrt import executor

    cpu = executor._current_cpu()
    assert cpu is None or cpu in os.sched_getaffinity(0)
    if executor._sched_getcpu is not None:
        assert executor._sched_getcpu._flags_ & ctypes._FUNCFLAG_PYTHONAPI


def test_models_that_forbid_inline_always_run_on_the_core_thread(runtime_env):
    runtime = runtime_env()
    seen = []
    pinned = ncrt.Model("pinned", "python", ncrt.Manifest("python"),
                        lambda: seen.append(threading.current_thread().name), inline=False)
    runtime.place(pinned, ncrt.PlacementRequest())()
    assert seen == ["ncrt-nc0"]


def test_a_callers_runner_ends_with_the_caller(runtime_env):
    runtime = runtime_env()
    runners = set()
    model = runtime.load(lambda: runners.add(threading.current_thread()))
    callers = [threading.Thread(target=lambda: [model() for _ in range(3)]) for _ in range(4)]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join(5)
    runners = {thread for thread in runners if thread.name == "ncrt-runner"}  # not the core's worker
    assert 1 <= len(runners) <= 4  # one per caller thread that found the core idle
    for runner in runners:
        runner.join(5)  # each stops once its caller is gone
        assert not runner.is_alive()


def test_a_sync_call_waits_for_a_busy_core(runtime_env):
    runtime = runtime_env(NEURON_RT_VISIBLE_CORES="0")
    gate = threading.Event()
    order = []
    blocker = runtime.load(lambda: gate.wait(5) and order.append("async"))
    with pytest.warns(ncrt.ModelSwitchWarning):
        quick = runtime.load(lambda: order.append("sync"))
    pending = blocker.submit(())
    time.sleep(0.05)
    threading.Timer(0.1, gate.set).start()
    quick()  # the core is busy: queued behind the async job, not run inline
    pending.result()
    assert order == ["async", "sync"]


def test_shared_cores_warn_and_count_model_switches(runtime_env):
    runtime = runtime_env(NCRT_INSTANCE_TYPE="inf1.6xlarge")
    b = runtime.load(sized(4, name="B"), start=2)
    with pytest.warns(ncrt.ModelSwitchWarning, match="'C' on NC5-7 shares NeuronCores with B"):
        c = runtime.load(sized(3, name="C"), start=5)
    for model in (b, c, b, c):
        model(1)
    assert runtime.counters[2].model_switches == 0  # only B runs from core 2
    assert runtime.counters[5].model_switches == 3
    assert runtime.counters[5].last_model == c.model.uid


def test_flexeg_start_that_does_not_fit_fails(runtime_env):
    runtime = runtime_env(NCRT_INSTANCE_TYPE="inf1.xlarge")
    with pytest.raises(PlacementError, match="valid start indexes: 0, 1, 2"):
        runtime.load(sized(2), start=3)


def test_a_device_index_is_a_flexeg_start_core_under_runtime_2(runtime_env):
    runtime = runtime_env(NCRT_INSTANCE_TYPE="inf1.xlarge")
    assert runtime.load(double, device_index=2).cores == (2,)
    with pytest.raises(PlacementError, match="valid start indexes: 0, 1, 2"):
        runtime.place(sized(2), ncrt.PlacementRequest(cores_per_replica=2, device_index=3))


def test_errors_inside_a_model_name_the_core(runtime_env):
    runtime = runtime_env()
    def broken(x):
        raise KeyError("weights")
    model = runtime.load(broken)
    with pytest.raises(ExecutionError, match=r"'broken' failed on NeuronCore NC0.*KeyError") as info:
        model(1)
    assert isinstance(info.value.__cause__, KeyError)
    assert info.value.core == 0
    assert runtime.counters[0].errors == 1
    with pytest.warns(ncrt.ModelSwitchWarning):
        after = runtime.load(double, device_ids=[0])
    assert after(2) == 4  # the core keeps working after an error


def test_async_submit_returns_futures_in_order(runtime_env):
    runtime = runtime_env()
    model = runtime.load(double)
    futures = [model.submit((i,)) for i in range(20)]
    assert [f.result() for f in futures] == [i * 2 for i in range(20)]


def test_one_core_runs_one_model_at_a_time_in_fifo_order(runtime_env):
    runtime = runtime_env(NEURON_RT_VISIBLE_CORES="0")
    order, active, overlap = [], [0], []
    def step(i):
        active[0] += 1
        overlap.append(active[0])
        time.sleep(0.002)
        order.append(i)
        active[0] -= 1
    model = runtime.load(step)
    futures = [model.submit((i,)) for i in range(10)]
    for future in futures:
        future.result()
    assert order == list(range(10))
    assert max(overlap) == 1


def test_disjoint_cores_run_in_parallel(runtime_env):
    runtime = runtime_env(NCRT_INSTANCE_TYPE="inf1.xlarge")
    barrier = threading.Barrier(2, timeout=5)
    models = [runtime.load(lambda: barrier.wait(), start=i) for i in (0, 1)]
    futures = [m.submit(()) for m in models]
    assert sorted(f.result() for f in futures) == [0, 1]  # both reached the barrier together


def test_exec_timeout_raises_and_runtime_stays_usable(runtime_env):
    runtime = runtime_env(NEURON_RT_EXEC_TIMEOUT="0.2", NEURON_RT_VISIBLE_CORES="0")
    release = threading.Event()
    slow = runtime.load(lambda: release.wait(10), name="slow")
    with pytest.warns(ncrt.ModelSwitchWarning):
        fast = runtime.load(double, name="fast")
    started = time.monotonic()
    with pytest.raises(ExecTimeoutError, match="'slow' did not finish.*NEURON_RT_EXEC_TIMEOUT=0.2") as info:
        slow.submit(()).result()
    assert 0.15 < time.monotonic() - started < 3
    assert info.value.status.name == "TIMEOUT"
    assert fast(21) == 42  # the same core, reset, runs the next model
    assert runtime.counters[0].timeouts == 1
    release.set()


def test_a_sync_call_past_the_timeout_fails_at_the_timeout_and_frees_the_core(runtime_env):
    runtime = runtime_env(NEURON_RT_EXEC_TIMEOUT="0.2", NEURON_RT_VISIBLE_CORES="0")
    release = threading.Event()
    slow = runtime.load(lambda: release.wait(10) or "late", name="slow")
    with pytest.warns(ncrt.ModelSwitchWarning):
        fast = runtime.load(double, name="fast")
    started = time.monotonic()
    with pytest.raises(ExecTimeoutError, match="'slow' did not finish"):
        slow()
    assert time.monotonic() - started < 0.2 * 1.1 + 0.05
    assert fast(2) == 4  # at once, on the same core, while slow still hangs in the background
    assert runtime.counters[0].timeouts == 1
    release.set()


def test_queued_time_does_not_count_toward_the_exec_timeout(runtime_env):
    runtime = runtime_env(NEURON_RT_EXEC_TIMEOUT="0.3", NEURON_RT_VISIBLE_CORES="0")
    model = runtime.load(lambda: time.sleep(0.1))
    futures = [model.submit(()) for _ in range(5)]  # 0.5 s in total, each 0.1 s
    for future in futures:
        future.result()


def test_inflight_limit_errors_when_asked(runtime_env):
    runtime = runtime_env(NEURON_MAX_NUM_INFERS="2", NCRT_QUEUE_FULL="error")
    gate = threading.Event()
    model = runtime.load(lambda: gate.wait(5))
    first, second = model.submit(()), model.submit(())
    with pytest.raises(QueueFullError, match="2 inferences .NEURON_MAX_NUM_INFERS."):
        model.submit(())
    gate.set()
    first.result(), second.result()
    assert model.submit(()).result() is True


def test_inflight_limit_blocks_by_default(runtime_env):
    runtime = runtime_env(NEURON_MAX_NUM_INFERS="1")
    gate = threading.Event()
    model = runtime.load(lambda: gate.wait(5))
    model.submit(())
    done = []
    caller = threading.Thread(target=lambda: done.append(model.submit(()).result()))
    caller.start()
    time.sleep(0.2)
    assert done == []  # still waiting for room
    gate.set()
    caller.join(5)
    assert done == [True]


def test_default_inflight_limit_is_cores_plus_three(runtime_env):
    runtime = runtime_env(NCRT_INSTANCE_TYPE="inf1.6xlarge", NEURON_RT_NUM_CORES="4")
    assert runtime.inflight_limit == 7


def test_async_exec_limit_applies_per_core(runtime_env):
    runtime = runtime_env(NEURON_RT_ASYNC_EXEC_MAX_INFLIGHT_REQUESTS="1", NCRT_QUEUE_FULL="error")
    gate = threading.Event()
    model = runtime.load(lambda: gate.wait(5), device_ids=[0])
    pending = model.submit(())
    with pytest.raises(QueueFullError, match="asynchronous requests on NC0"):
        model.submit(())
    gate.set()
    assert pending.result() is True


def test_replicas_spread_calls_over_their_cores(runtime_env):
    runtime = runtime_env(NCRT_INSTANCE_TYPE="inf1.xlarge")
    names = []
    model = runtime.load(lambda: names.append(threading.current_thread().name) or time.sleep(0.01), replicas=4)
    futures = [model.submit(()) for _ in range(8)]
    for future in futures:
        future.result()
    assert sorted(set(names)) == ["ncrt-nc0", "ncrt-nc1", "ncrt-nc2", "ncrt-nc3"]
    assert sum(runtime.counters[i].executions for i in range(4)) == 8


def test_multi_core_replica_holds_all_its_cores(runtime_env):
    runtime = runtime_env(NCRT_INSTANCE_TYPE="inf1.xlarge")
    active, peak = [0], [0]
    lock = threading.Lock()
    def work():
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(0.02)
        with lock:
            active[0] -= 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ncrt.ModelSwitchWarning)
        wide = runtime.load(sized(3, work, "wide"), start=0)
        narrow = runtime.load(sized(1, work, "narrow"), start=2)  # shares NC2 with wide
    futures = [m.submit(()) for m in (wide, narrow, wide, narrow)]
    for future in futures:
        future.result()
    assert peak[0] == 1


def test_unknown_artifact_is_a_clear_load_error(runtime_env):
    runtime = runtime_env()
    with pytest.raises(ModelLoadError, match="no ncrt plugin can load int"):
        runtime.load(42)


def test_unloaded_model_cannot_run(runtime_env):
    runtime = runtime_env()
    model = runtime.load(double)
    model.unload()
    assert runtime.table.is_free(model.cores)
    with pytest.raises(ModelLoadError, match="unloaded"):
        model(1)


def test_bad_configuration_fails_at_start_up(runtime_env):
    with pytest.raises(ConfigError, match="NEURON_RT_VISIBLE_CORES='5-2'"):
        runtime_env(NEURON_RT_VISIBLE_CORES="5-2")


def test_num_cores_larger_than_the_host_fails(runtime_env):
    with pytest.raises(ConfigError, match="NEURON_RT_NUM_CORES"):
        runtime_env(NCRT_INSTANCE_TYPE="inf1.xlarge", NEURON_RT_NUM_CORES="5")


def test_strict_mode_refuses_non_contiguous_cores(runtime_env):
    with pytest.warns(RuntimeWarning, match="consecutive"):
        runtime = runtime_env(NCRT_INSTANCE_TYPE="inf1.xlarge", NEURON_RT_VISIBLE_CORES="1,3")
    assert [c.global_index for c in runtime.cores] == [1, 3]
    ncrt.reset_runtime()
    with pytest.raises(ConfigError):
        runtime_env(NCRT_INSTANCE_TYPE="inf1.xlarge", NEURON_RT_VISIBLE_CORES="1,3", NCRT_STRICT="1")


def test_describe_lists_models_and_counters(runtime_env):
    runtime = runtime_env(NCRT_INSTANCE_TYPE="inf1.xlarge", NEURON_RT_NUM_CORES="2")
    model = runtime.load(double, name="dbl")
    model(1)
    described = runtime.describe()
    assert described["models"][0]["name"] == "dbl"
    assert described["cores"][0]["models"] == ["dbl"]
    assert described["cores"][0]["executions"] == 1


def test_reset_releases_cores_for_the_next_runtime(runtime_env):
    first = runtime_env(NCRT_INSTANCE_TYPE="inf1.xlarge")
    assert len(first.cores) == 4
    ncrt.reset_runtime()
    assert first.reservation.held is False
    assert len(ncrt.get_runtime().cores) == 4


def test_a_name_given_at_load_names_the_model_everywhere(runtime_env):
    runtime = runtime_env()
    model = runtime.load(lambda: 1, name="resnet")
    assert model.model.uid.startswith("resnet#") and "resnet#" in repr(model)


def test_a_multi_core_replica_keeps_all_its_cores_busy(runtime_env):
    runtime = runtime_env(NCRT_INSTANCE_TYPE="inf1.xlarge")
    model = runtime.load(sized(3, lambda: time.sleep(0.05)))
    model()
    busy = [runtime.counters[i].busy_seconds for i in range(4)]
    assert all(seconds >= 0.04 for seconds in busy[:3]) and busy[3] == 0
    assert [runtime.counters[i].executions for i in range(3)] == [1, 0, 0]
