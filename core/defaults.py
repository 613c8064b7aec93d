"""The built-in plugin: host cores, runtime 2.x placement, and plain Python callables.

Registered like any third-party plugin (``DEFAULT_PLUGINS``); other plugins answer
first for their own formats and may override placement.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .hookspecs import hookimpl
from .manifest import Manifest
from .model import Model
from .placement import Placement, PlacementRequest
from .topology import Topology, build_topology

if TYPE_CHECKING:
    from .config import Config
    from .runtime import Runtime

PYTHON = "python"


@hookimpl(trylast=True)
def ncrt_discover_cores(config: Config) -> Topology:
    return build_topology(config.instance_type)


@hookimpl(trylast=True)
def ncrt_load(artifact: Any, config: Config) -> Model | None:
    """Any plain callable is a 1-core model that runs in the core's executor thread."""
    if isinstance(artifact, Model):
        return artifact
    if callable(artifact):
        name = getattr(artifact, "__name__", type(artifact).__name__)
        return Model(name, PYTHON, Manifest(framework=PYTHON), artifact)  # runs with call_payload
    return None


@hookimpl(trylast=True)
def ncrt_placement(model: Model, request: PlacementRequest, runtime: Runtime) -> Placement:
    """Exact device ids, a FlexEG start core (or device index), or the next free group in load order."""
    table = runtime.table
    start = request.start if request.start is not None else request.device_index
    if request.device_ids is not None:
        cores = table.check_devices(request.device_ids)
    elif start is not None:
        cores = table.check_fits(start, request.size)
    else:
        cores = table.next_group(request.size)
    return Placement(cores=cores, cores_per_replica=request.cores_per_replica)
