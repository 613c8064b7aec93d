"""tensorflow-neuron tutorials end to end: HuggingFace DistilBERT/BERT, the API pages verbatim.

HuggingFace models are random-config ``transformers<5`` TF models (no weights are
downloaded); they are tf-keras (Keras 2) models inside a Keras 3 ``tf.keras.Model``
wrapper, as in the tutorial. The API pages' snippets are Keras 2 code
(``tf.keras.layers.Input(3)``): they run verbatim in a child process with
``TF_USE_LEGACY_KERAS=1``, tensorflow-neuron's Keras.
"""

from __future__ import annotations

import concurrent.futures
import subprocess
import textwrap
import time

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
pytest.importorskip("tf_keras")
transformers = pytest.importorskip("transformers")

import ncrt.compat  # noqa: E402,F401
import tensorflow_neuron as tfn  # noqa: E402


class DistilBertWrapper(tf.keras.Model):
    """The tutorial's wrapper, verbatim: the inputs as a list instead of a dict."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def __call__(self, example_inputs):
        return self.model({"input_ids": example_inputs[0], "attention_mask": example_inputs[1]})


def encoded(batch_size: int, length: int, vocab: int) -> dict:
    rng = np.random.default_rng(0)
    ids = rng.integers(0, vocab, (batch_size, length)).astype("int32")
    mask = np.ones_like(ids)
    mask[:, length // 2:] = rng.integers(0, 2, (batch_size, length - length // 2))
    return {"input_ids": tf.constant(ids), "attention_mask": tf.constant(mask)}


@pytest.mark.slow
def test_huggingface_distilbert_tutorial(runtime_env, tmp_path):
    runtime_env(NCRT_INSTANCE_TYPE="inf1.xlarge")
    config = transformers.DistilBertConfig(vocab_size=100, dim=32, n_layers=2, n_heads=2, hidden_dim=64,
                                           max_position_embeddings=64)
    model = DistilBertWrapper(transformers.TFDistilBertModel(config))
    batch_size = 4
    encoded_input = encoded(batch_size, 16, config.vocab_size)
    example_input = [encoded_input["input_ids"], encoded_input["attention_mask"]]
    model_neuron = tfn.trace(model, example_input)
    running = model_neuron(example_input)
    model_neuron.save(str(tmp_path / "distilbert-neuron-b16"))
    del model_neuron
    reloaded_neuron_model = tf.keras.models.load_model(str(tmp_path / "distilbert-neuron-b16"))
    expected = model(example_input)["last_hidden_state"].numpy()
    np.testing.assert_allclose(running["last_hidden_state"].numpy(), expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(reloaded_neuron_model(example_input)["last_hidden_state"].numpy(), expected,
                               rtol=1e-4, atol=1e-5)
    latency_list = []

    def inference_with_latency_calculation(example_input):
        start = time.time()
        result = reloaded_neuron_model(example_input)
        latency_list.append((time.time() - start) * 1000)
        return result

    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as executor:
        futures = [executor.submit(inference_with_latency_calculation, example_input) for _ in range(16)]
        for future in concurrent.futures.as_completed(futures):
            np.testing.assert_allclose(future.result()["last_hidden_state"].numpy(), expected, rtol=1e-4, atol=1e-5)
    assert len(latency_list) == 16 and np.percentile(latency_list, 50) > 0


@pytest.mark.slow
def test_huggingface_bert_classifier_traced_with_a_dict(runtime_env, tmp_path):
    runtime_env(NCRT_INSTANCE_TYPE="inf1.xlarge")
    config = transformers.BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                     intermediate_size=64, max_position_embeddings=64, num_labels=3)
    model = transformers.TFBertForSequenceClassification(config)
    inputs = encoded(2, 12, config.vocab_size)
    traced = tfn.trace(model, inputs)  # a dict: model(**example_inputs)
    traced.save(str(tmp_path / "bert"))
    reloaded = tf.keras.models.load_model(str(tmp_path / "bert"))
    bigger = encoded(5, 12, config.vocab_size)  # dynamic batching: any batch size
    got = reloaded(bigger)["logits"].numpy()
    np.testing.assert_allclose(got, model(**bigger).logits.numpy(), rtol=1e-4, atol=1e-5)


API_PAGES = textwrap.dedent("""
    import ncrt.compat
    import tensorflow as tf
    import tensorflow.neuron as tfn

    # tracing API page
    input0 = tf.keras.layers.Input(3)
    dense0 = tf.keras.layers.Dense(3)(input0)
    model = tf.keras.Model(inputs=[input0], outputs=[dense0])
    example_inputs = tf.random.uniform([1, 3])
    model_neuron = tfn.trace(model, example_inputs)  # trace
    # check to see how much of the model was compiled successfully
    print(model_neuron.on_neuron_ratio)

    model_dir = './model_neuron'
    model_neuron.save(model_dir)
    model_neuron_reloaded = tf.keras.models.load_model(model_dir)

    # analyze_model API page
    results = tfn.analyze_model(model, example_inputs)
    print(results)

    # auto-replication API page, TF2.x traced models
    input0_tensor = tf.random.uniform([1, 3])
    num_cores = 4
    multicore_model = tfn.auto_multicore(model_neuron, input0_tensor, num_cores=num_cores)
    multicore_model(input0_tensor)

    # auto-replication API page, TF2.x saved models (tf.saved_model.load: the page's
    # `from tensorflow.python import saved_model` names a module, not the function)
    reload_model = tf.saved_model.load(model_dir)
    multicore_model = tfn.auto_multicore(reload_model, input0_tensor, num_cores=num_cores)
    print(multicore_model.placement, multicore_model.replica_count,
          float(tf.reduce_max(tf.abs(multicore_model(input0_tensor) - model(input0_tensor)))))
    print(type(model).__module__.split(".")[0])
""")


@pytest.mark.slow
def test_api_page_snippets_run_verbatim_on_keras_2(python, python_env, tmp_path):
    python_env.update(TF_USE_LEGACY_KERAS="1", NCRT_INSTANCE_TYPE="inf1.xlarge")
    done = subprocess.run([python, "-c", API_PAGES], env=python_env, cwd=tmp_path, capture_output=True,
                          text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    assert lines[0] == "1.0" and "100.00% of all operations (2 of 2) are supported" in done.stdout
    placement, replicas, error = lines[-2].split()
    assert (placement, replicas) == ("NC0-3", "4") and float(error) < 1e-6
    assert lines[-1] == "tf_keras"
