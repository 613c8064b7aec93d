"""Neuron SDK names for unmodified applications: ``import ncrt.compat`` installs them.

Plugins declare them through ``ncrt_compat_modules`` as :class:`~ncrt.imports.ModuleHook`
objects: virtual modules such as ``torch_neuron`` or ``tensorflow.neuron``, and patches
applied to a framework module right after it is imported (``torch.neuron``,
``mx.neuron``). They take effect through the one import-hook mechanism,
:mod:`ncrt.imports`. Nothing is imported eagerly: a framework is patched when the
application imports it, or at once if it is already imported.
"""

from __future__ import annotations

from .imports import ModuleHook, install, installed_names
from .manager import shared_plugin_manager

__all__ = ["install_all", "installed_names"]


def install_all() -> None:
    """Install the names every registered plugin provides (idempotent)."""
    hooks: dict[str, ModuleHook] = {}
    for provided in shared_plugin_manager().hook.ncrt_compat_modules():
        hooks.update(provided or {})
    install(hooks)


install_all()
