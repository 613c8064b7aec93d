"""Neuron SDK names for unmodified applications: ``import ncrt.compat`` installs them.

Plugins declare them through ``ncrt_compat_modules``: virtual modules such as
``torch_neuron`` or ``tensorflow.neuron``, and patches applied to a framework module
right after it is imported (``torch.neuron``, ``mx.neuron``). Nothing is imported
eagerly: a framework is patched when the application imports it, or at once if it is
already imported.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import sys
from types import ModuleType
from typing import Callable, Sequence

from .manager import shared_plugin_manager

__all__ = ["install", "installed_names"]

Provider = Callable[[ModuleType | None], ModuleType | None]


class _VirtualLoader(importlib.abc.Loader):
    def __init__(self, provide: Provider) -> None:
        self.provide = provide

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        module = self.provide(None)
        assert module is not None, f"compat provider for {spec.name} returned no module"
        return module

    def exec_module(self, module: ModuleType) -> None:
        pass


class _PatchingLoader(importlib.abc.Loader):
    """Runs the real loader, then the patch."""

    def __init__(self, real: importlib.abc.Loader, patch: Provider) -> None:
        self.real, self.patch = real, patch

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self.real.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self.real.exec_module(module)
        self.patch(module)


class CompatFinder(importlib.abc.MetaPathFinder):
    """Answers for the virtual names and wraps the loaders of patched frameworks."""

    def __init__(self, providers: dict[str, Provider]) -> None:
        self.providers = providers
        self._busy: set[str] = set()

    def find_spec(self, name: str, path: Sequence[str] | None = None, target: ModuleType | None = None):
        provide = self.providers.get(name)
        if provide is None or name in self._busy:
            return None
        self._busy.add(name)
        try:
            real = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            real = None
        finally:
            self._busy.discard(name)
        if real is None:
            return importlib.machinery.ModuleSpec(name, _VirtualLoader(provide))
        real.loader = _PatchingLoader(real.loader, provide)
        return real


_finder: CompatFinder | None = None


def install() -> CompatFinder:
    """Install the names every plugin provides (idempotent)."""
    global _finder
    if _finder is not None:
        return _finder
    providers: dict[str, Provider] = {}
    for names in shared_plugin_manager().hook.ncrt_compat_modules():
        providers.update(names or {})
    _finder = CompatFinder(providers)
    sys.meta_path.insert(0, _finder)
    for name, provide in providers.items():
        if name in sys.modules:
            provide(sys.modules[name])
    return _finder


def installed_names() -> list[str]:
    return sorted(_finder.providers) if _finder else []


install()
