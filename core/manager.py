"""The plugin manager: built-in plugins, third-party plugins from entry points, blocking."""

from __future__ import annotations

import importlib
import importlib.util
import os
from typing import Iterable

import pluggy

from . import hookspecs

__all__ = ["DEFAULT_PLUGINS", "ENTRY_POINT_GROUP", "plugin_manager", "shared_plugin_manager", "short_name"]

ENTRY_POINT_GROUP = "ncrt"

# Named as strings: the core never imports ncrt.plugins or ncrt.adapters directly.
DEFAULT_PLUGINS: tuple[str, ...] = (
    "ncrt.defaults",
    "ncrt.records",
    "ncrt.plugins.torch",
    "ncrt.plugins.tensorflow",
    "ncrt.plugins.mxnet",
    "ncrt.plugins.ncg",
    "ncrt.plugins.report",
    "ncrt.plugins.launcher",
    "ncrt.plugins.migrate",
    "ncrt.plugins.stats",
    "ncrt.plugins.top",
    "ncrt.plugins.monitor",
    "ncrt.plugins.bench",
    "ncrt.plugins.check_model",
    "ncrt.plugins.ray",
)


def short_name(module_name: str) -> str:
    """``ncrt.plugins.torch`` -> ``torch``: the name NCRT_DISABLE_PLUGINS uses."""
    return module_name.rsplit(".", 1)[-1]


def _blocked_names(blocked: Iterable[str] | None) -> set[str]:
    if blocked is None:
        blocked = os.environ.get("NCRT_DISABLE_PLUGINS", "").split(",")
    return {name.strip() for name in blocked if name.strip()}


def _register_defaults(pm: pluggy.PluginManager, blocked: set[str]) -> None:
    for module_name in DEFAULT_PLUGINS:
        name = short_name(module_name)
        if name in blocked:
            pm.set_blocked(name)
            continue
        if importlib.util.find_spec(module_name) is None:
            continue  # a built-in plugin not shipped in this build
        pm.register(importlib.import_module(module_name), name=name)


def plugin_manager(blocked: Iterable[str] | None = None, entry_points: bool = True) -> pluggy.PluginManager:
    """A fresh manager with the built-in plugins and the ``ncrt`` entry-point plugins.

    ``blocked`` (default: ``NCRT_DISABLE_PLUGINS``, a comma list) names plugins to skip,
    built-in (``torch``, ``ncg``, ...) or third-party (the entry-point name).
    """
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    names = _blocked_names(blocked)
    _register_defaults(pm, names)
    for name in names:
        pm.set_blocked(name)
    if entry_points:
        pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
    pm.check_pending()
    return pm


_shared: pluggy.PluginManager | None = None


def shared_plugin_manager() -> pluggy.PluginManager:
    """The process's manager for uses without a runtime (commands, compat names)."""
    global _shared
    if _shared is None:
        _shared = plugin_manager()
    return _shared
