"""NeuronCore Pipeline for MXNet: compiled symbols cut into stages that stream over their cores."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import ncrt.plugins.mxnet as ncrt_mxnet  # noqa: E402 - patches MXNet (numpy.bool) when it is imported

pytest.importorskip("mxnet")

import ncrt  # noqa: E402
from ncrt.errors import ExecutionError  # noqa: E402
from ncrt.pipeline import PipelineStagesWarning  # noqa: E402
from ncrt.plugins.mxnet import pipeline as mx_pipeline  # noqa: E402


def two_in_two_out(mx):
    """``data`` and ``extra`` in; a skip connection, a two-way split (multi-output op); two outputs."""
    data, extra = mx.sym.var("data"), mx.sym.var("extra")
    h = mx.sym.Activation(mx.sym.FullyConnected(data, num_hidden=16, name="fc1"), act_type="relu", name="relu1")
    k = mx.sym.Activation(mx.sym.FullyConnected(h, num_hidden=16, name="fc2"), act_type="tanh", name="tanh2") + h
    halves = mx.sym.split(k, num_outputs=2, axis=1, name="halves")
    first = mx.sym.FullyConnected(halves[0], num_hidden=4, name="head1") + extra
    second = mx.sym.FullyConnected(halves[1], num_hidden=3, name="head2")
    symbol = mx.sym.Group([first, second])
    rng = np.random.default_rng(0)
    shapes = dict(zip(symbol.list_arguments(), symbol.infer_shape(data=(2, 6), extra=(2, 4))[0]))
    args = {name: mx.nd.array(rng.standard_normal(shape) * 0.5) for name, shape in shapes.items()
            if name not in ("data", "extra")}
    return symbol, args, {}


def cpu_reference(mx, symbol, args, aux, **inputs):
    executor = symbol.bind(mx.cpu(), args={**args, **inputs}, aux_states=aux, grad_req="null")
    return [output.asnumpy() for output in executor.forward(is_train=False)]


def examples(mx, batch=2, seed=1):
    rng = np.random.default_rng(seed)
    return {"data": mx.nd.array(rng.random((batch, 6))), "extra": mx.nd.array(rng.random((batch, 4)))}


@pytest.fixture
def inf1(runtime_env):
    return runtime_env(NCRT_INSTANCE_TYPE="inf1.xlarge", NEURON_MAX_NUM_INFERS="16")


@pytest.mark.parametrize("flags", [["--neuroncore-pipeline-cores", "2"], "--neuroncore-pipeline-cores 3",
                                   ["--neuroncore-pipeline-cores=4"]])
def test_every_spelling_of_the_flag_cuts_the_symbol(mx, inf1, flags):
    symbol, args, aux = two_in_two_out(mx)
    compiled, cargs, caux = mx.contrib.neuron.compile(symbol, args, aux, examples(mx), flags=flags)
    manifest = ncrt_mxnet.manifest_of(compiled)
    assert manifest.stage_count == manifest.pipeline_cores
    model = compiled.bind(ctx=mx.neuron(0), args=cargs, aux_states=caux, grad_req="null")
    assert [s.core.index for s in model.loaded.pipelines[0].stages] == list(range(manifest.pipeline_cores))
    inputs = examples(mx, batch=2, seed=5)
    outputs = model.forward(**inputs)
    for got, want in zip(outputs, cpu_reference(mx, symbol, args, aux, **inputs)):
        np.testing.assert_allclose(got.asnumpy(), want, rtol=1e-5, atol=1e-6)


def test_multi_input_multi_output_equal_the_unsplit_symbol_after_a_checkpoint(mx, inf1, tmp_path):
    symbol, args, aux = two_in_two_out(mx)
    compiled, cargs, caux = mx.contrib.neuron.compile(symbol, args, aux, examples(mx),
                                                      flags="--neuroncore-pipeline-cores 3")
    mx.model.save_checkpoint(str(tmp_path / "piped"), 0, compiled, cargs, caux)
    sym, largs, laux = mx.model.load_checkpoint(str(tmp_path / "piped"), 0)
    partition = ncrt_mxnet.manifest_of(sym).partition
    assert partition == ncrt_mxnet.manifest_of(compiled).partition and len(partition["stages"]) == 3
    assert "forward time per MXNet operator bound alone" in partition["cost_basis"]
    model = sym.bind(ctx=mx.neuron(1), args=largs, aux_states=laux, grad_req="null")
    assert model.placement == "NC1-3"
    inputs = examples(mx, batch=2, seed=9)
    outputs = model.forward(**inputs)
    assert len(outputs) == 2
    for got, want in zip(outputs, cpu_reference(mx, symbol, args, aux, **inputs)):
        np.testing.assert_allclose(got.asnumpy(), want, rtol=1e-5, atol=1e-6)
    loaded = ncrt.load(str(tmp_path / "piped"))  # the plugin's loader rebuilds the stages too
    assert len(loaded.pipelines[0].stages) == 3
    got = loaded.run(inputs)
    np.testing.assert_allclose(got[1].asnumpy(), outputs[1].asnumpy(), rtol=1e-6)


def test_gluon_checkpoints_of_the_seed_are_pipelined(mx, checkpoints, batch, inf1):
    from mxnet_models import bind_at, cpu_outputs

    model = bind_at(mx, checkpoints["A"], 2)  # model A: compiled for 2 cores
    assert model.placement == "NC2-3" and [s.core.index for s in model.loaded.pipelines[0].stages] == [2, 3]
    np.testing.assert_allclose(model.forward(data=batch)[0].asnumpy(), cpu_outputs(mx, checkpoints["A"], batch)[0],
                               rtol=1e-5, atol=1e-6)


def test_request_k_plus_1_runs_in_stage_0_while_k_is_in_stage_1(mx, inf1, stage_timeline):
    stage_timeline.record(mx_pipeline)
    symbol, args, aux = two_in_two_out(mx)
    compiled, cargs, caux = mx.contrib.neuron.compile(symbol, args, aux, examples(mx), flags="--neuroncore-pipeline-cores 2")
    model = compiled.bind(ctx=mx.neuron(0), args=cargs, aux_states=caux, grad_req="null")
    model.forward(**examples(mx))
    stage_timeline.intervals.clear()
    requests = [examples(mx, seed=k) for k in range(6)]
    futures = [model.loaded.submit(inputs) for inputs in requests]
    for future, inputs in zip(futures, requests):
        np.testing.assert_allclose(future.result()[0].asnumpy(), cpu_reference(mx, symbol, args, aux, **inputs)[0],
                                   rtol=1e-5, atol=1e-6)
    assert stage_timeline.overlaps() >= 3, stage_timeline.intervals


def test_an_error_in_a_stage_reaches_only_its_request(mx, inf1):
    data, index = mx.sym.var("data"), mx.sym.var("index")
    h = mx.sym.Activation(mx.sym.FullyConnected(data, num_hidden=8, name="fc1"), act_type="relu")
    picked = mx.sym.take(mx.sym.FullyConnected(h, num_hidden=8, name="fc2"), index, axis=1, mode="raise", name="pick")
    rng = np.random.default_rng(0)
    args = {"fc1_weight": mx.nd.array(rng.random((8, 4))), "fc1_bias": mx.nd.zeros(8),
            "fc2_weight": mx.nd.array(rng.random((8, 8))), "fc2_bias": mx.nd.zeros(8)}
    inputs = {"data": mx.nd.ones((1, 4)), "index": mx.nd.array([0, 2])}
    compiled, cargs, caux = mx.contrib.neuron.compile(picked, args, {}, inputs, flags="--neuroncore-pipeline-cores 2")
    model = compiled.bind(ctx=mx.neuron(0), args=cargs, aux_states=caux, grad_req="null")
    good, bad = mx.nd.array([1, 3]), mx.nd.array([1, 99])
    futures = [model.loaded.submit({"data": inputs["data"], "index": i}) for i in (good, bad, good)]
    want = cpu_reference(mx, picked, args, {}, data=inputs["data"], index=good)[0]
    np.testing.assert_allclose(futures[0].result()[0].asnumpy(), want, rtol=1e-5)
    with pytest.raises(ExecutionError, match="(?s)stage 1 of 2 of model .* on NeuronCore NC1.*out of bound"):
        futures[1].result()
    np.testing.assert_allclose(futures[2].result()[0].asnumpy(), want, rtol=1e-5)


def test_a_symbol_too_small_to_cut_warns_once_and_runs_whole(mx, inf1):
    data = mx.sym.var("data")
    symbol = mx.sym.FullyConnected(data, num_hidden=3, name="only")
    args = {"only_weight": mx.nd.ones((3, 4)), "only_bias": mx.nd.zeros(3)}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        compiled, cargs, caux = mx.contrib.neuron.compile(symbol, args, {}, {"data": (1, 4)},
                                                          flags="--neuroncore-pipeline-cores 2")
    found = [w for w in caught if issubclass(w.category, PipelineStagesWarning)]
    assert len(found) == 1 and "only 1 operator" in str(found[0].message) and found[0].filename == __file__
    model = compiled.bind(ctx=mx.neuron(0), args=cargs, aux_states=caux, grad_req="null")
    assert model.placement == "NC0-1" and model.loaded.pipelines is None
    x = mx.nd.ones((2, 4))
    np.testing.assert_allclose(model.forward(data=x)[0].asnumpy(), cpu_reference(mx, symbol, args, {}, data=x)[0])


def test_two_pipelines_on_one_group_take_turns_on_each_core(mx, inf1):
    symbol, args, aux = two_in_two_out(mx)
    compiled, cargs, caux = mx.contrib.neuron.compile(symbol, args, aux, examples(mx), flags="--neuroncore-pipeline-cores 2")
    first = compiled.bind(ctx=mx.neuron(0), args=cargs, aux_states=caux, grad_req="null")
    with pytest.warns(ncrt.ModelSwitchWarning):
        second = compiled.bind(ctx=mx.neuron(0), args=cargs, aux_states=caux, grad_req="null")
    inputs = examples(mx)
    for _ in range(3):
        a, b = first.forward(**inputs), second.forward(**inputs)
        np.testing.assert_allclose(a[0].asnumpy(), b[0].asnumpy())
    cores = inf1.describe()["cores"]
    assert cores[0]["model_switches"] >= 4 and cores[1]["model_switches"] >= 4


def _compiled_two_in_two_out(mx, cores: int = 3):
    symbol, args, aux = two_in_two_out(mx)
    compiled = mx.contrib.neuron.compile(symbol, args, aux, examples(mx), flags=f"--neuroncore-pipeline-cores {cores}")
    return (symbol, args, aux), compiled


def test_a_lone_forward_runs_fused_and_submissions_stream_with_the_same_outputs(mx, inf1):
    (symbol, args, aux), (compiled, cargs, caux) = _compiled_two_in_two_out(mx)
    model = compiled.bind(ctx=mx.neuron(0), args=cargs, aux_states=caux, grad_req="null")
    pipeline = model.loaded.pipelines[0]
    inputs = examples(mx, seed=3)
    want = cpu_reference(mx, symbol, args, aux, **inputs)
    fused = model.forward(**inputs)  # nothing streaming: the whole symbol at once, on the group
    assert pipeline.fused_executions == 1 and [s.counters.executions for s in pipeline.stages] == [0, 0, 0]
    streamed = [model.loaded.submit(inputs) for _ in range(3)]  # asynchronous: through the stages
    for outputs in [fused, *(future.result() for future in streamed)]:
        for got, expected in zip(outputs, want):
            np.testing.assert_allclose(got.asnumpy(), expected, rtol=1e-5, atol=1e-6)
    assert pipeline.fused_executions == 1 and [s.counters.executions for s in pipeline.stages] == [3, 3, 3]


def test_a_fused_run_uses_the_stages_own_weights_on_their_cores(mx, inf1):
    _, (compiled, cargs, caux) = _compiled_two_in_two_out(mx)
    model = compiled.bind(ctx=mx.neuron(1), args=cargs, aux_states=caux, grad_req="null")
    inputs = examples(mx)
    model.loaded.submit(inputs).result()  # the stages bind on their cores
    model.forward(**inputs)  # the fused run binds over them
    pipeline = model.loaded.pipelines[0]
    stage_params = {}
    for stage in pipeline.stages:
        stage_params.update(stage.model.replicas[stage.core.index].params)
    (fused_binding,) = pipeline.fused_model.replicas.values()
    assert set(fused_binding.params) == set(stage_params) == set(cargs)
    assert all(fused_binding.params[name] is stage_params[name] for name in stage_params)  # resident once


@pytest.mark.parametrize("path", ["fused", "streamed"])
def test_new_parameters_reach_every_stage(mx, inf1, path):
    """copy_params_from (what Module.set_params calls) after a bind: every stage runs the new values."""
    (symbol, args, aux), (compiled, cargs, caux) = _compiled_two_in_two_out(mx)
    model = compiled.bind(ctx=mx.neuron(0), args=cargs, aux_states=caux, grad_req="null")
    inputs = examples(mx)
    run = (lambda: model.forward(**inputs)) if path == "fused" else (lambda: model.loaded.submit(inputs).result())
    run()
    changed = {name: value * 2 + 1 for name, value in args.items()}
    model.copy_params_from(changed)
    for got, want in zip(run(), cpu_reference(mx, symbol, changed, aux, **inputs)):
        np.testing.assert_allclose(got.asnumpy(), want, rtol=1e-5, atol=1e-5)


def test_each_call_gets_outputs_of_its_own(mx, inf1):
    """CachedOps with static memory still return fresh outputs: an earlier call's stay as they were."""
    _, (compiled, cargs, caux) = _compiled_two_in_two_out(mx)
    model = compiled.bind(ctx=mx.neuron(0), args=cargs, aux_states=caux, grad_req="null")
    first_inputs, second_inputs = examples(mx, seed=1), examples(mx, seed=2)
    first = model.forward(**first_inputs)
    kept = [output.asnumpy().copy() for output in first]
    second = model.forward(**second_inputs)
    streamed = model.loaded.submit(second_inputs).result()
    for output, copy, other in zip(first, kept, second):
        np.testing.assert_array_equal(output.asnumpy(), copy)
        assert not np.allclose(output.asnumpy(), other.asnumpy())
    for a, b in zip(second, streamed):
        np.testing.assert_allclose(a.asnumpy(), b.asnumpy(), rtol=1e-6)
