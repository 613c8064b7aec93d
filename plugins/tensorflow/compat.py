"""tensorflow-neuron names for unmodified applications (installed by ``import ncrt.compat``).

``tensorflow.neuron`` and ``tensorflow_neuron`` (tensorflow-neuron 2.x's module name) are
one virtual module with ncrt's ``saved_model``, ``trace``, ``analyze_model``,
``auto_multicore``, ``load_model``, ``feed`` and ``NeuronModel``. Importing TensorFlow sizes
its thread pools for per-core executors and makes TensorFlow's and Keras's own save and
load functions handle ncrt-compiled models, as they did under tensorflow-neuron:

* ``tf.keras.models.load_model(dir)`` and ``tf.saved_model.load(dir)`` of an ncrt-compiled
  SavedModel return a placed :class:`NeuronModel` (other paths: TensorFlow/Keras as usual);
* ``tf.saved_model.save(traced, dir)``, ``tf.keras.models.save_model(traced, dir)`` and
  ``traced.save(dir)`` write a traced (or placed) model with its manifest.

The same load/save handling is added to ``tf_keras.models`` when tf-keras (Keras 2) is
imported, and to whichever Keras ``tf.keras`` is (``TF_USE_LEGACY_KERAS=1`` makes it tf-keras).
"""

from __future__ import annotations

import functools
import types
from typing import Any, Callable

from .analyze import analyze_model
from .compile import TracedModel, compile_saved_model, is_compiled_dir, trace
from .execute import configure_threads
from .model import NeuronModel, load_model
from .parallel import auto_multicore, feed

__all__ = ["patch_tensorflow", "patch_tf_keras", "saved_model", "tensorflow_neuron_module"]

saved_model = types.SimpleNamespace(compile=compile_saved_model, load=load_model)
"""``tfn.saved_model``: ``compile(model_dir, new_model_dir, model_feed_dict=..., ...)``."""

_EXPORTS = {
    "saved_model": saved_model,
    "trace": trace,
    "analyze_model": analyze_model,
    "auto_multicore": auto_multicore,
    "load_model": load_model,
    "feed": feed,
    "NeuronModel": NeuronModel,
}

_module: types.ModuleType | None = None


def tensorflow_neuron_module() -> types.ModuleType:
    """The virtual ``tensorflow.neuron`` / ``tensorflow_neuron`` module (one object for both names)."""
    global _module
    if _module is None:
        _module = types.ModuleType("tensorflow_neuron", "tensorflow-neuron's API, served by ncrt")
        for name, value in _EXPORTS.items():
            setattr(_module, name, value)
        _module.__version__ = "2.0.0+ncrt"
    return _module


def _wrap(owner: Any, name: str, make: Callable[[Callable[..., Any]], Callable[..., Any]]) -> None:
    """Replace ``owner.name`` with ``make(original)`` once; the wrapper keeps the original."""
    original = getattr(owner, name, None)
    if original is None or getattr(original, "__ncrt_original__", None) is not None:
        return
    wrapper = functools.wraps(original)(make(original))
    wrapper.__ncrt_original__ = original  # type: ignore[attr-defined]
    setattr(owner, name, wrapper)


def _loading(original: Callable[..., Any]) -> Callable[..., Any]:
    def load_or_place(filepath: Any, *args: Any, **kwargs: Any) -> Any:
        if is_compiled_dir(filepath):
            return load_model(filepath)
        return original(filepath, *args, **kwargs)
    return load_or_place


def _saving(original: Callable[..., Any]) -> Callable[..., Any]:
    def save_or_write(obj: Any, filepath: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(obj, (TracedModel, NeuronModel)):
            return obj.save(filepath)
        return original(obj, filepath, *args, **kwargs)
    return save_or_write


def _patch_keras_models(models: Any) -> None:
    _wrap(models, "load_model", _loading)
    _wrap(models, "save_model", _saving)


def _patch_saved_model(tf: types.ModuleType) -> None:
    """``tf.saved_model.load``/``save``, wrapped where TensorFlow defines them.

    ``tensorflow.saved_model`` can be imported again as a new module object (Keras's
    ``export`` does), which copies the functions from their defining modules: wrapping
    those keeps every copy wrapped.
    """
    from tensorflow.python.saved_model import load as load_module
    from tensorflow.python.saved_model import save as save_module

    _wrap(load_module, "load", _loading)
    _wrap(save_module, "save", _saving)
    for name, home in (("load", load_module), ("save", save_module)):
        if getattr(getattr(tf.saved_model, name), "__ncrt_original__", None) is None:
            setattr(tf.saved_model, name, getattr(home, name))


def patch_tensorflow(tf: types.ModuleType) -> None:
    """Sizes TF's pools; TF's and Keras's save/load functions handle ncrt-compiled models."""
    configure_threads(tf)  # TF was just imported: its thread pools can still be sized
    _patch_keras_models(tf.keras.models)
    _patch_saved_model(tf)


def patch_tf_keras(tf_keras: types.ModuleType) -> None:
    """``tf_keras.models.load_model`` / ``save_model`` handle ncrt-compiled models too."""
    models = getattr(tf_keras, "models", None)
    if models is not None:
        _patch_keras_models(models)
