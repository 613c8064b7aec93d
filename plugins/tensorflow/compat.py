"""tensorflow-neuron names for unmodified applications (installed by ``import ncrt.compat``).

``tensorflow.neuron`` is a virtual module with ncrt's ``saved_model``, ``trace``,
``auto_multicore``, ``load_model``, ``feed`` and ``NeuronModel``; importing TensorFlow
sizes its thread pools for per-core executors and makes ``tf.keras.models.load_model``
load ncrt-compiled SavedModels.
"""

from __future__ import annotations

import functools
import types
from typing import Any

from .compile import compile_saved_model, is_compiled_dir, trace
from .execute import configure_threads
from .model import NeuronModel, load_model
from .parallel import auto_multicore, feed

__all__ = ["saved_model", "patch_tensorflow", "tensorflow_neuron_module"]

saved_model = types.SimpleNamespace(compile=compile_saved_model, load=load_model)
"""``tfn.saved_model``: ``compile(model_dir, new_model_dir, model_feed_dict=..., ...)``."""

_EXPORTS = {
    "saved_model": saved_model,
    "trace": trace,
    "auto_multicore": auto_multicore,
    "load_model": load_model,
    "feed": feed,
    "NeuronModel": NeuronModel,
}


def tensorflow_neuron_module() -> types.ModuleType:
    """The virtual ``tensorflow.neuron`` module."""
    module = types.ModuleType("tensorflow.neuron", "tensorflow-neuron's API, served by ncrt")
    for name, value in _EXPORTS.items():
        setattr(module, name, value)
    return module


def patch_tensorflow(tf: types.ModuleType) -> None:
    """Make ``tf.keras.models.load_model`` load ncrt-compiled SavedModels (Keras 3 cannot)."""
    configure_threads(tf)  # TF was just imported: its thread pools can still be sized
    models = tf.keras.models
    original = models.load_model
    if getattr(original, "__ncrt_wrapped__", False):
        return

    @functools.wraps(original)
    def load_model_or_ncrt(filepath: Any, *args: Any, **kwargs: Any) -> Any:
        if is_compiled_dir(filepath):
            return load_model(filepath)
        return original(filepath, *args, **kwargs)

    load_model_or_ncrt.__ncrt_wrapped__ = True  # type: ignore[attr-defined]
    models.load_model = load_model_or_ncrt

