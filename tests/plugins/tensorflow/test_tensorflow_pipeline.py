"""NeuronCore Pipeline for TensorFlow: Keras layer graphs cut into stages that stream over their cores."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from ncrt.errors import BadInputError, ExecutionError, PlacementError  # noqa: E402
from ncrt.pipeline import PipelineStagesWarning  # noqa: E402
from ncrt.plugins import tensorflow as tfn  # noqa: E402
from ncrt.plugins.tensorflow import pipeline as tf_pipeline  # noqa: E402

keras = tf.keras


def two_inputs_dict_outputs():
    """Two inputs, a skip connection, a dict of two outputs."""
    keras.utils.set_random_seed(0)
    image, extra = keras.Input((8, 8, 3), name="image"), keras.Input((5,), name="extra")
    a = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="c1")(image)
    b = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="c2")(a)
    c = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="c3")(b)
    pooled = keras.layers.GlobalAveragePooling2D(name="gap")(keras.layers.Add(name="skip")([a, c]))
    out = keras.layers.Add(name="plus_extra")([keras.layers.Dense(5, name="head")(pooled), extra])
    return keras.Model([image, extra], {"out": out, "features": pooled})


def tuple_outputs():
    """One input, a list of two outputs (a tuple when called through ncrt)."""
    keras.utils.set_random_seed(1)
    x = keras.Input((6,))
    h = keras.layers.Dense(16, activation="relu")(x)
    h = keras.layers.Dense(16, activation="relu")(h)
    h = keras.layers.Dense(16, activation="tanh")(h)
    return keras.Model(x, [keras.layers.Dense(3)(h), keras.layers.Dense(2)(h)])


def sequential():
    keras.utils.set_random_seed(2)
    model = keras.Sequential([keras.layers.Dense(8), keras.layers.ReLU(), keras.layers.Dense(8),
                              keras.layers.ReLU(), keras.layers.Dense(3)])
    model(np.zeros((1, 6), "float32"))
    return model


def rng(seed=0):
    return np.random.default_rng(seed)


def close(actual, expected):
    np.testing.assert_allclose(np.asarray(actual), np.asarray(expected), rtol=1e-5, atol=1e-5)


@pytest.fixture
def inf1(runtime_env):
    return runtime_env(NCRT_INSTANCE_TYPE="inf1.xlarge", NEURON_MAX_NUM_INFERS="16")


@pytest.mark.parametrize("args", [["--neuroncore-pipeline-cores", "2"], "--neuroncore-pipeline-cores 3",
                                  ["--neuroncore-pipeline-cores=4"]])
def test_every_spelling_of_the_flag_cuts_the_model(inf1, args):
    model = two_inputs_dict_outputs()
    image, extra = rng().random((2, 8, 8, 3), "float32"), rng(1).random((2, 5), "float32")
    traced = tfn.trace(model, [image, extra], compiler_args=args)
    cores = traced.manifest.pipeline_cores
    assert traced.manifest.stage_count == cores
    outputs = traced(image, extra)
    expected = model([image, extra])
    for key in ("out", "features"):
        close(outputs[key], expected[key])
    assert [s.core.index for s in traced._placed.loaded.pipelines[0].stages] == list(range(cores))


def test_dict_outputs_saved_loaded_and_dynamically_batched_equal_the_unsplit_model(inf1, tmp_path):
    model = two_inputs_dict_outputs()
    image, extra = rng().random((2, 8, 8, 3), "float32"), rng(1).random((2, 5), "float32")
    traced = tfn.trace(model, [image, extra], compiler_args="--neuroncore-pipeline-cores 2")
    traced.save(tmp_path / "piped")
    tfn.trace(model, [image, extra]).save(tmp_path / "whole")
    piped = tfn.load_model(tmp_path / "piped")
    whole = tfn.load_model(tmp_path / "whole", replicas=1)
    assert piped.loaded.pipelines is not None and piped.manifest.partition == traced.manifest.partition
    image, extra = rng(2).random((7, 8, 8, 3), "float32"), rng(3).random((7, 5), "float32")
    ours, theirs, keras_out = piped(image, extra), whole(image, extra), model([image, extra])
    for key in ("out", "features"):
        close(ours[key], theirs[key])
        close(ours[key], keras_out[key])
    assert piped({"input_0": image, "input_1": extra})["out"].shape == (7, 5)


def test_tuple_outputs_and_sequential_models(inf1):
    model = tuple_outputs()
    x = rng().random((4, 6), "float32")
    traced = tfn.trace(model, x, compiler_args="--neuroncore-pipeline-cores 3")
    assert traced.manifest.stage_count == 3
    first, second = traced(x)
    want_first, want_second = model(x)
    close(first, want_first)
    close(second, want_second)
    seq = sequential()
    traced = tfn.trace(seq, np.zeros((1, 6), "float32"), compiler_args="--neuroncore-pipeline-cores=2")
    assert traced.manifest.stage_count == 2
    x = rng(4).random((5, 6), "float32")
    close(traced(x), seq(x))


def test_the_partition_records_layers_cost_and_weights(inf1):
    model = two_inputs_dict_outputs()
    traced = tfn.trace(model, [np.zeros((1, 8, 8, 3)), np.zeros((1, 5))], compiler_args="--neuroncore-pipeline-cores 2")
    partition = traced.manifest.partition
    assert partition["requested"] == 2 and "eager time per Keras layer call" in partition["cost_basis"]
    assert partition["stages"][0]["first"] == "c1" and partition["stages"][-1]["last"] == "plus_extra"
    assert sum(stage["units"] for stage in partition["stages"]) == 7  # c1 c2 c3 skip gap head plus_extra
    assert sum(stage["param_bytes"] for stage in partition["stages"]) == 4 * model.count_params()


def test_request_k_plus_1_runs_in_stage_0_while_k_is_in_stage_1(inf1, stage_timeline):
    stage_timeline.record(tf_pipeline)
    model = tuple_outputs()
    traced = tfn.trace(model, np.zeros((1, 6), "float32"), compiler_args="--neuroncore-pipeline-cores 2",
                       dynamic_batch_size=False)
    traced(np.zeros((1, 6), "float32"))
    stage_timeline.intervals.clear()
    loaded = traced._placed.loaded
    inputs = [rng(k).random((1, 6), "float32") for k in range(6)]
    futures = [loaded.submit((x,)) for x in inputs]
    for future, x in zip(futures, inputs):
        close(future.result()["output_0"], model(x)[0])
    assert stage_timeline.overlaps() >= 3, stage_timeline.intervals


def test_an_error_in_a_stage_reaches_only_its_request(inf1):
    keras.utils.set_random_seed(3)
    x, index = keras.Input((4,)), keras.Input((2,), dtype="int32")
    h = keras.layers.Dense(8, activation="relu")(keras.layers.Dense(8, activation="relu")(x))
    model = keras.Model([x, index], keras.layers.Lambda(
        lambda t: tf.gather(t[0], t[1], axis=1, batch_dims=1), output_shape=(2,))([h, index]))
    traced = tfn.trace(model, [np.zeros((1, 4), "float32"), np.zeros((1, 2), "int32")],
                       compiler_args="--neuroncore-pipeline-cores 2", dynamic_batch_size=False)
    traced(np.zeros((1, 4), "float32"), np.zeros((1, 2), "int32"))
    loaded = traced._placed.loaded
    data = rng().random((1, 4), "float32")
    good, bad = np.array([[1, 3]], "int32"), np.array([[1, 99]], "int32")
    futures = [loaded.submit((data, index)) for index in (good, bad, good)]
    close(futures[0].result()["output_0"], model([data, good]))
    with pytest.raises(ExecutionError, match="(?s)stage 1 of 2 of model .* on NeuronCore NC1.*99"):
        futures[1].result()
    close(futures[2].result()["output_0"], model([data, good]))


def test_models_without_a_layer_graph_warn_once_and_run_whole(inf1, tmp_path):
    tiny = keras.Sequential([keras.layers.Dense(2)])
    tiny(np.zeros((1, 3), "float32"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        traced = tfn.trace(tiny, np.zeros((1, 3), "float32"), compiler_args="--neuroncore-pipeline-cores 2")
    found = [w for w in caught if issubclass(w.category, PipelineStagesWarning)]
    assert len(found) == 1 and "only 1 layer call" in str(found[0].message) and found[0].filename == __file__
    x = rng().random((3, 3), "float32")
    close(traced(x), tiny(x))
    assert traced._placed.placement == "NC0-1" and traced._placed.loaded.pipelines is None

    with pytest.warns(PipelineStagesWarning, match="a TensorFlow function|not a functional or sequential"):
        tfn.trace(tf.function(lambda t: t * 2), np.zeros((1, 3), "float32"), compiler_args="--neuroncore-pipeline-cores 2")

    tiny.export(str(tmp_path / "base"))
    with pytest.warns(PipelineStagesWarning, match="SavedModel signature carries no Keras layer graph"):
        tfn.saved_model.compile(tmp_path / "base", tmp_path / "compiled", compiler_args=["--neuroncore-pipeline-cores", "2"])


def test_pipelines_are_replicated_over_a_multiple_of_their_cores(inf1, tmp_path):
    model = tuple_outputs()
    tfn.trace(model, np.zeros((1, 6), "float32"), compiler_args="--neuroncore-pipeline-cores 2").save(tmp_path / "m")
    replicated = tfn.load_model(tmp_path / "m", replicas=2)
    assert replicated.placement == "NC0-3"
    assert [[s.core.index for s in p.stages] for p in replicated.loaded.pipelines] == [[0, 1], [2, 3]]
    inputs = [rng(k).random((2, 6), "float32") for k in range(8)]
    for got, x in zip(tfn.feed(replicated, inputs, threads=4), inputs):
        close(got[0], model(x)[0])
    assert all(core["executions"] > 0 for core in inf1.describe()["cores"])
    replicated.unload()
    by_ids = tfn.load_model(tmp_path / "m", device_ids=[2, 3])
    assert by_ids.placement == "NC2-3" and by_ids.replica_count == 1


def test_a_replica_that_cannot_fit_is_a_clear_error(inf1, tmp_path):
    tfn.trace(tuple_outputs(), np.zeros((1, 6), "float32"), compiler_args="--neuroncore-pipeline-cores 2").save(tmp_path / "m")
    with pytest.raises(PlacementError, match=r"whole 2-core pipelines, but device_ids=\[0, 1, 2\] names 3"):
        tfn.load_model(tmp_path / "m", device_ids=[0, 1, 2])
    with pytest.raises(PlacementError, match="3 replica.s. of .* need 6 NeuronCores but this process has 4"):
        tfn.load_model(tmp_path / "m", replicas=3)
    with pytest.raises(BadInputError, match="--neuroncore-pipeline-cores=1"):
        tfn.auto_multicore(tmp_path / "m", num_cores=4)  # seed 000: auto replication is for 1-core models


def test_ncg_groups_each_hold_one_pipeline(runtime_env, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        runtime_env(NCRT_INSTANCE_TYPE="inf1.xlarge", NEURONCORE_GROUP_SIZES="2,2")
    model = tuple_outputs()
    tfn.trace(model, np.zeros((1, 6), "float32"), compiler_args="--neuroncore-pipeline-cores 2").save(tmp_path / "m")
    first, second = tfn.load_model(tmp_path / "m"), tfn.load_model(tmp_path / "m")
    assert (first.placement, second.placement) == ("NC0-1", "NC2-3")
    assert [s.core.index for s in second.loaded.pipelines[0].stages] == [2, 3]
    x = rng().random((2, 6), "float32")
    close(first(x)[1], second(x)[1])
    close(second(x)[1], model(x)[1])
