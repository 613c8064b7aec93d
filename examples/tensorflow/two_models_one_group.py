"""seeds/000, "Running multiple models on the same NeuronCore group" (TensorFlow 2.x).

With ``NEURON_RT_NUM_CORES=2`` a 1-core model is replicated on both cores (NC0-1); the
second model loaded after the process's cores are used up shares the same group, and the
runtime switches between them (a ModelSwitchWarning says so).

# env: NEURON_RT_NUM_CORES=2
"""

from __future__ import annotations

import os
import warnings

import numpy as np
from _common import IMAGE, build_cnn, check, export_saved_model, workdir

import ncrt
import ncrt.compat  # noqa: F401


def main() -> None:
    os.environ.setdefault("NEURON_RT_NUM_CORES", "2")
    import tensorflow as tf
    import tensorflow.neuron as tfn

    root = workdir()
    keras_models = [build_cnn(seed) for seed in (0, 1)]
    for index, keras_model in enumerate(keras_models):
        export_saved_model(keras_model, root / f"cnn{index}")
        tfn.saved_model.compile(root / f"cnn{index}", root / f"model{index}",
                                model_feed_dict={"input_1:0": np.zeros([1, *IMAGE], "float32")},
                                dynamic_batch_size=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ncrt.ModelSwitchWarning)
        model0 = tf.keras.models.load_model(str(root / "model0"))  # loaded into the first group of NC0-NC1
        model1 = tf.keras.models.load_model(str(root / "model1"))  # loaded into the first group of NC0-NC1
    inputs = np.random.default_rng(0).random([3, *IMAGE], dtype=np.float32)
    for index, (model, keras_model) in enumerate(zip((model0, model1), keras_models)):
        check(model(inputs), keras_model(inputs).numpy())
        print(f"model{index} -> {model.placement} ({model.replica_count} replicas)")
    print(f"shared group warned: {any(issubclass(w.category, ncrt.ModelSwitchWarning) for w in caught)}")


if __name__ == "__main__":
    main()
