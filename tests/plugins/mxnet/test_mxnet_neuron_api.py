"""The mx-neuron API page and tutorials, call form by call form.

Compiler flags in every documented spelling, the FlexEG four-model example, the ResNet-50
and NeuronCore-groups notebooks (a checkpoint with ``softmax_label``), the Gluon tutorial
end to end, the troubleshooting guide's ``copy_params_from`` loop, the model-serving
tutorial's Module API, and unloading on free. Models are small and random; outputs are
compared with MXNet's own CPU execution of the same checkpoint.
"""

from __future__ import annotations

import gc
import json
import threading
import warnings

import numpy as np
import pytest

import ncrt.plugins.mxnet as ncrt_mxnet  # noqa: E402 - patches MXNet when it is imported

pytest.importorskip("mxnet")

import ncrt  # noqa: E402
from mxnet_models import SEED_CORES, build_checkpoint, cpu_outputs  # noqa: E402
from ncrt.errors import BadInputError  # noqa: E402
from ncrt.neuron_cc import CompilerOptionWarning  # noqa: E402

SHAPE = (1, 3, 8, 8)


def resnet_style(mx):
    """A tiny ResNet-style symbol ending in SoftmaxOutput (arguments: data ... softmax_label)."""
    data = mx.sym.var("data")
    x = mx.sym.BatchNorm(mx.sym.Convolution(data, num_filter=4, kernel=(3, 3), name="conv0"), name="bn0")
    x = mx.sym.Pooling(mx.sym.Activation(x, act_type="relu"), global_pool=True, pool_type="avg", kernel=(1, 1))
    return mx.sym.SoftmaxOutput(mx.sym.FullyConnected(mx.sym.flatten(x), num_hidden=10, name="fc1"), name="softmax")


@pytest.fixture(scope="module")
def resnet(mx, tmp_path_factory):
    """The tutorials' downloaded ``resnet-50`` checkpoint, as a small random one."""
    directory = tmp_path_factory.mktemp("resnet")
    sym = resnet_style(mx)
    module = mx.mod.Module(sym, context=mx.cpu())
    module.bind(data_shapes=[("data", SHAPE)], label_shapes=[("softmax_label", (1,))], for_training=False)
    mx.random.seed(0)
    module.init_params(mx.init.Xavier())
    args, aux = module.get_params()
    mx.model.save_checkpoint(str(directory / "resnet-50"), 0, sym, args, aux)
    return directory


@pytest.fixture
def img(mx):
    return mx.nd.array(np.random.default_rng(3).random(SHAPE), dtype="float32")


def reference(mx, prefix: str, img) -> np.ndarray:
    sym, args, aux = mx.model.load_checkpoint(prefix, 0)
    args = {**args, "data": img, "softmax_label": mx.nd.zeros((img.shape[0],))}
    return ncrt_mxnet.plain_bind(sym, mx.cpu(), args=args, aux_states=aux, grad_req="null").forward()[0].asnumpy()


def test_mx_neuron_is_mx_neuron_1_8s_module(mx):
    import mx_neuron as neuron

    assert neuron.compile is ncrt_mxnet.compile is mx.contrib.neuron.compile
    assert neuron.__version__.startswith("1.8")
    from mxnet.contrib import neuron as contrib_neuron  # the MXNet 1.5 form

    assert contrib_neuron.compile is neuron.compile


SPELLINGS = {
    "keyword flag": lambda: {"--neuroncore-pipeline-cores": 2},
    "keyword flag as text": lambda: {"--neuroncore-pipeline-cores": "2"},
    "flags list": lambda: {"flags": ["--neuroncore-pipeline-cores", "2"]},
    "flags item with a space": lambda: {"flags": ["--neuroncore-pipeline-cores 2"]},
    "flags string with =": lambda: {"flags": "--neuroncore-pipeline-cores=2"},
    "compiler_args": lambda: {"compiler_args": ["--neuroncore-pipeline-cores=2"]},
}


@pytest.mark.parametrize("spelling", sorted(SPELLINGS))
def test_every_spelling_of_the_pipeline_flag_is_honoured(spelling, mx, tmp_path, batch, runtime_env):
    runtime_env(NCRT_INSTANCE_TYPE="inf1.xlarge")
    prefix = build_checkpoint(mx, tmp_path, "plain", None)
    sym, args, aux = mx.model.load_checkpoint(prefix, 0)
    csym, cargs, caux = ncrt_mxnet.compile(sym, args, aux, {"data": mx.nd.ones((2, 8))}, **SPELLINGS[spelling]())
    model = csym.bind(ctx=mx.neuron(0), args=cargs, aux_states=caux, grad_req="null")
    assert model.placement == "NC0-1"
    np.testing.assert_allclose(model.forward(data=batch)[0].asnumpy(), cpu_outputs(mx, prefix, batch)[0], rtol=1e-5)


def test_other_options_are_recorded_and_unknown_ones_warned_about(mx, tmp_path):
    prefix = build_checkpoint(mx, tmp_path, "plain", None)
    sym, args, aux = mx.model.load_checkpoint(prefix, 0)
    options = {"flags": ["--fp32-cast matmult"], "force_incl_node_names": ["x"], "excl_node_names": ["y"],
               "work_dir": str(tmp_path), "--enable-fast-loading-neuron-binaries": True}
    with warnings.catch_warnings():
        warnings.simplefilter("error", CompilerOptionWarning)  # documented options: no warning
        csym, _, _ = ncrt_mxnet.compile(sym, args, aux, {"data": (1, 8)}, **options)
    extra = ncrt_mxnet.manifest_of(csym).extra
    assert set(extra["ignored_compiler_options"]) == {"--fp32-cast", "--enable-fast-loading-neuron-binaries"}
    assert set(extra["compile_args"]["ignored_options"]) == {"force_incl_node_names", "excl_node_names", "work_dir"}
    with pytest.warns(CompilerOptionWarning, match="--neuroncore-pipline-cores"):
        csym, _, _ = ncrt_mxnet.compile(sym, args, aux, {"data": (1, 8)}, **{"--neuroncore-pipline-cores": 2})
    assert ncrt_mxnet.manifest_of(csym).extra["unknown_compiler_options"] == ["--neuroncore-pipline-cores=2"]
    with pytest.warns(CompilerOptionWarning, match="no_such_option"):
        ncrt_mxnet.compile(sym, args, aux, {"data": (1, 8)}, no_such_option=1)


def test_flexeg_four_models_compiled_with_keyword_flags(mx, tmp_path, batch, runtime_env):
    """The FlexEG page's example, compiled the way the tutorials pass flags."""
    runtime_env(NCRT_INSTANCE_TYPE="inf1.6xlarge")
    models = {}
    for name, cores in SEED_CORES.items():
        prefix = build_checkpoint(mx, tmp_path, name, None)
        sym, args, aux = mx.model.load_checkpoint(prefix, 0)
        compile_args = {"--neuroncore-pipeline-cores": cores}
        sym, args, aux = ncrt_mxnet.compile(sym, args, aux, {"data": mx.nd.ones((2, 8))}, **compile_args)
        mx.model.save_checkpoint(str(tmp_path / f"compiled{name}"), 0, sym, args, aux)
    for name, index in zip(SEED_CORES, (0, 2, 6, 9)):
        sym, args, aux = mx.model.load_checkpoint(str(tmp_path / f"compiled{name}"), 0)
        models[name] = sym.bind(ctx=mx.neuron(index), args=args, aux_states=aux, grad_req="null")
    assert [m.placement for m in models.values()] == ["NC0-1", "NC2-5", "NC6-8", "NC9-12"]
    results = {name: model.forward(data=batch)[0].asnumpy() for name, model in models.items()}
    np.testing.assert_allclose(results["C"], cpu_outputs(mx, str(tmp_path / "compiledC"), batch)[0], rtol=1e-5)


def test_resnet50_notebook(mx, resnet, img, runtime_env, tmp_path):
    runtime_env(NCRT_INSTANCE_TYPE="inf1.xlarge")
    sym, args, aux = mx.model.load_checkpoint(str(resnet / "resnet-50"), 0)
    inputs = {"data": mx.nd.ones(list(SHAPE), name="data", dtype="float32")}
    sym, args, aux = mx.contrib.neuron.compile(sym, args, aux, inputs)  # no softmax_label: not an input
    mx.model.save_checkpoint(str(tmp_path / "resnet-50_compiled"), 0, sym, args, aux)
    sym, args, aux = mx.model.load_checkpoint(str(tmp_path / "resnet-50_compiled"), 0)
    softmax = mx.nd.random_normal(shape=(1,))
    args["softmax_label"] = softmax
    args["data"] = img
    ctx = mx.neuron()
    exe = sym.bind(ctx=ctx, args=args, aux_states=aux, grad_req="null")
    exe.forward(data=img)
    prob = exe.outputs[0].asnumpy()
    assert exe.placement == "NC0" and prob.shape == (1, 10)
    np.testing.assert_allclose(prob, reference(mx, str(resnet / "resnet-50"), img), rtol=1e-5)
    del args["softmax_label"]  # the label may also be left out: inference never reads it
    again = sym.bind(ctx=mx.neuron(1), args=args, aux_states=aux, grad_req="null")
    np.testing.assert_allclose(again.forward(data=img)[0].asnumpy(), prob, rtol=1e-6)


def test_neuroncore_groups_notebook(mx, resnet, img, runtime_env, tmp_path):
    import mx_neuron as neuron

    sym, args, aux = mx.model.load_checkpoint(str(resnet / "resnet-50"), 0)
    inputs = {"data": mx.nd.ones(list(SHAPE), name="data", dtype="float32")}
    compile_args = {"--neuroncore-pipeline-cores": 2}
    sym, args, aux = neuron.compile(sym, args, aux, inputs, **compile_args)
    mx.model.save_checkpoint(str(tmp_path / "resnet-50_compiled"), 0, sym, args, aux)
    sym, args, aux = mx.model.load_checkpoint(str(tmp_path / "resnet-50_compiled"), 0)
    args["softmax_label"] = mx.nd.random_normal(shape=(1,))
    args["data"] = img
    runtime_env(NEURON_RT_NUM_CORES="4", NCRT_INSTANCE_TYPE="inf1.6xlarge")
    exe = sym.bind(ctx=mx.neuron(1), args=args, aux_states=aux, grad_req="null")
    exe.forward(data=img)
    assert exe.placement == "NC1-2"  # "would skip NC0 and place the compiled model onto NC1,2"
    np.testing.assert_allclose(exe.outputs[0].asnumpy(), reference(mx, str(resnet / "resnet-50"), img), rtol=1e-5)


def test_compile_statistics_snippet_of_the_api_page(mx, resnet):
    sym, args, aux = mx.model.load_checkpoint(str(resnet / "resnet-50"), 0)
    csym, _, _ = ncrt_mxnet.compile(sym, args, aux, inputs={"data": mx.nd.ones(SHAPE)})

    def sym_nodes(sym):
        return json.loads(sym.tojson())["nodes"]

    def count_ops(graph_nodes):
        return len([x["op"] for x in graph_nodes if x["op"] != "null"])

    # ncrt partitions nothing: the compiled graph is the original one, no _neuron_subgraph_op
    assert count_ops(sym_nodes(csym)) == count_ops(sym_nodes(sym)) > 0
    assert not [g for g in sym_nodes(csym) if g["op"] == "_neuron_subgraph_op"]


def test_gluon_tutorial_end_to_end(mx, resnet, img, runtime_env, tmp_path):
    import mx_neuron as neuron

    runtime = runtime_env(NCRT_INSTANCE_TYPE="inf1.xlarge")
    block = mx.gluon.nn.SymbolBlock.imports(str(resnet / "resnet-50-symbol.json"), ["data", "softmax_label"],
                                            str(resnet / "resnet-50-0000.params"), ctx=mx.cpu())
    block.hybridize()
    inputs = {"data": mx.nd.ones(list(SHAPE), name="data", dtype="float32"),
              "softmax_label": mx.nd.ones([1], name="data", dtype="float32")}
    block = neuron.compile(block, inputs=inputs)
    prefix = str(tmp_path / "resnet-50_compiled")
    block.export(prefix, 0, block)
    del block
    gc.collect()
    block = mx.gluon.nn.SymbolBlock.imports(prefix + "-symbol.json", ["data", "softmax_label"],
                                            prefix + "-0000.params", ctx=mx.cpu())
    softmax = mx.nd.random_normal(shape=(1,))
    out = block(img, softmax).asnumpy()
    out = block(img, softmax).asnumpy()
    assert [m.placement.label for m in runtime.models] == ["NC0"]  # placed once, on a NeuronCore
    assert runtime.counters[0].executions == 2
    np.testing.assert_allclose(out, reference(mx, str(resnet / "resnet-50"), img), rtol=1e-5)
    plain = mx.gluon.nn.SymbolBlock.imports(str(resnet / "resnet-50-symbol.json"), ["data", "softmax_label"],
                                            str(resnet / "resnet-50-0000.params"), ctx=mx.cpu())
    np.testing.assert_allclose(plain(img, softmax).asnumpy(), out, rtol=1e-5)  # an uncompiled block: MXNet's
    assert len(runtime.models) == 1
    del block
    gc.collect()
    assert runtime.models == []


class Bertish:
    """A three-input Gluon HybridBlock shaped like the data-parallel tutorial's BERT."""

    @staticmethod
    def build(mx):
        class Net(mx.gluon.HybridBlock):
            def __init__(self, **kwargs):
                super().__init__(**kwargs)
                with self.name_scope():
                    self.word_embed = mx.gluon.nn.Embedding(20, 8)
                    self.token_type_embed = mx.gluon.nn.Embedding(2, 8)
                    self.out = mx.gluon.nn.Dense(2, flatten=False)

            def hybrid_forward(self, F, words, segments, valid_len):
                h = self.word_embed(words) + self.token_type_embed(segments)
                h = F.SequenceMask(h, sequence_length=valid_len, use_sequence_length=True, axis=1)
                return self.out(h)

        net = Net(prefix="bertmodel0_")
        net.initialize(mx.init.Xavier())
        return net


def sample_inputs(batch_size: int, seq_len: int) -> dict:
    rng = np.random.default_rng(batch_size)
    return {"data0": rng.integers(0, 20, (batch_size, seq_len)).astype(np.float32),
            "data1": rng.integers(0, 2, (batch_size, seq_len)).astype(np.float32),
            "data2": np.full((batch_size,), seq_len // 2, dtype=np.float32)}


@pytest.fixture(scope="module")
def bert_compiled(mx, tmp_path_factory):
    """The data-parallel tutorial's compile step: a HybridBlock, three inputs, tutorial options."""
    import mx_neuron

    model = Bertish.build(mx)
    batch_size, seq_len = 1, 8
    words = mx.nd.ones([batch_size, seq_len], name="words", dtype="float32")
    valid_len = mx.nd.ones([batch_size], name="valid_len", dtype="float32")
    segments = mx.nd.ones([batch_size, seq_len], name="segments", dtype="float32")
    inputs = {"data0": words, "data1": segments, "data2": valid_len}
    options = {}
    options.update({"force_incl_node_names": ["bertmodel0_word_embed_embedding0_fwd"]})
    options.update({"flags": ["--fp32-cast matmult"]})
    reference_model = model
    model = mx_neuron.compile(model, inputs=inputs, **options)
    path = str(tmp_path_factory.mktemp("bert") / "bert_12_768_12.compiled.1.8")
    model.export(path)
    sample = {k: mx.nd.array(v) for k, v in sample_inputs(batch_size, seq_len).items()}
    expected = reference_model(sample["data0"], sample["data1"], sample["data2"]).asnumpy()
    return path, expected


def test_data_parallel_tutorial_consumer_binds_to_cpu(mx, bert_compiled, runtime_env):
    """parallel.py's consumer: load_checkpoint, args.update(sample), bind(mx.cpu()), forward(**inputs)."""
    path, expected = bert_compiled
    runtime_env(NEURON_RT_NUM_CORES="1")
    sym, args, aux = mx.model.load_checkpoint(path, 0)
    sample_input = {key: mx.nd.array(v) for key, v in sample_inputs(1, 8).items()}
    args.update(sample_input)
    model = sym.bind(mx.cpu(), args=args, aux_states=aux, grad_req="null")
    assert model.placement == "NC0"
    results = model.forward(**sample_input)
    results[0].wait_to_read()
    np.testing.assert_allclose(results[0].asnumpy(), expected, rtol=1e-5)


CONSUMER = """
import json, os, sys
import ncrt.compat
import mxnet as mx
import mx_neuron
import numpy as np
sym, args, aux = mx.model.load_checkpoint(sys.argv[1], 0)
sample = {k: mx.nd.array(v) for k, v in json.loads(sys.argv[2]).items()}
args.update(sample)
model = sym.bind(mx.cpu(), args=args, aux_states=aux, grad_req="null")
sys.stdout.write("ready\\n"); sys.stdout.flush()
sys.stdin.readline()  # hold the core until the parent has seen every worker
results = model.forward(**sample)
results[0].wait_to_read()
print(json.dumps({"cores": [ncrt.get_runtime().cores[c].global_index for c in model.cores],
                  "out": results[0].asnumpy().tolist()}))
"""


@pytest.mark.slow
def test_data_parallel_tutorial_workers_each_take_their_own_core(bert_compiled, python, python_env):
    """NEURON_RT_NUM_CORES=1 per worker process, as the tutorial sets: each gets a different core."""
    import subprocess

    path, expected = bert_compiled
    python_env.update(NEURON_RT_NUM_CORES="1", NCRT_INSTANCE_TYPE="inf1.xlarge")
    sample = json.dumps({k: v.tolist() for k, v in sample_inputs(1, 8).items()})
    workers = [subprocess.Popen([python, "-c", CONSUMER, path, sample], env=python_env, stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    try:
        for worker in workers:
            assert worker.stdout.readline().strip() == "ready", worker.stderr.read()
        outputs = [json.loads(worker.communicate("go\n", timeout=120)[0].strip().splitlines()[-1]) for worker in workers]
    finally:
        for worker in workers:
            worker.kill()
    assert sorted(tuple(o["cores"]) for o in outputs) == [(0,), (1,)]
    for output in outputs:
        np.testing.assert_allclose(np.array(output["out"]), expected, rtol=1e-5)


def test_troubleshooting_guide_copy_params_from_loop(mx, resnet, runtime_env, tmp_path):
    """Four instances on mx.neuron(0..3) fed from 4 threads with copy_params_from + forward()."""
    import ncrt.plugins.ncg  # noqa: F401 - NEURONCORE_GROUP_SIZES, as the guide sets it

    NUM_PARALLEL = 4
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        runtime_env(NCRT_INSTANCE_TYPE="inf1.xlarge", NEURONCORE_GROUP_SIZES=",".join("1" for _ in range(NUM_PARALLEL)))
    sym, args, auxs = mx.model.load_checkpoint(str(resnet / "resnet-50"), 0)
    sym, args, auxs = ncrt_mxnet.compile(sym, args, auxs, {"data": mx.nd.ones(SHAPE)})
    exec_list = [sym.bind(ctx=mx.neuron(i), args=args, aux_states=auxs, grad_req="null") for i in range(NUM_PARALLEL)]
    assert [e.placement for e in exec_list] == ["NC0", "NC1", "NC2", "NC3"]
    images = [mx.nd.array(np.random.default_rng(i).random(SHAPE), dtype="float32") for i in range(8)]
    outputs: dict[int, np.ndarray] = {}

    def single_thread_infer(i):
        for index in range(i, len(images), NUM_PARALLEL):
            feed_dict = {"data": images[index]}
            exe = exec_list[i]
            exe.copy_params_from(feed_dict)
            exe.forward()
            outputs[index] = exe.outputs[0].asnumpy()

    threads = [threading.Thread(target=single_thread_infer, args=(i,)) for i in range(NUM_PARALLEL)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for index, image in enumerate(images):
        np.testing.assert_allclose(outputs[index], reference(mx, str(resnet / "resnet-50"), image), rtol=1e-5)
    with pytest.raises(BadInputError, match="does not have"):
        exec_list[0].copy_params_from({"nope": images[0]})


def test_model_serving_tutorial_module_api(mx, resnet, img, runtime_env):
    """multi-model-server's MXNet service with ``self.mxnet_ctx = mx.neuron()``: the Module API."""
    runtime_env(NCRT_INSTANCE_TYPE="inf1.xlarge")
    sym, args, aux = mx.model.load_checkpoint(str(resnet / "resnet-50"), 0)
    csym, cargs, caux = ncrt_mxnet.compile(sym, args, aux, {"data": mx.nd.zeros(SHAPE)})
    module = mx.mod.Module(symbol=csym, context=mx.neuron(), label_names=None)
    module.bind(for_training=False, data_shapes=[("data", SHAPE)])
    module.set_params(cargs, caux, allow_missing=True)
    module.forward(mx.io.DataBatch([img]))
    got = module.get_outputs()[0].asnumpy()
    np.testing.assert_allclose(got, reference(mx, str(resnet / "resnet-50"), img), rtol=1e-5)
    assert [m.placement.label for m in ncrt.get_runtime().models] == ["NC0"]


def test_a_freed_executor_frees_its_cores(mx, checkpoints, batch, runtime_env):
    runtime = runtime_env(NCRT_INSTANCE_TYPE="inf1.xlarge")
    for _ in range(3):
        sym, args, aux = mx.model.load_checkpoint(checkpoints["A"], 0)
        with warnings.catch_warnings():
            warnings.simplefilter("error", ncrt.ModelSwitchWarning)  # no warning names a dead model
            model = sym.bind(ctx=mx.neuron(0), args=args, aux_states=aux, grad_req="null")
        assert model.placement == "NC0-1"
        model.forward(data=batch)
        del model
        gc.collect()
        assert runtime.models == [] and not any(runtime.table.occupants.values())
    sym, args, aux = mx.model.load_checkpoint(checkpoints["A"], 0)
    kept = sym.bind(ctx=mx.neuron(0), args=args, aux_states=aux, grad_req="null")
    with pytest.warns(ncrt.ModelSwitchWarning, match="modelA"):  # a live model still shares
        other = sym.bind(ctx=mx.neuron(1), args=args, aux_states=aux, grad_req="null")
    kept.unload()
    assert [m.placement.label for m in runtime.models] == [other.placement]
