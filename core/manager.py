"""The plugin manager: built-in plugins, third-party plugins from entry points, blocking."""

from __future__ import annotations

import importlib
import importlib.util
from typing import Iterable

import pluggy

from . import hookspecs
from .config import CORE_VARIABLES, VariableTable, blocked_plugins

__all__ = [
    "DEFAULT_PLUGINS",
    "ENTRY_POINT_GROUP",
    "plugin_manager",
    "shared_plugin_manager",
    "shared_variable_table",
    "variable_table",
]

ENTRY_POINT_GROUP = "ncrt"

# Named as strings: the core never imports ncrt.plugins or ncrt.adapters directly. Each
# entry is (name, module): the name is what NCRT_DISABLE_PLUGINS blocks.
DEFAULT_PLUGINS: tuple[tuple[str, str], ...] = (
    ("defaults", "ncrt.defaults"),
    ("records", "ncrt.records"),
    ("torch", "ncrt.plugins.torch.hooks"),
    ("tensorflow", "ncrt.plugins.tensorflow.hooks"),
    ("mxnet", "ncrt.plugins.mxnet.hooks"),
    ("ncg", "ncrt.plugins.ncg.shim"),
    ("report", "ncrt.plugins.ncg.report"),
    ("launcher", "ncrt.plugins.ncg.launcher"),
    ("migrate", "ncrt.plugins.ncg.migrate"),
    ("stats", "ncrt.plugins.tools.stats"),
    ("top", "ncrt.plugins.tools.top"),
    ("monitor", "ncrt.plugins.tools.monitor"),
    ("bench", "ncrt.plugins.tools.bench"),
    ("check_model", "ncrt.plugins.tools.check_model"),
    ("ray", "ncrt.plugins.ray.commands"),
)


def _blocked_names(blocked: Iterable[str] | None) -> set[str]:
    if blocked is None:
        blocked = blocked_plugins()
    return {name.strip() for name in blocked if name.strip()}


def _register_defaults(pm: pluggy.PluginManager, blocked: set[str]) -> None:
    for name, module_name in DEFAULT_PLUGINS:
        if name in blocked:
            pm.set_blocked(name)
            continue
        if importlib.util.find_spec(module_name) is None:
            continue  # a built-in plugin not shipped in this build
        pm.register(importlib.import_module(module_name), name=name)


def plugin_manager(blocked: Iterable[str] | None = None, entry_points: bool = True) -> pluggy.PluginManager:
    """A fresh manager with the built-in plugins and the ``ncrt`` entry-point plugins.

    ``blocked`` (default: ``NCRT_DISABLE_PLUGINS``, parsed by :func:`ncrt.config.blocked_plugins`) names plugins to skip,
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


def variable_table(pm: pluggy.PluginManager) -> VariableTable:
    """The core's variables and those every plugin of ``pm`` declares (``ncrt_add_variables``)."""
    table = VariableTable(CORE_VARIABLES)
    pm.hook.ncrt_add_variables(variables=table)
    return table


_shared: pluggy.PluginManager | None = None
_shared_table: VariableTable | None = None


def shared_plugin_manager() -> pluggy.PluginManager:
    """The process's manager for uses without a runtime (commands, compat names)."""
    global _shared
    if _shared is None:
        _shared = plugin_manager()
    return _shared


def shared_variable_table() -> VariableTable:
    """The variables of :func:`shared_plugin_manager`'s plugins."""
    global _shared_table
    if _shared_table is None:
        _shared_table = variable_table(shared_plugin_manager())
    return _shared_table
