"""mx.neuron contexts, compile manifests, bind behaviour, errors, parallelism and hooks."""

from __future__ import annotations

import subprocess
import textwrap
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

import ncrt.plugins.mxnet as ncrt_mxnet  # noqa: E402 - patches MXNet (numpy.bool) when it is imported
from ncrt.plugins.mxnet import hooks as mxnet_hooks  # noqa: E402

pytest.importorskip("mxnet")

import ncrt  # noqa: E402
from mxnet_models import bind_at, build_checkpoint, cpu_outputs  # noqa: E402
from ncrt.errors import BadInputError, HashMismatchError  # noqa: E402
from ncrt.pipeline import PipelineStagesWarning  # noqa: E402


def test_neuron_context_is_a_cpu_context_with_an_index(mx):
    ctx = mx.neuron(3)
    assert isinstance(ctx, mx.Context) and ctx.device_type == "cpu"
    assert ctx.neuron_index == 3 and repr(ctx) == "neuron(3)" and ctx == mx.neuron(3) != mx.neuron(2)
    assert mx.nd.ones((2,), ctx=ctx).context.device_type == "cpu"
    with pytest.raises(BadInputError, match="accepted: a NeuronCore index"):
        mx.neuron(-1)


def test_compile_manifest_survives_checkpoints(mx, checkpoints):
    sym, _, _ = mx.model.load_checkpoint(checkpoints["C"], 0)
    manifest = ncrt_mxnet.manifest_of(sym)
    assert manifest.pipeline_cores == 3 and manifest.batch_size == 2
    assert manifest.inputs == [{"name": "data", "shape": [2, 8], "dtype": "float32"}]
    assert manifest.outputs[0]["shape"] == [2, 4] and manifest.sha256
    assert mxnet_hooks.ncrt_read_manifest(checkpoints["C"]).pipeline_cores == 3


def test_compile_rejects_missing_inputs_and_bad_flags(mx, checkpoints):
    sym, args, aux = mx.model.load_checkpoint(checkpoints["A"], 0)
    with pytest.raises(BadInputError, match="no value or input shape for data"):
        mx.contrib.neuron.compile(sym, args, aux, {"x": mx.nd.ones((1, 8))})
    with pytest.raises(BadInputError, match="pipeline-cores"):
        mx.contrib.neuron.compile(sym, args, aux, {"data": (1, 8)}, flags="--neuroncore-pipeline-cores=0")


def test_uncompiled_symbol_takes_one_core(mx, tmp_path, batch, runtime_env):
    runtime_env(NCRT_INSTANCE_TYPE="inf1.xlarge")
    prefix = build_checkpoint(mx, tmp_path, "plain", None)
    model = bind_at(mx, prefix, 2)
    assert model.placement == "NC2"
    np.testing.assert_allclose(model.forward(data=batch)[0].asnumpy(), cpu_outputs(mx, prefix, batch)[0], rtol=1e-5)


def test_cpu_bind_is_unchanged_for_plain_symbols(mx, tmp_path, batch):
    prefix = build_checkpoint(mx, tmp_path, "plaincpu", None)
    sym, args, aux = mx.model.load_checkpoint(prefix, 0)
    executor = sym.bind(mx.cpu(), {**args, "data": batch}, aux_states=aux, grad_req="null")
    assert type(executor).__name__ == "Executor" and ncrt.current_runtime() is None
    assert mx.sym.Symbol.bind.__wrapped__ is mx.sym.Symbol.bind._ncrt_original


def test_compiled_symbol_bound_to_cpu_runs_on_a_core(mx, checkpoints, batch, runtime_env):
    """mx-neuron runs a compiled model on NeuronCores whatever the context: mx.cpu(i) is core i."""
    runtime_env(NCRT_INSTANCE_TYPE="inf1.6xlarge")
    sym, args, aux = mx.model.load_checkpoint(checkpoints["A"], 0)
    executor = sym.bind(mx.cpu(), {**args, "data": batch}, aux_states=aux, grad_req="null")
    assert isinstance(executor, ncrt_mxnet.NeuronExecutor) and executor.placement == "NC0-1"
    assert sym.bind(mx.cpu(3), args, aux_states=aux, grad_req="null").placement == "NC3-4"
    np.testing.assert_allclose(executor.forward(data=batch)[0].asnumpy(), cpu_outputs(mx, checkpoints["A"], batch)[0],
                               rtol=1e-5)
    plain = ncrt_mxnet.plain_bind(sym, mx.cpu(), {**args, "data": batch}, aux_states=aux, grad_req="null")
    assert type(plain).__name__ == "Executor"


def test_forward_checks_inputs(mx, checkpoints, runtime_env):
    runtime_env(NCRT_INSTANCE_TYPE="inf1.xlarge")
    model = bind_at(mx, checkpoints["A"], 0)
    with pytest.raises(BadInputError, match=r"got input\(s\) \['x'\] it does not take; accepted: \['data'\]"):
        model.forward(x=mx.nd.ones((1, 8)))
    with pytest.raises(BadInputError, match=r"no value for input\(s\) \['data'\]"):
        model.forward()
    with pytest.raises(BadInputError, match=r"compiled for \(2, 8\)"):
        model.forward(data=mx.nd.ones((1, 5)))
    with pytest.raises(BadInputError, match="inference only"):
        sym, args, aux = mx.model.load_checkpoint(checkpoints["A"], 0)
        sym.bind(mx.neuron(0), args, args_grad={}, aux_states=aux)


def test_numpy_inputs_and_other_batch_sizes(mx, checkpoints, runtime_env):
    runtime_env(NCRT_INSTANCE_TYPE="inf1.xlarge")
    model = bind_at(mx, checkpoints["A"], 0)
    data = np.random.default_rng(1).random((5, 8)).astype("float32")
    got = model.forward(data=data)[0].asnumpy()
    np.testing.assert_allclose(got, cpu_outputs(mx, checkpoints["A"], mx.nd.array(data))[0], rtol=1e-5)


def test_validate_hash_rejects_changed_parameters(mx, checkpoints, runtime_env):
    runtime_env(NCRT_INSTANCE_TYPE="inf1.xlarge", NEURON_RT_VALIDATE_HASH="true")
    sym, args, aux = mx.model.load_checkpoint(checkpoints["A"], 0)
    assert bind_at(mx, checkpoints["A"], 0).placement == "NC0-1"
    args["modelA_dense0_bias"] = args["modelA_dense0_bias"] + 1
    with pytest.raises(HashMismatchError):
        sym.bind(ctx=mx.neuron(2), args=args, aux_states=aux, grad_req="null")


def test_runtime_load_of_a_checkpoint_prefix(mx, checkpoints, batch, runtime_env):
    runtime_env(NCRT_INSTANCE_TYPE="inf1.6xlarge")
    loaded = ncrt.load(checkpoints["B"], start=4)
    assert loaded.placement.label == "NC4-7"
    got = loaded.run({"data": batch})[0].asnumpy()
    np.testing.assert_allclose(got, cpu_outputs(mx, checkpoints["B"], batch)[0], rtol=1e-5)


def _execution_intervals(monkeypatch) -> list[tuple[str, tuple[int, ...], float, float]]:
    """Every job a core runs from now on: (model, cores it holds, start, end), both taken while
    it holds them (the end before its cores are freed). A pipeline stage holds its core; a
    fused run (a lone call on an idle pipeline) the whole group."""
    from ncrt.executor import CoreExecutor

    intervals: list[tuple[str, tuple[int, ...], float, float]] = []
    original = CoreExecutor._complete

    def timed(self, job, start, value=None, error=None):
        intervals.append((job.model.name, tuple(core.index for core in job.replica), start, time.monotonic()))
        original(self, job, start, value, error)

    monkeypatch.setattr(CoreExecutor, "_complete", timed)
    return intervals


def _overlaps(intervals, core: int | None = None) -> bool:
    """Whether executions of different models overlapped in time (only those holding ``core``, if given)."""
    chosen = [i for i in intervals if core is None or core in i[1]]
    return any(a[0] != b[0] and a[2] < b[3] and b[2] < a[3] for a in chosen for b in chosen)


def _run_together(models, batch, calls: int = 6) -> None:
    threads = [threading.Thread(target=lambda m=m: [m.forward(data=batch) for _ in range(calls)]) for m in models]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


@pytest.mark.parametrize("starts, parallel", [((0, 6), True), ((2, 5), False)])
def test_disjoint_groups_overlap_shared_cores_do_not(mx, tmp_path, runtime_env, monkeypatch, starts, parallel):
    """Pipelined 4-core models: on disjoint groups they run side by side; on groups sharing NC5,
    executions holding NC5 never overlap (the other stages still stream)."""
    runtime_env(NCRT_INSTANCE_TYPE="inf1.6xlarge")
    prefixes = [build_checkpoint(mx, tmp_path, f"P{i}", 4, width=512) for i in range(2)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ncrt.ModelSwitchWarning)
        warnings.simplefilter("ignore", PipelineStagesWarning)
        models = [bind_at(mx, prefix, start) for prefix, start in zip(prefixes, starts)]
    batch = mx.nd.ones((256, 8))
    for model in models:
        model.forward(data=batch)
    intervals = _execution_intervals(monkeypatch)
    _run_together(models, batch)
    for model in models:  # every call ran once: fused (holding the group), or through each stage
        stages = len(model.loaded.pipelines[0].stages)
        mine = [cores for name, cores, _, _ in intervals if name == model.loaded.name]
        fused = sum(cores == model.cores for cores in mine)
        assert fused + (len(mine) - fused) / stages == 6
    if parallel:
        assert _overlaps(intervals)
    else:
        assert not _overlaps(intervals, core=5) and any(5 in cores for _, cores, _, _ in intervals)


def test_inputs_given_to_bind_are_still_inputs(mx, checkpoints, batch, runtime_env):
    runtime_env(NCRT_INSTANCE_TYPE="inf1.xlarge")
    sym, args, aux = mx.model.load_checkpoint(checkpoints["A"], 0)
    model = sym.bind(ctx=mx.neuron(0), args={**args, "data": mx.nd.zeros((2, 8))}, aux_states=aux)
    assert model.loaded.name == "modelA" and model.payload.input_names == ["data"]
    np.testing.assert_allclose(model.forward(data=batch)[0].asnumpy(), cpu_outputs(mx, checkpoints["A"], batch)[0],
                               rtol=1e-5)


def test_thread_defaults_only_fill_unset_variables():
    environ = {"MXNET_CPU_WORKER_NTHREADS": "3", "MXNET_ENGINE_TYPE": "ThreadedEnginePerDevice"}
    ncrt_mxnet.configure_thread_defaults(environ)
    assert environ["MXNET_CPU_WORKER_NTHREADS"] == "3" and int(environ["MXNET_OMP_MAX_THREADS"]) >= 1
    assert environ["MXNET_ENGINE_TYPE"] == "ThreadedEnginePerDevice"
    fresh: dict[str, str] = {}
    ncrt_mxnet.configure_thread_defaults(fresh)
    assert fresh["MXNET_ENGINE_TYPE"] == "NaiveEngine"  # operators run in the core's (the caller's) thread
    cpus = int(fresh["MXNET_CPU_WORKER_NTHREADS"])
    assert cpus >= 1 and int(fresh["MXNET_OMP_MAX_THREADS"]) * cpus <= max(cpus, 1)


def test_data_parallel_runner_with_the_mxnet_adapter(mx, checkpoints, runtime_env):
    from ncrt.adapters.mxnet import ADAPTER
    from ncrt.parallel import DataParallelRunner

    runtime_env(NCRT_INSTANCE_TYPE="inf1.6xlarge")
    loaded = ncrt.load(checkpoints["A"], replicas=3)
    assert loaded.placement.label == "NC0-5" and len(loaded.replicas) == 3
    batch = mx.nd.array(np.random.default_rng(3).random((7, 8)), dtype="float32")
    outputs = DataParallelRunner(loaded, ADAPTER, compiled_batch=2)({"data": batch})
    np.testing.assert_allclose(outputs[0].asnumpy(), cpu_outputs(mx, checkpoints["A"], batch)[0], rtol=1e-5)


def test_mxnet_threads_get_the_openmp_team_of_a_worker(mx):
    """Each thread that runs MXNet operators caps its OpenMP team at MXNET_OMP_MAX_THREADS."""
    import ctypes

    from ncrt.plugins.mxnet import openmp

    assert openmp.thread_limit({"MXNET_OMP_MAX_THREADS": "3"}) == 3
    assert openmp.thread_limit({"MXNET_OMP_MAX_THREADS": "many"}) == openmp.thread_limit({}) == 1
    gomp = ctypes.CDLL("libgomp.so.1")
    seen = {}

    def in_a_thread():
        gomp.omp_set_num_threads(7)
        openmp.limit_this_thread()
        seen["max"] = gomp.omp_get_max_threads()

    thread = threading.Thread(target=in_a_thread)
    thread.start()
    thread.join()
    assert seen["max"] == openmp.thread_limit()


def test_engine_is_naive_is_read_once(monkeypatch):
    """Whether outputs need waiting for is what MXNET_ENGINE_TYPE said when first asked (MXNet reads it once)."""
    from ncrt.plugins.mxnet import execute

    assert execute.engine_is_naive({"MXNET_ENGINE_TYPE": "NaiveEngine"})
    assert not execute.engine_is_naive({"MXNET_ENGINE_TYPE": "ThreadedEnginePerDevice"})
    assert not execute.engine_is_naive({})  # MXNet's own default is a threaded engine
    monkeypatch.setattr(execute, "_naive_engine", [])
    monkeypatch.setenv("MXNET_ENGINE_TYPE", "ThreadedEnginePerDevice")
    assert not execute.engine_is_naive()
    monkeypatch.setenv("MXNET_ENGINE_TYPE", "NaiveEngine")
    assert not execute.engine_is_naive()
    monkeypatch.setattr(execute, "_naive_engine", [])
    assert execute.engine_is_naive()


THREADED_ENGINE_RUN = textwrap.dedent("""
    import os, pathlib, sys, tempfile
    import numpy as np
    import ncrt.plugins.mxnet
    import mxnet as mx
    from ncrt.plugins.mxnet.execute import engine_is_naive
    sys.path.insert(0, os.environ["MXNET_MODELS_DIR"])
    from mxnet_models import bind_at, build_checkpoint, cpu_outputs
    assert not engine_is_naive()
    prefix = build_checkpoint(mx, pathlib.Path(tempfile.mkdtemp()), "T", 1)
    batch = mx.nd.array(np.random.default_rng(5).random((3, 8)), dtype="float32")
    exe = bind_at(mx, prefix, 0)
    waits = []
    original = mx.nd.NDArray.wait_to_read
    mx.nd.NDArray.wait_to_read = lambda self: (waits.append(1), original(self))[1]
    outputs = exe.forward(data=batch)
    waited = len(waits)  # asnumpy() below copies through MXNet's C call, not wait_to_read
    np.testing.assert_allclose(outputs[0].asnumpy(), cpu_outputs(mx, prefix, batch)[0], rtol=1e-5)
    print("ok", exe.placement, waited)
""")


def test_a_threaded_engine_waits_for_outputs_on_the_core(python, python_env):
    """An application that chose a threaded engine gets finished outputs (ncrt waits for them on the core)."""
    env = {**python_env, "MXNET_ENGINE_TYPE": "ThreadedEnginePerDevice", "MXNET_MODELS_DIR": str(Path(__file__).parent)}
    result = subprocess.run([python, "-c", THREADED_ENGINE_RUN], env=env, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "ok NC0 1"  # the one output, waited for on the core


def test_the_naive_engine_takes_outputs_without_waiting(mx, checkpoints, runtime_env, monkeypatch):
    """Under NaiveEngine every operator ran inside the call, errors included: no wait_to_read."""
    runtime_env(NCRT_INSTANCE_TYPE="inf1.xlarge")
    waits = []
    original = mx.nd.NDArray.wait_to_read
    monkeypatch.setattr(mx.nd.NDArray, "wait_to_read", lambda self: (waits.append(1), original(self))[1])
    exe = bind_at(mx, checkpoints["A"], 0)
    batch = mx.nd.array(np.random.default_rng(6).random((3, 8)), dtype="float32")
    outputs = exe.forward(data=batch)
    assert waits == []
    np.testing.assert_allclose(outputs[0].asnumpy(), cpu_outputs(mx, checkpoints["A"], batch)[0], rtol=1e-5)
