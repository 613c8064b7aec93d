"""Where ``mx.neuron(index)`` places a model: FlexEG start core ``index`` (runtime 2.x)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ncrt.placement import PlacementRequest

if TYPE_CHECKING:
    from ncrt.runtime import Runtime

__all__ = ["NCG_GROUPS_KEY", "placement_request"]

NCG_GROUPS_KEY = "ncg_groups"


def placement_request(index: int, cores: int, runtime: Runtime) -> PlacementRequest:
    """What ``mx.neuron(index)`` asks of the runtime for a model needing ``cores`` cores.

    Runtime 2.x (FlexEG): ``index`` is the first core of the group. Under legacy
    NeuronCore Groups (the ncg plugin sets ``config.extra["ncg_groups"]``) it is the group
    index, answered by that plugin's placement.
    """
    if runtime.config.extra.get(NCG_GROUPS_KEY):
        return PlacementRequest(cores_per_replica=cores, group=index)
    return PlacementRequest(cores_per_replica=cores, start=index)
