"""The tensorflow-neuron 2.x API pages and tutorials, call form by call form.

Each test runs the documented code shape (tracing, analyze_model and auto-replication API
pages, the TF2 FAQ, the TensorFlow Serving tutorial, the UNet sample) with small random
models, Keras 3 (``tf.keras``) and tf-keras (Keras 2, what tensorflow-neuron ran on),
and compares the outputs with the source model's.
"""

from __future__ import annotations

import gc
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
tf_keras = pytest.importorskip("tf_keras")

import ncrt  # noqa: E402
import ncrt.compat  # noqa: E402,F401 - tensorflow_neuron, the save/load handling
from ncrt.errors import BadInputError  # noqa: E402
from ncrt.neuron_cc import CompilerOptionWarning  # noqa: E402
from ncrt.plugins import tensorflow as ncrt_tf  # noqa: E402

import tensorflow_neuron as tfn  # noqa: E402

KERAS = {"keras3": tf.keras, "tf_keras": tf_keras}


def dense_model(keras, seed: int = 0):
    """The API pages' model: Input(3) -> Dense(3), plus Dropout so inference mode matters."""
    keras.utils.set_random_seed(seed)
    input0 = keras.layers.Input((3,))
    dense0 = keras.layers.Dense(3)(keras.layers.Dropout(0.5)(input0))
    return keras.Model(inputs=[input0], outputs=[dense0])


def close(got, want) -> None:
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-5, atol=1e-6)


def test_tensorflow_neuron_is_the_module_of_tensorflow_neuron_2():
    import tensorflow.neuron as neuron

    assert tfn is neuron and tf.neuron is neuron
    for name in ("trace", "analyze_model", "auto_multicore", "saved_model"):
        assert getattr(tfn, name) is getattr(ncrt_tf, name)


@pytest.mark.parametrize("flavour", sorted(KERAS))
def test_tracing_api_page_example(flavour, runtime_env, tmp_path):
    runtime_env(NCRT_INSTANCE_TYPE="inf1.xlarge")
    model = dense_model(KERAS[flavour])
    example_inputs = tf.random.uniform([1, 3])
    model_neuron = tfn.trace(model, example_inputs)
    assert model_neuron.on_neuron_ratio == 1.0
    assert model_neuron.manifest.extra["operator_count"] == {"MatMul": 1, "BiasAdd": 1}
    model_dir = str(tmp_path / "model_neuron")
    model_neuron.save(model_dir)
    model_neuron_reloaded = tf.keras.models.load_model(model_dir)
    assert isinstance(model_neuron_reloaded, ncrt_tf.NeuronModel) and model_neuron_reloaded.on_neuron_ratio == 1.0
    x = tf.random.uniform([5, 3])
    close(model_neuron_reloaded(x), model(x))
    close(model_neuron(x), model(x))


def test_subgraph_builder_function_is_accepted_and_recorded(runtime_env):
    runtime_env(NEURON_RT_NUM_CORES="1")
    input0 = tf_keras.layers.Input(3)
    dense0 = tf_keras.layers.Dense(3)(input0)
    reshape0 = tf_keras.layers.Reshape([1, 3])(dense0)
    output0 = tf_keras.layers.Dense(2)(reshape0)
    model = tf_keras.Model(inputs=[input0], outputs=[output0])
    example_inputs = tf.random.uniform([1, 3])
    model_neuron = tfn.trace(model, example_inputs, subgraph_builder_function=lambda node: node.op == "MatMul")
    assert "ignored" in model_neuron.manifest.extra["subgraph_builder_function"]
    close(model_neuron(example_inputs), model(example_inputs))


def test_analyze_model_api_page_example(capsys):
    input0 = tf_keras.layers.Input(3)
    dense0 = tf_keras.layers.Dense(3)(input0)
    model = tf_keras.Model(inputs=[input0], outputs=[dense0])
    results = tfn.analyze_model(model, tf.random.uniform([1, 3]))
    assert results == {
        "percent_supported": 100.0, "supported_count": 2, "total_count": 2,
        "supported_operators": {"BiasAdd", "MatMul"}, "unsupported_operators": [],
        "operators": ["BiasAdd", "MatMul"], "operator_count": {"MatMul": 1, "BiasAdd": 1},
    }
    assert "100.00% of all operations (2 of 2) are supported" in capsys.readouterr().out


class ListWrapper(tf.keras.Model):
    """The HuggingFace tutorial's wrapper: ``__call__`` takes only the inputs (no ``training=``)."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def __call__(self, example_inputs):
        return self.inner(example_inputs[0]) + self.inner(example_inputs[1])


def test_trace_calls_the_model_as_tensorflow_neuron_does(runtime_env):
    runtime_env(NEURON_RT_NUM_CORES="2")
    inner = dense_model(tf_keras)
    a, b = (tf.random.uniform([2, 3], seed=s) for s in (1, 2))
    wrapper = ListWrapper(inner)
    traced = tfn.trace(wrapper, [a, b])  # a list: func(example_inputs)
    close(traced([a, b]), wrapper([a, b]))
    pair = tf.function(lambda x, y: x * y)
    traced_pair = tfn.trace(pair, (a, b))  # a tuple: func(*example_inputs)
    close(traced_pair(a, b), a * b)
    close(traced_pair((a, b)), a * b)
    keywords = tfn.trace(lambda left, right: {"sum": left + right}, {"left": a, "right": b})  # func(**inputs)
    close(keywords({"left": a, "right": b})["sum"], a + b)
    close(keywords(left=a, right=b)["sum"], a + b)


def test_a_list_is_not_mistaken_for_a_nested_python_list(runtime_env):
    runtime_env(NEURON_RT_NUM_CORES="1")
    model = dense_model(tf.keras)
    traced = tfn.trace(model, np.zeros((1, 3), "float32"))
    close(traced([[1.0, 2.0, 3.0]]), model(np.array([[1.0, 2.0, 3.0]], "float32")))


@pytest.mark.parametrize("flavour", sorted(KERAS))
def test_keras_flavours_trace_save_and_reload_alike(flavour, runtime_env, tmp_path):
    keras = KERAS[flavour]
    runtime_env(NCRT_INSTANCE_TYPE="inf1.xlarge")
    keras.utils.set_random_seed(3)
    inputs = keras.Input((6, 6, 2))
    x = keras.layers.Conv2D(3, 3, activation="relu")(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.Dropout(0.3)(keras.layers.Flatten()(x))
    model = keras.Model(inputs, keras.layers.Dense(4)(x))
    x = np.random.default_rng(0).random((3, 6, 6, 2), dtype=np.float32)
    traced = tfn.trace(model, x[:1])
    traced.save(tmp_path / "traced")
    loaders = [tf.keras.models.load_model, tf_keras.models.load_model, tf.saved_model.load]
    for load in loaders:
        reloaded = load(str(tmp_path / "traced"))
        assert isinstance(reloaded, ncrt_tf.NeuronModel)
        close(reloaded(x), model(x, training=False))
        del reloaded
        gc.collect()
    restored = tf.saved_model.load.__ncrt_original__(str(tmp_path / "traced"))  # TensorFlow's own loader
    close(restored(x), model(x, training=False))


def test_auto_replication_api_page_examples(runtime_env, tmp_path):
    runtime_env(NCRT_INSTANCE_TYPE="inf1.xlarge")
    model = dense_model(tf_keras)
    input0_tensor = tf.random.uniform([1, 3])
    model_neuron = tfn.trace(model, input0_tensor)
    multicore_model = tfn.auto_multicore(model_neuron, input0_tensor, num_cores=4)
    close(multicore_model(input0_tensor), model(input0_tensor))
    assert (multicore_model.placement, multicore_model.replica_count) == ("NC0-3", 4)
    model_dir = str(tmp_path / "model_neuron")
    model_neuron.save(model_dir)
    del multicore_model, model_neuron
    gc.collect()
    # TensorFlow's own loader gives a _UserObject; under ncrt.compat tf.saved_model.load places it.
    for load in (tf.saved_model.load.__ncrt_original__, tf.saved_model.load):
        reload_model = load(model_dir)
        multicore_model = tfn.auto_multicore(reload_model, input0_tensor, num_cores=4)
        assert multicore_model.replica_count == 4
        close(multicore_model(input0_tensor), model(input0_tensor))
        del multicore_model, reload_model
        gc.collect()


def test_auto_multicore_of_an_uncompiled_saved_model_traces_it(runtime_env, tmp_path):
    runtime_env(NCRT_INSTANCE_TYPE="inf1.xlarge")
    model = dense_model(tf.keras)
    model.export(str(tmp_path / "plain"))
    x = tf.random.uniform([2, 3])
    multicore = tfn.auto_multicore(tf.saved_model.load(str(tmp_path / "plain")), x, num_cores=2)
    assert multicore.replica_count == 2
    close(next(iter(multicore(x).values())), model(x))


def test_a_multicore_model_saves_and_reloads_replicated(runtime_env, tmp_path):
    runtime_env(NCRT_INSTANCE_TYPE="inf1.xlarge")
    model = dense_model(tf.keras)
    x = tf.random.uniform([1, 3])
    multicore = tfn.auto_multicore(tfn.trace(model, x), x, num_cores=3)
    tf.saved_model.save(multicore, str(tmp_path / "served" / "1"))
    del multicore
    gc.collect()
    again = tf.keras.models.load_model(str(tmp_path / "served" / "1"))
    assert (again.placement, again.replica_count) == ("NC0-2", 3)
    close(again(x), model(x))


def auto_multicore_script() -> str:
    found = shutil.which("tf-neuron-auto-multicore", path=os.path.dirname(sys.executable))
    assert found, "the tf-neuron-auto-multicore console script is installed with ncrt"
    return found


@pytest.mark.slow
def test_tf_neuron_auto_multicore_command(runtime_env, tmp_path, python_env):
    runtime_env(NCRT_INSTANCE_TYPE="inf1.xlarge")
    model = dense_model(tf.keras)
    x = tf.random.uniform([1, 3])
    tfn.trace(model, x).save(tmp_path / "compiled")
    command = [auto_multicore_script(), str(tmp_path / "compiled"), "--num_cores", "3",
               "--new_model_dir", str(tmp_path / "multicore")]
    done = subprocess.run(command, env=python_env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr
    assert "replicates itself on 3 NeuronCore(s)" in done.stdout
    reloaded = tf.keras.models.load_model(str(tmp_path / "multicore"))
    assert reloaded.replica_count == 3
    close(reloaded(x), model(x))
    again = subprocess.run(command, env=python_env, capture_output=True, text=True, timeout=240)
    assert again.returncode == 1 and "already exists" in again.stderr


def test_neuron_cc_flags_are_read_by_trace(runtime_env, monkeypatch):
    monkeypatch.setenv("NEURON_CC_FLAGS", "--neuroncore-pipeline-cores=2 --workdir ./artifacts --no-such-flag")
    runtime_env(NCRT_INSTANCE_TYPE="inf1.xlarge")
    model = dense_model(tf.keras)
    x = tf.random.uniform([1, 3])
    with pytest.warns(CompilerOptionWarning, match="--no-such-flag"):
        traced = tfn.trace(model, x, dynamic_batch_size=False)
    manifest = traced.manifest
    assert manifest.pipeline_cores == 2 and not manifest.dynamic_batching
    assert "--workdir" in manifest.extra["ignored_compiler_options"]
    assert manifest.extra["unknown_compiler_options"] == ["--no-such-flag"]
    assert traced.save  # placed on 2 cores when called
    close(traced(x), model(x))
    assert ncrt.get_runtime().models[0].placement.label == "NC0-1"
    monkeypatch.setenv("NEURON_CC_FLAGS", "--dynamic-batch-size")
    runtime_env(NCRT_INSTANCE_TYPE="inf1.xlarge")
    assert tfn.trace(model, x, dynamic_batch_size=False).manifest.dynamic_batching


def test_unet_sample_shape(runtime_env, monkeypatch, tmp_path):
    """aws-neuron-samples UnetTF2: NEURON_CC_FLAGS, trace, save, tf.saved_model.load, call."""
    monkeypatch.setenv("NEURON_CC_FLAGS", "--neuroncore-pipeline-cores=1 --workdir=logs/ --dynamic-batch-size")
    runtime_env(NCRT_INSTANCE_TYPE="inf1.xlarge")
    tf_keras.utils.set_random_seed(5)
    inputs = tf_keras.Input((16, 16, 1))
    down = tf_keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inputs)
    up = tf_keras.layers.UpSampling2D()(tf_keras.layers.MaxPool2D()(down))
    unet_model = tf_keras.Model(inputs, tf_keras.layers.Conv2D(2, 1, activation="softmax")(up + down))
    x = np.random.default_rng(2).random((3, 16, 16, 1), dtype=np.float32)
    neuron_model = tfn.trace(unet_model, x)
    neuron_model.save(str(tmp_path / "unet_circles_neuron"))
    neuron_model(x)  # warmup
    neuron_model = tf.saved_model.load(str(tmp_path / "unet_circles_neuron"))
    predictions = neuron_model(x)
    assert predictions.shape == (3, 16, 16, 2)
    close(predictions, unet_model(x))


def test_tf2_faq_signature_and_serving_forms(runtime_env, tmp_path):
    runtime_env(NCRT_INSTANCE_TYPE="inf1.xlarge")
    model = dense_model(tf.keras)
    model.export(str(tmp_path / "model_dir"))
    model_loaded = tf.saved_model.load(str(tmp_path / "model_dir"))
    predict_func = model_loaded.signatures["serving_default"]
    example_inputs2 = tf.random.uniform([2, 3])
    model_loaded_neuron = tfn.trace(predict_func, example_inputs2)
    model_loaded_neuron.save(str(tmp_path / "model_loaded_neuron_dir"))
    model = tf.keras.models.load_model(str(tmp_path / "model_loaded_neuron_dir"))
    output = model(example_inputs2)
    close(next(iter(output.values())), dense_model(tf.keras)(example_inputs2))
    traced = tfn.trace(dense_model(tf.keras), example_inputs2)
    tf.saved_model.save(traced, str(tmp_path / "model_neuron_dir" / "1"))  # the TF-Serving form
    served = tf.saved_model.load(str(tmp_path / "model_neuron_dir" / "1"))
    result = served.signatures["serving_default"](input_0=example_inputs2)
    close(result["output_0"], dense_model(tf.keras)(example_inputs2))
    with pytest.raises(BadInputError, match="keyword arguments"):
        tfn.trace(predict_func, (example_inputs2, example_inputs2))


def tf1_saved_model(directory: Path) -> Path:
    """A TF1-style SavedModel (``simple_save`` of a session graph), input 'input', output 'output'."""
    graph = tf.Graph()
    with graph.as_default():
        placeholder = tf.compat.v1.placeholder(tf.float32, [None, 4], name="input")
        weight = tf.compat.v1.get_variable("w", initializer=tf.constant(np.arange(8, dtype="float32").reshape(4, 2)))
        output = tf.nn.relu(tf.matmul(placeholder, weight), name="output")
        with tf.compat.v1.Session(graph=graph) as session:
            session.run(tf.compat.v1.global_variables_initializer())
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                tf.compat.v1.saved_model.simple_save(session, str(directory), inputs={"input": placeholder},
                                                     outputs={"output": output})
    return directory


def test_serving_tutorial_and_tf1_compile_forms(runtime_env, tmp_path):
    import tensorflow.neuron  # noqa: F401 - as the tutorial does: it makes tf.neuron

    runtime_env(NCRT_INSTANCE_TYPE="inf1.xlarge")
    modeldir = tf1_saved_model(tmp_path / "resnet50" / "1")
    neuron_modeldir = str(tmp_path / "resnet50_inf1" / "1")
    result = tf.neuron.saved_model.compile(str(modeldir), neuron_modeldir, batch_size=1)
    assert result["OnNeuronRatio"] == 1.0 and result["batch_size"] == 1
    predictor = tf.keras.models.load_model(neuron_modeldir)
    x = np.random.default_rng(1).random((1, 4), dtype=np.float32)
    close(predictor({"input": x})["output"], np.maximum(x @ np.arange(8, dtype="float32").reshape(4, 2), 0))
    yolo = tfn.saved_model.compile(str(modeldir), str(tmp_path / "yolo"), no_fuse_ops=["output"],
                                   minimum_segment_size=100, batch_size=2, dynamic_batch_size=True)
    pb2sm = tfn.saved_model.compile(str(modeldir), str(tmp_path / "pb2sm" / "1"),
                                    model_feed_dict={"input:0": np.zeros([3, 4], dtype="float16")},
                                    compiler_workdir=str(tmp_path / "work"), dynamic_batch_size=True,
                                    compiler_args=["--neuroncore-pipeline-cores", "2", "--static-weights"])
    assert yolo["batch_size"] == 2 and pb2sm["pipeline_cores"] == 2 and pb2sm["OnNeuronRatio"] * 100 >= 50
    recorded = ncrt_tf.compile.read_manifest(tmp_path / "pb2sm" / "1").extra
    assert set(recorded["ignored_compile_options"]) == {"compiler_workdir"}
    assert "--static-weights" in recorded["ignored_compiler_options"]
    shaped = tfn.saved_model.compile(str(modeldir), str(tmp_path / "shaped"), model_shape_feed_dict={"input": [5, 4]})
    assert shaped["batch_size"] == 5
    with pytest.raises(BadInputError, match="model_shape_feed_dict names no input"):
        tfn.saved_model.compile(str(modeldir), str(tmp_path / "bad"), model_shape_feed_dict={"nope": [1, 4]})


def test_a_freed_model_frees_its_cores(runtime_env, tmp_path):
    runtime = runtime_env(NEURON_RT_NUM_CORES="2")
    model = dense_model(tf.keras)
    x = tf.random.uniform([1, 3])
    tfn.trace(model, x).save(tmp_path / "m")
    for _ in range(3):
        with warnings.catch_warnings():
            warnings.simplefilter("error", ncrt.ModelSwitchWarning)  # no warning names a dead model
            loaded = tf.keras.models.load_model(str(tmp_path / "m"))
        assert loaded.placement == "NC0-1"
        close(loaded(x), model(x))
        del loaded
        gc.collect()
        assert runtime.models == [] and not any(runtime.table.occupants.values())
    traced = tfn.trace(model, x)
    traced(x)
    assert len(runtime.models) == 1
    del traced
    gc.collect()
    assert runtime.models == []
