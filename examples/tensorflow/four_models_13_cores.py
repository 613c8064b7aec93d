"""seeds/000, "Running multiple models using single process" (TensorFlow 2.x).

Four models compiled to 2, 4, 3 and 4 NeuronCores, loaded in sequence with
``tf.keras.models.load_model`` in a process holding 13 cores of an inf1.6xlarge, land on
NC0-1, NC2-5, NC6-8 and NC9-12.

# env: NCRT_INSTANCE_TYPE=inf1.6xlarge NEURON_RT_NUM_CORES=13
"""

from __future__ import annotations

import os

import numpy as np
from _common import IMAGE, build_cnn, check, export_saved_model, workdir

import ncrt.compat  # noqa: F401  (tensorflow.neuron, tf.keras.models.load_model for compiled models)


def main() -> None:
    os.environ.setdefault("NEURON_RT_NUM_CORES", "13")
    import tensorflow as tf
    import tensorflow.neuron as tfn

    root = workdir()
    keras_model = build_cnn()
    export_saved_model(keras_model, root / "cnn")
    example = np.zeros([1, *IMAGE], dtype="float32")
    files = []
    for index, cores in enumerate((2, 4, 3, 4)):
        files.append(root / f"model{index}")
        tfn.saved_model.compile(root / "cnn", files[-1], model_feed_dict={"input_1:0": example},
                                dynamic_batch_size=True, compiler_args=["--neuroncore-pipeline-cores", str(cores)])
    models = [tf.keras.models.load_model(str(path)) for path in files]
    inputs = np.random.default_rng(0).random([4, *IMAGE], dtype=np.float32)
    for index, model in enumerate(models):
        check(model(inputs), keras_model(inputs).numpy())
        print(f"model{index} -> {model.placement}")


if __name__ == "__main__":
    main()
