"""The TensorFlow plugin: compile, placement, dynamic batching, auto multicore, CLI, compat.

Every behaviour compares real outputs with the plain Keras model on the same batch.
Models are built once per module (TensorFlow is slow to start) in a temporary directory.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import warnings

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

import ncrt  # noqa: E402
from ncrt.cli import main as ncrt_main  # noqa: E402
from ncrt.errors import BadInputError, HashMismatchError, PlacementError  # noqa: E402
from ncrt.plugins import tensorflow as tfn  # noqa: E402
from ncrt.plugins.tensorflow import hooks as tensorflow_hooks  # noqa: E402

SHAPE = (12, 12, 3)


def small_cnn(seed: int = 0):
    tf.keras.utils.set_random_seed(seed)
    inputs = tf.keras.Input(SHAPE)
    x = tf.keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    return tf.keras.Model(inputs, tf.keras.layers.Dense(3)(x))


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A Keras CNN, its SavedModel, and compiled variants (pipeline 1-4, dynamic on/off)."""
    root = tmp_path_factory.mktemp("tf_models")
    keras_model = small_cnn()
    keras_model.export(str(root / "base"))
    compiled = {}
    for cores in (1, 2, 3, 4):
        compiled[cores] = root / f"p{cores}" / "1"
        tfn.saved_model.compile(root / "base", compiled[cores], model_feed_dict={"input_1:0": np.zeros((2, *SHAPE))},
                                dynamic_batch_size=True, compiler_args=["--neuroncore-pipeline-cores", str(cores)])
    compiled["static"] = root / "static"
    tfn.saved_model.compile(root / "base", compiled["static"], model_feed_dict={"input_1:0": np.zeros((2, *SHAPE))})
    traced = tfn.trace(keras_model, np.zeros((1, *SHAPE), "float32"))
    compiled["traced"] = traced.save(root / "traced")
    return {"keras": keras_model, "dirs": compiled, "root": root}


def batch(n: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).random((n, *SHAPE), dtype=np.float32)


def only(outputs):
    return next(iter(outputs.values())) if isinstance(outputs, dict) else outputs


def assert_matches(keras_model, outputs, x) -> None:
    np.testing.assert_allclose(only(outputs).numpy(), keras_model(x).numpy(), rtol=1e-5, atol=1e-5)


def test_importing_the_plugin_imports_no_tensorflow():
    code = "import sys, ncrt.plugins.tensorflow, ncrt.cli; ncrt.cli.build_parser(); print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_manifest_records_batch_pipeline_and_hash(models):
    manifest = tensorflow_hooks.ncrt_read_manifest(str(models["dirs"][3]))
    assert (manifest.framework, manifest.batch_size, manifest.pipeline_cores) == ("tensorflow", 2, 3)
    assert manifest.dynamic_batching and manifest.sha256
    assert manifest.inputs[0]["shape"] == [2, *SHAPE] and manifest.inputs[0]["dtype"] == "float32"
    assert tensorflow_hooks.ncrt_read_manifest(str(models["root"] / "base")) is None


def test_four_models_land_in_consecutive_groups(models, runtime_env):
    runtime_env(NCRT_INSTANCE_TYPE="inf1.6xlarge", NEURON_RT_NUM_CORES="13")
    loaded = [tfn.load_model(models["dirs"][cores]) for cores in (2, 4, 3, 4)]
    assert [m.placement for m in loaded] == ["NC0-1", "NC2-5", "NC6-8", "NC9-12"]
    x = batch(5)
    for model in loaded:
        assert_matches(models["keras"], model(x), x)


def test_two_one_core_models_share_the_group_when_cores_run_out(models, runtime_env):
    runtime_env(NEURON_RT_NUM_CORES="2")
    first = tfn.load_model(models["dirs"][1])
    with pytest.warns(ncrt.ModelSwitchWarning):
        second = tfn.load_model(models["dirs"][1])
    assert (first.placement, second.placement) == ("NC0-1", "NC0-1")
    assert first.replica_count == 2
    x = batch(3)
    assert_matches(models["keras"], second(x), x)


def test_default_replication_is_up_to_four_cores(models, runtime_env):
    runtime = runtime_env(NCRT_INSTANCE_TYPE="inf1.6xlarge")
    model = tfn.load_model(models["dirs"][1])
    assert (model.placement, model.replica_count) == ("NC0-3", 4)
    assert tfn.default_replicas(runtime) == 4


@pytest.mark.parametrize("size", [1, 2, 7, 8])
def test_dynamic_batching_splits_any_batch(models, runtime_env, size):
    runtime_env(NCRT_INSTANCE_TYPE="inf1.xlarge")
    model = tfn.load_model(models["dirs"][1])
    x = batch(size, seed=size)
    assert_matches(models["keras"], model(x), x)
    assert_matches(models["keras"], model({"input_1:0": tf.constant(x)}), x)


def test_without_dynamic_batching_a_mismatched_batch_is_refused(models, runtime_env):
    runtime_env(NEURON_RT_NUM_CORES="1")
    model = tfn.load_model(models["dirs"]["static"])
    x = batch(2)
    assert_matches(models["keras"], model(x), x)
    with pytest.raises(BadInputError, match="compiled for batch size 2 without dynamic batching, got a batch of 3"):
        model(batch(3))


def test_auto_multicore_replicates_once_loaded_weights(models, runtime_env):
    runtime_env(NCRT_INSTANCE_TYPE="inf1.xlarge")
    model = tfn.auto_multicore(models["keras"], batch(1), num_cores=4)
    assert (model.placement, model.replica_count) == ("NC0-3", 4)
    payloads = {id(model.loaded.model.payload)}
    results: dict[int, np.ndarray] = {}

    def call(index: int) -> None:
        results[index] = model(batch(index + 1, seed=index)).numpy()

    threads = [threading.Thread(target=call, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for index, value in results.items():
        np.testing.assert_allclose(value, models["keras"](batch(index + 1, seed=index)).numpy(), rtol=1e-5, atol=1e-5)
    executions = [ncrt.get_runtime().counters[core].executions for core in range(4)]
    assert sum(1 for count in executions if count) >= 2 and len(payloads) == 1


def test_auto_multicore_refuses_pipelined_models_and_too_many_cores(models, runtime_env):
    runtime_env(NEURON_RT_NUM_CORES="2")
    with pytest.raises(BadInputError, match="--neuroncore-pipeline-cores=1; this model was compiled for 2"):
        tfn.auto_multicore(str(models["dirs"][2]), num_cores=2)
    with pytest.raises(PlacementError, match="asks for 3 NeuronCores but this process has 2"):
        tfn.auto_multicore(models["dirs"]["traced"], num_cores=3)


def test_feed_returns_outputs_in_order(models, runtime_env):
    runtime_env(NEURON_RT_NUM_CORES="2", NEURON_MAX_NUM_INFERS="3")
    model = tfn.auto_multicore(models["dirs"]["traced"], num_cores=2)
    stream = [batch(1 + i % 4, seed=i) for i in range(12)]
    outputs = tfn.feed(model, stream)
    for x, out in zip(stream, outputs):
        assert_matches(models["keras"], out, x)


def hold_cores(runtime, count):
    """Keep ``count`` cores busy with a python model until the returned event is set."""
    gate = threading.Event()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ncrt.ModelSwitchWarning)
        holder = runtime.load(ncrt.Model("gate", "python", ncrt.Manifest("python"), lambda: gate.wait(30)),
                              replicas=count)
    held = [holder.submit((), replica=index) for index in range(count)]
    return gate, held


def test_feed_joins_small_requests_into_larger_executions(models, runtime_env):
    runtime = runtime_env(NEURON_RT_NUM_CORES="2")
    model = tfn.auto_multicore(models["dirs"]["traced"], num_cores=2)
    stream = [batch(1 + i % 4, seed=i) for i in range(12)]  # 30 rows in 12 requests
    gate, held = hold_cores(runtime, 2)  # the cores are busy: the requests wait, and get joined
    outputs = []
    feeding = threading.Thread(target=lambda: outputs.extend(tfn.feed(model, stream, threads=4, max_batch=8)))
    feeding.start()
    while model.loaded.coalescer is None or len(model.loaded.coalescer._pending) < 10:
        time.sleep(0.005)  # two requests have gone to the cores, ten wait to be joined
    gate.set()
    feeding.join(30)
    coalescer = model.loaded.coalescer
    assert len(outputs) == len(stream) and coalescer.largest <= 8
    assert coalescer.executions <= 2 + 4 and coalescer.joined >= 10  # 2 alone, then at most 4 of <= 8 rows
    for x, out in zip(stream, outputs):
        assert_matches(models["keras"], out, x)  # each request gets its own rows back


def test_outputs_become_tensors_holding_their_own_copy(monkeypatch):
    from ncrt.plugins.tensorflow import execute

    array = np.arange(6, dtype=np.float32).reshape(2, 3)
    kept = tf.constant([1.0])
    for maker in (None, tf.constant):  # TensorFlow's EagerTensor, and the public fallback
        if maker is not None:
            monkeypatch.setattr(execute, "_make_eager_tensor", maker)
        out = execute.output_tensors({"rows": array[1:], "kept": kept, "text": np.array([b"x"], dtype=object)})
        assert all(isinstance(value, tf.Tensor) for value in out.values()) and out["kept"] is kept
        assert out["rows"].dtype == tf.float32 and out["text"].numpy().tolist() == [b"x"]
        array[1, 0] = 100.0  # the tensor holds a copy: later writes to the array do not reach it
        assert out["rows"].numpy().tolist() == [[3.0, 4.0, 5.0]]
        array[1, 0] = 3.0


def test_feed_with_max_batch_works_through_any_callable(models, runtime_env):
    runtime_env(NEURON_RT_NUM_CORES="2")
    model = tfn.auto_multicore(models["dirs"]["traced"], num_cores=2)
    stream = [batch(1 + i % 3, seed=i) for i in range(9)]
    outputs = tfn.feed(lambda x: model(x), stream, threads=3, max_batch=8)
    for x, out in zip(stream, outputs):
        assert_matches(models["keras"], out, x)
    with pytest.raises(BadInputError, match="max_batch=0 is not valid"):
        tfn.feed(model, stream, max_batch=0)


def test_cli_writes_a_self_replicating_model(models, runtime_env, tmp_path, capsys):
    target = tmp_path / "replicating"
    assert ncrt_main(["tf-auto-multicore", str(models["dirs"]["traced"]), "--num_cores", "3",
                      "--new_model_dir", str(target)]) == 0
    assert "replicates itself on 3" in capsys.readouterr().out
    runtime_env(NCRT_INSTANCE_TYPE="inf1.xlarge")
    model = tfn.load_model(target)
    assert (model.placement, model.replica_count) == ("NC0-2", 3)
    x = batch(4)
    assert_matches(models["keras"], model(x), x)
    assert ncrt_main(["tf-auto-multicore", str(models["dirs"][2]), "--num_cores", "2",
                      "--new_model_dir", str(tmp_path / "no")]) == 1


def test_hash_is_checked_when_validation_is_on(models, runtime_env, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(models["dirs"]["traced"], broken)
    with open(broken / "saved_model.pb", "ab") as handle:
        handle.write(b"x")
    runtime_env(NEURON_RT_VALIDATE_HASH="true", NEURON_RT_NUM_CORES="1")
    tfn.load_model(models["dirs"]["traced"])
    with pytest.raises(HashMismatchError):
        tfn.load_model(broken)


def test_plain_ncrt_load_runs_the_compiled_model(models, runtime_env):
    runtime_env(NEURON_RT_NUM_CORES="1")
    loaded = ncrt.load(str(models["dirs"]["static"]))
    x = batch(2)
    np.testing.assert_allclose(only(loaded(x)), models["keras"](x).numpy(), rtol=1e-5, atol=1e-5)


def test_compat_names_and_keras_load_model(models, runtime_env, tmp_path):
    import ncrt.compat  # noqa: F401
    import tensorflow.neuron as neuron

    assert neuron.saved_model.compile is tfn.saved_model.compile and neuron.auto_multicore is tfn.auto_multicore
    runtime_env(NEURON_RT_NUM_CORES="2")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ncrt.ModelSwitchWarning)
        placed = tf.keras.models.load_model(str(models["dirs"][2]))
    assert isinstance(placed, tfn.NeuronModel) and placed.placement == "NC0-1"
    models["keras"].save(tmp_path / "plain.keras")
    plain = tf.keras.models.load_model(tmp_path / "plain.keras")
    x = batch(2)
    np.testing.assert_allclose(plain(x).numpy(), models["keras"](x).numpy(), rtol=1e-6)
    assert_matches(models["keras"], placed(x), x)


def test_bad_inputs_get_clear_errors(models, runtime_env):
    runtime_env(NEURON_RT_NUM_CORES="1")
    model = tfn.load_model(models["dirs"]["traced"])
    with pytest.raises(BadInputError, match=r"takes 1 input\(s\)"):
        model(batch(1), batch(1))
    with pytest.raises(BadInputError, match="scalar"):
        model(np.float32(1.0))
    with pytest.raises(ncrt.errors.ModelLoadError, match="not an ncrt-compiled TensorFlow model"):
        tfn.load_model(models["root"] / "base")
    assert json.loads(json.dumps(model.describe()))["compiled_batch"] == 1


def test_first_calls_of_a_traced_model_from_many_threads_make_one_placement(models, runtime_env):
    runtime = runtime_env(NCRT_INSTANCE_TYPE="inf1.xlarge")
    placed = []

    class CountLoads:
        @ncrt.hookimpl
        def ncrt_model_loaded(self, loaded):
            placed.append(loaded.placement.label)

    runtime.pm.register(CountLoads())
    traced = tfn.trace(models["keras"], np.zeros((1, *SHAPE), "float32"))
    images = [batch(1, seed) for seed in range(8)]
    start = threading.Barrier(8, timeout=10)
    outputs, errors = {}, []

    def call(index):
        try:
            start.wait()
            outputs[index] = traced(images[index])
        except BaseException as error:  # noqa: BLE001 - checked below
            errors.append(error)

    threads = [threading.Thread(target=call, args=(index,)) for index in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors[:3]
    assert len(placed) == 1 and len(runtime.models) == 1  # one placement, not one per first caller
    for index, image in enumerate(images):
        assert_matches(models["keras"], outputs[index], image)
