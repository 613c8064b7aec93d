"""ncrt: a NeuronCore runtime for any host.

Applications written for the AWS Neuron SDK get the same core reservation, model
placement and data-parallel execution on ordinary CPUs. ``import ncrt`` imports no
machine-learning framework; each framework plugin imports its own lazily.

Using it::

    import ncrt
    model = ncrt.load(my_callable)          # placed on the next free core group
    outputs = model(inputs)                 # runs on that core's executor

Writing a plugin
----------------
A plugin is a module or object with functions marked ``@ncrt.hookimpl`` whose names
are hooks of :mod:`ncrt.hookspecs` (every hook there is documented with its signature
and what returning ``None`` means)::

    import ncrt

    @ncrt.hookimpl
    def ncrt_load(artifact, config):
        if not isinstance(artifact, MyFormat):
            return None                     # not mine: the next plugin is asked
        return ncrt.Model("mine", "myframework", ncrt.Manifest(framework="myframework"), artifact,
                          runner=run_mine)  # the runtime calls run_mine for every execution

    def run_mine(model, inputs, core):      # in core.index's executor thread, on core.cpus
        return model.payload.run(*inputs)

Publish it under the ``ncrt`` entry-point group (``[project.entry-points.ncrt]``
``myplugin = "mypackage.ncrt_plugin"``). ``NCRT_DISABLE_PLUGINS=myplugin,ncg`` blocks
plugins by name, built-in ones included (``torch``, ``tensorflow``, ``mxnet``, ``ncg``).
"""

from __future__ import annotations

from typing import Any

from . import errors
from .config import Config
from .errors import NcrtError
from .hookspecs import hookimpl
from .manifest import Manifest
from .model import LoadedModel, Model
from .placement import ModelSwitchWarning, Placement, PlacementRequest
from .runtime import LocalCore, Runtime, current_runtime, get_runtime, reset_runtime
from .stash import Stash, StashKey

__version__ = "0.1.0"

__all__ = [
    "Config",
    "LoadedModel",
    "LocalCore",
    "Manifest",
    "Model",
    "ModelSwitchWarning",
    "NcrtError",
    "Placement",
    "PlacementRequest",
    "Runtime",
    "Stash",
    "StashKey",
    "current_runtime",
    "errors",
    "get_runtime",
    "hookimpl",
    "load",
    "reset_runtime",
]


def load(artifact: Any, **placement: Any) -> LoadedModel:
    """Load ``artifact`` into this process's runtime and place it (see ``Runtime.load``)."""
    return get_runtime().load(artifact, **placement)
