"""NeuronCore Pipeline in the core: balanced partitions, and stages streaming over cores."""

from __future__ import annotations

import itertools
import threading
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ncrt
from ncrt.errors import ExecTimeoutError, ExecutionError, QueueFullError
from ncrt.pipeline import STAGE_DEPTH, PipelineStagesWarning, StageSpec, balanced_stages, warn_fewer_stages


# --------------------------------------------------------------------------- partitioning


def test_even_costs_cut_in_the_middle():
    assert balanced_stages([1, 1, 1, 1], 2) == [(0, 2), (2, 4)]
    assert balanced_stages([1] * 6, 3) == [(0, 2), (2, 4), (4, 6)]


def test_one_expensive_unit_gets_a_stage_of_its_own():
    assert balanced_stages([5, 1, 1, 1, 1, 1], 2) == [(0, 1), (1, 6)]


def test_cuts_only_where_allowed():
    assert balanced_stages([1, 1, 1, 1], 2, cut_points=[1, 3]) in ([(0, 1), (1, 4)], [(0, 3), (3, 4)])
    assert balanced_stages([1, 1, 1, 1], 3, cut_points=[3]) == [(0, 3), (3, 4)]


def test_fewer_units_than_stages_gives_fewer_stages():
    assert balanced_stages([2.0], 4) == [(0, 1)]
    assert balanced_stages([1, 2], 4) == [(0, 1), (1, 2)]
    assert balanced_stages([], 2) == []


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0, 10, allow_nan=False), min_size=1, max_size=8), st.integers(1, 4))
def test_the_slowest_stage_is_as_fast_as_any_partition_allows(costs, stages):
    bounds = balanced_stages(costs, stages)
    assert bounds[0][0] == 0 and bounds[-1][1] == len(costs)
    assert all(a[1] == b[0] and a[0] < a[1] for a, b in zip(bounds, bounds[1:] + [(len(costs), None)]))
    assert len(bounds) == min(stages, len(costs))
    slowest = max(sum(costs[a:b]) for a, b in bounds)
    best = min(
        max(sum(costs[a:b]) for a, b in zip((0, *cuts), (*cuts, len(costs))))
        for cuts in itertools.combinations(range(1, len(costs)), len(bounds) - 1)
    )
    assert slowest == pytest.approx(best)


def test_fewer_stages_warn_once_naming_why():
    with pytest.warns(PipelineStagesWarning, match="cannot be cut into 4 stages: only 2 layers") as caught:
        note = warn_fewer_stages("tiny", 4, 2, "only 2 layers")
    assert len(caught) == 1 and "as 2 stages on its 4-core group, the last stage holding the 3 cores left" in note


# --------------------------------------------------------------------------- streaming


class Recorder:
    """Stage functions that record when and where each request ran."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.intervals: list[tuple[int, int, float, float, str]] = []
        self.lock = threading.Lock()

    def stage(self, index: int, fn):
        def run(model, value, core):
            tag, x = value
            start = time.monotonic()
            if self.delay:
                time.sleep(self.delay)
            result = fn(x)
            with self.lock:
                self.intervals.append((index, tag, start, time.monotonic(), threading.current_thread().name))
            return tag, result
        return StageSpec(fn, run, f"stage{index}")


def first_stage_inputs(runner):
    """Stage 0 gets the call's positional inputs: ``model(tag, x)`` -> ``(tag, x)``."""
    def run(model, value, core):
        return runner(model, tuple(value), core)
    return run


def pipelined(runtime, specs, name="piped", **request):
    specs = [StageSpec(specs[0].payload, first_stage_inputs(specs[0].runner), specs[0].label), *specs[1:]]
    whole = ncrt.Model(name, "python", ncrt.Manifest("python", pipeline_cores=len(specs)),
                       lambda *args: args, stages=specs)
    return runtime.place(whole, ncrt.PlacementRequest(cores_per_replica=len(specs), **request))


@pytest.fixture
def inf1(runtime_env):
    return runtime_env(NCRT_INSTANCE_TYPE="inf1.xlarge", NEURON_MAX_NUM_INFERS="32")


def test_outputs_equal_the_whole_model(inf1):
    recorder = Recorder()
    loaded = pipelined(inf1, [recorder.stage(0, lambda x: x + 1), recorder.stage(1, lambda x: x * 2),
                              recorder.stage(2, lambda x: x - 3)])
    values = np.arange(5.0)
    assert loaded(7, values)[1].tolist() == ((values + 1) * 2 - 3).tolist()
    assert [loaded.submit((k, k)).result()[1] for k in range(4)] == [(k + 1) * 2 - 3 for k in range(4)]
    assert [stage.core.index for stage in loaded.pipelines[0].stages] == [0, 1, 2]


def test_each_stage_runs_in_its_cores_executor(inf1):
    recorder = Recorder()
    loaded = pipelined(inf1, [recorder.stage(0, abs), recorder.stage(1, abs)])
    loaded.submit((0, -1)).result()
    assert sorted((stage, thread) for stage, _, _, _, thread in recorder.intervals) == [(0, "ncrt-nc0"), (1, "ncrt-nc1")]
    assert [c["executions"] for c in inf1.describe()["cores"]][:2] == [1, 1]


def test_a_lone_synchronous_call_runs_its_stages_on_its_callers_runner(inf1):
    recorder = Recorder()
    loaded = pipelined(inf1, [recorder.stage(0, abs), recorder.stage(1, abs)])
    assert loaded(1, -1) == (1, 1)  # one runner thread, holding each core in turn: no handoff between stages
    threads = sorted((stage, thread) for stage, _, _, _, thread in recorder.intervals)
    assert threads == [(0, "ncrt-runner"), (1, "ncrt-runner")]
    assert [c["executions"] for c in inf1.describe()["cores"]][:2] == [1, 1]


def fused_pipeline(runtime, recorder, fns, name="fused"):
    """A pipelined model whose plugin can also run it fused: the stage functions in a row
    (each taking the recorder's delay, as in its stage)."""
    fused_runs: list[tuple[str, tuple[int, ...], tuple[str, ...]]] = []

    def fused(model, stage_models, inputs, cores):
        tag, x = tuple(inputs)
        fused_runs.append((threading.current_thread().name, tuple(core.index for core in cores),
                           tuple(stage.payload.__name__ for stage in stage_models)))
        for fn in fns:
            time.sleep(recorder.delay)
            x = fn(x)
        return tag, x

    specs = [recorder.stage(k, fn) for k, fn in enumerate(fns)]
    specs = [StageSpec(specs[0].payload, first_stage_inputs(specs[0].runner), specs[0].label), *specs[1:]]
    whole = ncrt.Model(name, "python", ncrt.Manifest("python", pipeline_cores=len(fns)), lambda *a: a,
                       stages=specs, fused=fused)
    return runtime.place(whole, ncrt.PlacementRequest(cores_per_replica=len(fns))), fused_runs


def test_a_lone_synchronous_call_on_an_idle_pipeline_runs_fused_holding_every_core(inf1):
    recorder = Recorder()
    loaded, fused_runs = fused_pipeline(inf1, recorder, [abs, np.negative, np.square])
    assert loaded(1, -3) == (1, 9)
    assert fused_runs == [("ncrt-runner", (0, 1, 2), ("abs", "negative", "square"))]
    assert recorder.intervals == []  # no stage ran on its own
    pipeline = loaded.pipelines[0]
    assert pipeline.fused_executions == 1 and all(stage.counters.executions == 0 for stage in pipeline.stages)
    cores = inf1.describe()["cores"]
    assert [c["executions"] for c in cores][:3] == [1, 0, 0] and all(c["busy_seconds"] > 0 for c in cores[:3])
    described = loaded.describe()["stages"]
    assert [(s["stage"], s["executions"], s["fused_executions"]) for s in described] == [(0, 0, 1), (1, 0, 1), (2, 0, 1)]


def test_asynchronous_and_concurrent_calls_stream_through_the_stages(inf1):
    recorder = Recorder(delay=0.02)
    loaded, fused_runs = fused_pipeline(inf1, recorder, [abs, np.negative])
    futures = [loaded.submit((k, -k)) for k in range(4)]
    assert [f.result() for f in futures] == [(k, -k) for k in range(4)]
    assert fused_runs == [] and len(recorder.intervals) == 8
    outputs = {}
    threads = [threading.Thread(target=lambda k=k: outputs.update({k: loaded(k, -k)})) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outputs == {k: (k, -k) for k in range(4)}
    streamed = sum(stage == 0 for stage, *_ in recorder.intervals) - 4
    assert len(fused_runs) + streamed == 4  # every call ran once, fused or through both stages
    assert streamed >= 1  # the threads' calls overlap (40 ms each): a call finding the group busy streams


def test_a_lone_call_streams_when_a_core_of_its_group_is_busy(inf1):
    recorder = Recorder()
    loaded, fused_runs = fused_pipeline(inf1, recorder, [abs, np.negative])
    other = inf1.place(ncrt.Model("other", "python", ncrt.Manifest("python"), lambda: time.sleep(0.3)),
                       ncrt.PlacementRequest(cores_per_replica=1, start=1))
    busy = other.submit(())
    time.sleep(0.05)
    assert loaded(1, -2) == (1, -2)  # NC1 busy: the fused run cannot hold the group, so the call streams
    busy.result()
    assert fused_runs == [] and sorted(stage for stage, *_ in recorder.intervals) == [0, 1]


def test_without_a_timeout_a_synchronous_call_runs_its_stages_in_the_calling_thread(runtime_env):
    runtime = runtime_env(NCRT_INSTANCE_TYPE="inf1.xlarge", NEURON_RT_EXEC_TIMEOUT="0")
    recorder = Recorder()
    loaded = pipelined(runtime, [recorder.stage(0, abs), recorder.stage(1, abs), recorder.stage(2, abs)])
    assert loaded(1, -1) == (1, 1)  # like nrt_execute: the caller's thread, holding each core in turn
    assert sorted((stage, thread) for stage, _, _, _, thread in recorder.intervals) == [
        (0, "MainThread"), (1, "MainThread"), (2, "MainThread")]


def test_requests_stream_request_k_plus_1_in_stage_0_while_k_in_stage_1(inf1):
    recorder = Recorder(delay=0.05)
    loaded = pipelined(inf1, [recorder.stage(0, lambda x: x + 1), recorder.stage(1, lambda x: x + 1)])
    futures = [loaded.submit((k, k)) for k in range(6)]
    assert [f.result()[1] for f in futures] == [k + 2 for k in range(6)]
    spans = {(stage, tag): (start, end) for stage, tag, start, end, _ in recorder.intervals}
    overlapping = [k for k in range(5) if spans[(0, k + 1)][0] < spans[(1, k)][1] and spans[(1, k)][0] < spans[(0, k + 1)][1]]
    assert len(overlapping) >= 3, recorder.intervals
    # streamed: 6 requests of 2 x 50 ms take about 7 x 50 ms, not 12 x 50 ms
    first = min(start for _, _, start, _, _ in recorder.intervals)
    last = max(end for _, _, _, end, _ in recorder.intervals)
    assert last - first < 0.5


def test_queues_between_stages_are_bounded(inf1):
    gate = threading.Event()
    counted = []
    loaded = pipelined(inf1, [StageSpec(None, lambda m, v, c: counted.append(v) or v),
                              StageSpec(None, lambda m, v, c: gate.wait(5) and v)])
    futures = [loaded.submit((k,)) for k in range(10)]
    time.sleep(0.3)
    try:
        assert loaded.pipelines[0].in_flight() == [STAGE_DEPTH, STAGE_DEPTH]
        assert len(counted) == 2 * STAGE_DEPTH  # stage 0 holds back until stage 1 has room
    finally:
        gate.set()
    assert [f.result() for f in futures] == [(k,) for k in range(10)]
    assert loaded.pipelines[0].in_flight() == [0, 0]


def test_max_num_infers_bounds_what_is_in_flight(runtime_env):
    runtime = runtime_env(NCRT_INSTANCE_TYPE="inf1.xlarge", NEURON_MAX_NUM_INFERS="3", NCRT_QUEUE_FULL="error")
    gate = threading.Event()
    loaded = pipelined(runtime, [StageSpec(None, lambda m, v, c: v), StageSpec(None, lambda m, v, c: gate.wait(5) and v)])
    futures = [loaded.submit((k,)) for k in range(3)]
    with pytest.raises(QueueFullError, match="3 inferences .NEURON_MAX_NUM_INFERS."):
        loaded.submit((3,))
    gate.set()
    assert [f.result() for f in futures] == [(0,), (1,), (2,)]
    assert loaded.submit((4,)).result() == (4,)  # the tokens came back


def test_blocking_callers_never_exceed_max_num_infers(runtime_env):
    runtime = runtime_env(NCRT_INSTANCE_TYPE="inf1.xlarge", NEURON_MAX_NUM_INFERS="3")
    inside, peak, lock = [0], [0], threading.Lock()

    def enter(m, v, c):
        with lock:
            inside[0] += 1
            peak[0] = max(peak[0], inside[0])
        return v

    def leave(m, v, c):
        time.sleep(0.01)
        with lock:
            inside[0] -= 1
        return v

    loaded = pipelined(runtime, [StageSpec(None, enter), StageSpec(None, leave)])
    threads = [threading.Thread(target=lambda: [loaded(k) for k in range(5)]) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert 2 <= peak[0] <= 3


def test_an_error_in_a_stage_fails_only_its_request(inf1):
    def check(m, value, c):
        if value[0] < 0:
            raise ValueError("negative input")
        return value

    loaded = pipelined(inf1, [StageSpec(None, lambda m, v, c: v), StageSpec(None, check)], name="checked")
    futures = [loaded.submit((k,)) for k in (1, -1, 2, -2, 3)]
    results = []
    for future in futures:
        try:
            results.append(future.result())
        except ExecutionError as error:
            results.append(str(error))
    assert results[0::2] == [(1,), (2,), (3,)]
    assert all("stage 1 of 2 of model 'checked' on NeuronCore NC1" in text and "ValueError: negative input" in text
               for text in results[1::2])
    assert inf1.describe()["cores"][1]["errors"] == 2
    assert loaded(5) == (5,)


def test_a_stage_past_the_timeout_fails_its_request_and_resets_its_core(runtime_env):
    runtime = runtime_env(NCRT_INSTANCE_TYPE="inf1.xlarge", NEURON_RT_EXEC_TIMEOUT="0.3")
    release = threading.Event()
    slow = StageSpec(None, lambda m, v, c: (release.wait(5) if v[0] == "slow" else None) or v)
    loaded = pipelined(runtime, [StageSpec(None, lambda m, v, c: v), slow])
    started = time.monotonic()
    with pytest.raises(ExecTimeoutError, match="stage 1 of 2.*NC1.*NEURON_RT_EXEC_TIMEOUT=0.3"):
        loaded.submit(("slow",)).result()
    assert time.monotonic() - started < 2
    assert loaded("fast") == ("fast",)  # the core got a fresh worker
    assert runtime.describe()["cores"][1]["timeouts"] == 1
    release.set()


def test_a_fused_run_past_the_timeout_fails_its_call_and_frees_the_group(runtime_env):
    runtime = runtime_env(NCRT_INSTANCE_TYPE="inf1.xlarge", NEURON_RT_EXEC_TIMEOUT="0.3")
    release = threading.Event()
    recorder = Recorder()
    stuck = lambda x: (release.wait(5) if x == -99 else None) or x  # noqa: E731
    loaded, fused_runs = fused_pipeline(runtime, recorder, [stuck, abs])
    started = time.monotonic()
    with pytest.raises(ExecTimeoutError, match="NEURON_RT_EXEC_TIMEOUT=0.3"):
        loaded(0, -99)  # a lone call: fused, holding NC0 and NC1, and it never returns
    assert time.monotonic() - started < 2 and len(fused_runs) == 1
    assert loaded(1, -2) == (1, 2)  # both cores are usable again at once
    assert runtime.describe()["cores"][0]["timeouts"] == 1
    release.set()


def test_a_synchronous_stage_past_the_timeout_frees_its_core(runtime_env):
    runtime = runtime_env(NCRT_INSTANCE_TYPE="inf1.xlarge", NEURON_RT_EXEC_TIMEOUT="0.3")
    release = threading.Event()
    slow = StageSpec(None, lambda m, v, c: (release.wait(5) if v[0] == "slow" else None) or v)
    loaded = pipelined(runtime, [StageSpec(None, lambda m, v, c: v), slow])
    errors = []
    caller = threading.Thread(target=lambda: errors.append(pytest.raises(ExecTimeoutError, loaded, "slow")))
    caller.start()
    time.sleep(0.8)  # the watchdog has freed NC1 meanwhile: other requests run
    assert loaded.submit(("fast",)).result(timeout=2) == ("fast",)
    release.set()
    caller.join(5)
    assert "NEURON_RT_EXEC_TIMEOUT=0.3" in str(errors[0].value)
    assert runtime.describe()["cores"][1]["timeouts"] == 1


def test_a_core_shared_with_another_model_counts_switches(inf1):
    loaded = pipelined(inf1, [StageSpec(None, lambda m, v, c: v[0] + 1), StageSpec(None, lambda m, v, c: v * 10)])
    with pytest.warns(ncrt.ModelSwitchWarning, match="shares NeuronCores"):
        other = inf1.place(ncrt.Model("other", "python", ncrt.Manifest("python"), lambda x: -x),
                           ncrt.PlacementRequest(start=1))
    for k in range(3):
        assert loaded(k) == (k + 1) * 10 and other(k) == -k
    cores = inf1.describe()["cores"]
    assert cores[1]["model_switches"] >= 4 and cores[0]["model_switches"] == 0


def test_several_calls_of_one_job_stream_and_come_back_in_order(inf1):
    recorder = Recorder(delay=0.02)
    loaded = pipelined(inf1, [recorder.stage(0, lambda x: x * 3), recorder.stage(1, lambda x: x + 1)])
    outputs = loaded.run_many([(k, k) for k in range(8)]).result()
    assert [value for _, value in outputs] == [3 * k + 1 for k in range(8)]
    assert loaded.run_many([]).result() == []


def test_replicas_each_get_their_own_pipeline(inf1):
    recorder = Recorder(delay=0.02)
    loaded = pipelined(inf1, [recorder.stage(0, lambda x: x), recorder.stage(1, lambda x: x)], replicas=2)
    assert [[s.core.index for s in p.stages] for p in loaded.pipelines] == [[0, 1], [2, 3]]
    futures = [loaded.submit((k, k)) for k in range(8)]
    assert [f.result()[1] for f in futures] == list(range(8))
    assert {thread for *_, thread in recorder.intervals} == {f"ncrt-nc{i}" for i in range(4)}


def test_describe_shows_each_stage_core_and_busy_time(inf1):
    loaded = pipelined(inf1, [StageSpec(None, lambda m, v, c: time.sleep(0.02) or v, "a..b"),
                              StageSpec(None, lambda m, v, c: v, "c..d")])
    loaded(1)
    stages = loaded.describe()["stages"]
    assert [(s["stage"], s["core"], s["label"], s["executions"]) for s in stages] == [(0, 0, "a..b", 1), (1, 1, "c..d", 1)]
    assert stages[0]["busy_seconds"] >= 0.02 and loaded.describe()["pipeline_stages"] == 2


def test_a_model_on_fewer_cores_than_stages_runs_whole(inf1):
    whole = ncrt.Model("whole", "python", ncrt.Manifest("python", pipeline_cores=1), lambda x: x + 100,
                       stages=[StageSpec(None, lambda m, v, c: v), StageSpec(None, lambda m, v, c: v)])
    loaded = inf1.place(whole, ncrt.PlacementRequest())
    assert loaded.pipelines is None and loaded(1) == 101
