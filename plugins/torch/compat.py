"""torch-neuron names for unmodified applications (installed by ``import ncrt.compat``).

``import torch_neuron`` gives a module whose ``trace``, ``DataParallel`` (and the core
placement functions) are ncrt's own objects; importing torch sets ``torch.neuron`` to
that same module, and ``torch.jit.load`` of an ncrt-compiled file returns a
:class:`~ncrt.plugins.torch.NeuronModule` already placed on cores (seed 000: "loaded into
the first group of NC0-NC1"). Other TorchScript files load unchanged.
"""

from __future__ import annotations

import functools
import sys
from types import ModuleType
from typing import Any, Callable

from . import compile, model, parallel, placement

__all__ = ["patch_torch", "torch_neuron_module"]

_EXPORTS = {
    "trace": compile.trace,
    "load": model.load,
    "save": model.save,
    "NeuronModule": model.NeuronModule,
    "set_neuron_cores": model.set_neuron_cores,
    "set_multicore": model.set_multicore,
    "neuron_cores_context": placement.neuron_cores_context,
    "manifest_of": model.manifest_of,
    "DataParallel": parallel.DataParallel,
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
        module.__version__ = f"1.13.1+ncrt{ncrt.__version__}"
        module.__all__ = list(_EXPORTS)
        _module = module
    return _module


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


def patch_torch(torch_module: ModuleType) -> None:
    """Set ``torch.neuron`` and make ``torch.jit.load`` place ncrt-compiled models (once)."""
    neuron = torch_neuron_module()
    torch_module.neuron = neuron
    sys.modules.setdefault("torch.neuron", neuron)
    jit = getattr(torch_module, "jit", None)
    if jit is not None and not hasattr(jit.load, "ncrt_original"):
        jit.load = _placing_load(jit.load)
