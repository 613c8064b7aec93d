"""The one import-hook mechanism: virtual modules, and patches applied when a module is imported.

A :class:`ModuleHook` says what to do about one module name: ``create`` makes a module
that does not exist on its own (``torch_neuron``, ``tensorflow.neuron``); ``prepare``
runs right before a real module executes (MXNet reads its thread settings at import);
``patch`` runs right after (``torch.neuron``, ``mx.neuron``). :func:`install` puts the
hooks into effect through one finder on ``sys.meta_path``: a module already imported is
patched at once, any other when it is imported; nothing is imported here.

``import ncrt.compat`` installs every plugin's hooks (``ncrt_compat_modules``); a plugin
that must patch its framework whenever it is itself imported installs its own hooks
through the same :func:`install`.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import sys
import threading
from dataclasses import dataclass
from types import ModuleType
from typing import Callable, Mapping, Sequence

__all__ = ["ModuleHook", "install", "installed_names"]


@dataclass(frozen=True)
class ModuleHook:
    """What to do about one module name (every part optional)."""

    create: Callable[[], ModuleType] | None = None
    prepare: Callable[[], None] | None = None
    patch: Callable[[ModuleType], None] | None = None


class _VirtualLoader(importlib.abc.Loader):
    def __init__(self, create: Callable[[], ModuleType]) -> None:
        self.create = create

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        return self.create()

    def exec_module(self, module: ModuleType) -> None:
        pass


class _HookedLoader(importlib.abc.Loader):
    """Runs the real loader between the hook's ``prepare`` and ``patch``."""

    def __init__(self, real: importlib.abc.Loader, hook: ModuleHook) -> None:
        self.real, self.hook = real, hook

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self.real.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        if self.hook.prepare is not None:
            self.hook.prepare()
        self.real.exec_module(module)
        if self.hook.patch is not None:
            self.hook.patch(module)


class _Finder(importlib.abc.MetaPathFinder):
    """Answers for the virtual names and wraps the loaders of hooked real modules."""

    def __init__(self) -> None:
        self.hooks: dict[str, ModuleHook] = {}
        self._busy = threading.local()

    def find_spec(self, name: str, path: Sequence[str] | None = None, target: ModuleType | None = None):
        hook = self.hooks.get(name)
        if hook is None or getattr(self._busy, "name", None) == name:
            return None
        real = self._real_spec(name)
        if real is None or real.loader is None:
            if hook.create is None:
                return None
            return importlib.machinery.ModuleSpec(name, _VirtualLoader(hook.create))
        real.loader = _HookedLoader(real.loader, hook)
        return real

    def _real_spec(self, name: str) -> importlib.machinery.ModuleSpec | None:
        self._busy.name = name
        try:
            return importlib.util.find_spec(name)
        except (ImportError, ValueError):
            return None
        finally:
            self._busy.name = None


_finder = _Finder()
_lock = threading.Lock()


def install(hooks: Mapping[str, ModuleHook]) -> None:
    """Put ``hooks`` into effect (idempotent per name: a name's first hook stays)."""
    with _lock:
        if _finder not in sys.meta_path:
            sys.meta_path.insert(0, _finder)
        fresh = {name: hook for name, hook in hooks.items() if name not in _finder.hooks}
        _finder.hooks.update(fresh)
    for name, hook in fresh.items():
        module = sys.modules.get(name)
        if module is not None and hook.patch is not None:
            hook.patch(module)


def installed_names() -> list[str]:
    """The module names that have hooks."""
    return sorted(_finder.hooks)
