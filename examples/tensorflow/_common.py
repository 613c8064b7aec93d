"""Shared by the TensorFlow examples: a small Keras CNN standing in for the seeds' ResNet50.

The examples are about placement and replication, not accuracy, so a two-layer CNN with
random weights keeps them fast; ``benchmarks/bench_tensorflow_replication.py`` uses ResNet50.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

__all__ = ["IMAGE", "build_cnn", "export_saved_model", "check", "workdir"]

IMAGE = (32, 32, 3)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def build_cnn(seed: int = 0):
    """A small image classifier (Keras 3 functional model)."""
    import tensorflow as tf

    tf.keras.utils.set_random_seed(seed)
    inputs = tf.keras.Input(IMAGE, name="input_1")
    x = tf.keras.layers.Conv2D(8, 3, activation="relu")(inputs)
    x = tf.keras.layers.MaxPooling2D()(x)
    x = tf.keras.layers.Conv2D(16, 3, activation="relu")(x)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    return tf.keras.Model(inputs, tf.keras.layers.Dense(10)(x))


def workdir() -> Path:
    """A temporary directory, removed when the example exits."""
    path = Path(tempfile.mkdtemp(prefix="ncrt-tf-example-"))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def export_saved_model(model, directory: Path) -> Path:
    """Write ``model`` as a plain TF SavedModel (what tensorflow-neuron compiles)."""
    model.export(str(directory), verbose=False)
    return directory


def check(outputs, reference: np.ndarray) -> None:
    """Fail loudly if ncrt's outputs differ from the plain Keras model's."""
    value = next(iter(outputs.values())) if isinstance(outputs, dict) else outputs
    np.testing.assert_allclose(np.asarray(value), reference, rtol=1e-4, atol=1e-5)
