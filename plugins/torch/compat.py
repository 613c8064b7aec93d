"""torch-neuron names for unmodified applications (installed by ``import ncrt.compat``).

``import torch_neuron`` gives a module whose ``trace``, ``DataParallel``,
``analyze_model``, ``get_supported_operations``, ``is_available``, ``Optimization`` and
``experimental`` (``neuron_cores_context``, ``multicore_context``, ``set_neuron_cores``,
``set_multicore``) are ncrt's own objects; importing torch sets ``torch.neuron`` to that
same module (``import torch.neuron`` works too). ``torch.jit.load`` of an ncrt-compiled
file returns a :class:`~ncrt.plugins.torch.NeuronModule` already placed on cores (seed
000: "loaded into the first group of NC0-NC1"), and so does ``torch.load`` (torch >= 2.6
refuses TorchScript archives with its default ``weights_only=True``; on the torch versions
torch-neuron supported, ``torch.load`` of a saved Neuron model returned it loaded). Other
files load as torch loads them.
"""

from __future__ import annotations

import functools
import os
import sys
import zipfile
from types import ModuleType
from typing import Any, Callable

from ncrt.adapters.torch import MANIFEST_EXTRA, manifest_text_in_archive

from . import analyze, compile, model, options, parallel, placement

__all__ = ["patch_torch", "torch_neuron_module"]

_EXPERIMENTAL = {
    "neuron_cores_context": placement.neuron_cores_context,
    "multicore_context": placement.multicore_context,
    "set_neuron_cores": model.set_neuron_cores,
    "set_multicore": model.set_multicore,
}

_EXPORTS = {
    "trace": compile.trace,
    "analyze_model": analyze.analyze_model,
    "get_supported_operations": analyze.get_supported_operations,
    "is_available": analyze.is_available,
    "Optimization": options.Optimization,
    "DataParallel": parallel.DataParallel,
    "load": model.load,
    "save": model.save,
    "NeuronModule": model.NeuronModule,
    "manifest_of": model.manifest_of,
    **_EXPERIMENTAL,  # also at the top level, as ncrt.plugins.torch has them
}

_module: ModuleType | None = None


def torch_neuron_module() -> ModuleType:
    """The one ``torch_neuron`` module (also ``torch.neuron``)."""
    global _module
    if _module is None:
        import ncrt

        module = ModuleType("torch_neuron", "torch-neuron API served by ncrt (ncrt.plugins.torch).")
        for name, value in _EXPORTS.items():
            setattr(module, name, value)
        module.experimental = _experimental_module()
        module.__path__ = []  # a package: ``import torch_neuron.experimental`` goes to the compat hooks
        module.__version__ = f"1.13.1+ncrt{ncrt.__version__}"
        module.__all__ = [*_EXPORTS, "experimental"]
        _module = module
    return _module


def _experimental_module() -> ModuleType:
    """``torch_neuron.experimental``: the core-placement API (importable by name through the compat hooks).

    It is not put in ``sys.modules`` here: a module found there is pickled by reference,
    and a process that unpickles (a Ray worker, say) may not have the compat names yet.
    """
    module = ModuleType("torch_neuron.experimental", "torch-neuron explicit core placement (ncrt).")
    for name, value in _EXPERIMENTAL.items():
        setattr(module, name, value)
    module.__all__ = list(_EXPERIMENTAL)
    return module


def experimental_module() -> ModuleType:
    """The ``experimental`` submodule of the one ``torch_neuron`` module."""
    return torch_neuron_module().experimental


def _placing_load(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def load(f: Any, map_location: Any = None, _extra_files: Any = None, **kwargs: Any) -> Any:
        if kwargs:
            return original(f, map_location, _extra_files, **kwargs)
        script, manifest, stem = model.load_script(f, map_location, None, _extra_files)
        if manifest is None:
            return script
        return model.place_script(script, manifest, stem)

    load.ncrt_original = original  # type: ignore[attr-defined]
    return load


def _is_ncrt_archive(f: Any) -> bool:
    """Whether ``f`` (a path or a seekable file) is a zip archive holding an ncrt manifest.

    Only the archive's directory is read (a large checkpoint is not read twice); a file
    object is left where it was.
    """
    if isinstance(f, (str, os.PathLike)):
        return os.path.isfile(f) and manifest_text_in_archive(os.fspath(f)) is not None
    try:
        position = f.tell()
    except (AttributeError, OSError, ValueError):
        return False
    try:
        with zipfile.ZipFile(f) as archive:
            return any(name.endswith("/extra/" + MANIFEST_EXTRA) for name in archive.namelist())
    except (zipfile.BadZipFile, OSError, ValueError):
        return False
    finally:
        f.seek(position)


def _neuron_aware_load(original: Callable[..., Any]) -> Callable[..., Any]:
    """``torch.load`` that returns an ncrt-compiled archive loaded and placed (unless ``weights_only=True``)."""
    @functools.wraps(original)
    def load(f: Any, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("weights_only") is True or not _is_ncrt_archive(f):
            return original(f, *args, **kwargs)
        map_location = args[0] if args else kwargs.get("map_location")
        script, manifest, stem = model.load_script(f, map_location)
        return model.place_script(script, manifest, stem)

    load.ncrt_original = original  # type: ignore[attr-defined]
    return load


def patch_torch(torch_module: ModuleType) -> None:
    """Set ``torch.neuron``; make ``torch.jit.load`` and ``torch.load`` place ncrt-compiled models (once)."""
    neuron = torch_neuron_module()
    torch_module.neuron = neuron
    sys.modules.setdefault("torch.neuron", neuron)
    jit = getattr(torch_module, "jit", None)
    if jit is not None and not hasattr(jit.load, "ncrt_original"):
        jit.load = _placing_load(jit.load)
    if hasattr(torch_module, "load") and not hasattr(torch_module.load, "ncrt_original"):
        torch_module.load = _neuron_aware_load(torch_module.load)
