"""The hooks through which ncrt learns about frameworks, devices and commands.

Every hook is prefixed ``ncrt_``. "Who handles this?" hooks are ``firstresult``: the
first plugin that returns something other than ``None`` answers, and returning ``None``
means "not mine, ask the next plugin". Plugins registered later are asked first, so a
third-party plugin can override a built-in one. The built-in behaviour (``ncrt.defaults``)
is itself a plugin registered through these same hooks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import argparse

    from .config import Config, VariableTable
    from .imports import ModuleHook
    from .manifest import Manifest
    from .model import LoadedModel, Model
    from .placement import Placement, PlacementRequest
    from .runtime import Runtime
    from .topology import Topology

PROJECT = "ncrt"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def ncrt_add_variables(variables: VariableTable) -> None:
    """Declare the environment variables this plugin reads (like pytest's ``pytest_addoption``).

    Call ``variables.add(Variable(name, description, accepted, default, parse, value=...))``
    for each. The runtime then parses and validates them at start-up with the core's
    own (a bad value is a :class:`~ncrt.errors.ConfigError`), ``config.setting(name)``
    returns the value, and the docs' configuration table lists them. Called once per
    plugin manager, after every plugin is registered.
    """


@hookspec
def ncrt_configure(config: Config) -> None:
    """Adjust the parsed configuration in place before cores are discovered and reserved.

    Called once per runtime, in every plugin. The legacy NCG shim translates
    ``NEURONCORE_GROUP_SIZES`` into runtime 2.x settings here. Return value is ignored.
    """


@hookspec(firstresult=True)
def ncrt_discover_cores(config: Config) -> Topology | None:
    """Return the cores this host offers, or ``None`` to let the next plugin answer.

    The default plugin answers with an instance-type preset (``NCRT_INSTANCE_TYPE``) or
    one core per host CPU.
    """


@hookspec(firstresult=True)
def ncrt_load(artifact: Any, config: Config) -> Model | None:
    """Turn an artifact (a path to a compiled model or a framework object) into a Model.

    Return ``None`` when the artifact is not of a format this plugin knows. A plugin
    that recognises the format but finds it broken raises :class:`ncrt.errors.ModelLoadError`.
    The Model carries its ``runner(model, inputs, core)``: the runtime calls it for every
    execution of the model, in the core's executor thread (or inline in the caller's), so
    which plugin runs a model is decided here, once.
    """


@hookspec(firstresult=True)
def ncrt_placement(model: Model, request: PlacementRequest, runtime: Runtime) -> Placement | None:
    """Choose the process cores a model occupies, or return ``None`` to defer.

    The default plugin implements runtime 2.x placement: explicit device ids, a FlexEG
    start core, or the next free group of the model's size in load order.
    """


@hookspec(firstresult=True)
def ncrt_read_manifest(path: str) -> Manifest | None:
    """Read the ncrt manifest of the compiled model at ``path`` without loading the model.

    Return ``None`` when ``path`` is not in this plugin's format (used by
    ``ncrt check-model`` and ``ncrt bench``).
    """


@hookspec
def ncrt_model_loaded(loaded: LoadedModel) -> None:
    """Observe a model that has just been placed (for reports and tools)."""


@hookspec
def ncrt_model_unloaded(loaded: LoadedModel) -> None:
    """Observe a model that has just been taken off its cores (``loaded.unload()``, or its
    framework object was garbage-collected); its cores count as free again."""


@hookspec
def ncrt_runtime_started(runtime: Runtime) -> None:
    """Observe a runtime that has reserved its cores (start publishers, reports)."""


@hookspec
def ncrt_process_record(runtime: Runtime, record: dict[str, Any]) -> None:
    """Add this plugin's fields to the runtime's record before it is written.

    ``record`` is what ``procs/<pid>.json`` in the state directory will hold
    (``runtime.describe()`` plus ``command`` and ``time``); change it in place. The
    runtime's one record writer calls this each time it publishes (at start-up, after
    each load, and whenever a plugin asks through :func:`ncrt.records.publish`).
    """


@hookspec
def ncrt_runtime_stopping(runtime: Runtime) -> None:
    """Observe a runtime about to release its cores (write reports, stop publishers)."""


@hookspec
def ncrt_compat_modules() -> dict[str, ModuleHook] | None:
    """Neuron SDK module names this plugin provides once ``ncrt.compat`` is imported.

    Map a module name to a :class:`~ncrt.imports.ModuleHook`: ``create`` makes a module
    that does not exist on its own (``torch_neuron``, ``tensorflow.neuron``); ``prepare``
    and ``patch`` run right before and right after a real framework module (``torch``,
    ``mxnet``) is imported, or ``patch`` at once if it already is. Return ``None`` when
    the plugin provides nothing.
    """


@hookspec
def ncrt_add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Add ``ncrt`` subcommands. Each parser sets ``func=callable(args) -> int``."""
