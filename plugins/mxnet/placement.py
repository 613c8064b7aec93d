"""Where ``mx.neuron(index)`` places a model: the framework's device index, which the runtime reads.

Under runtime 2.x the index is the FlexEG start core of the model's group; under the
legacy ``NEURONCORE_GROUP_SIZES`` the ncg plugin answers the same request with group
``index``. This plugin only says what the application asked for.
"""

from __future__ import annotations

from ncrt.placement import PlacementRequest

__all__ = ["placement_request"]


def placement_request(index: int, cores: int) -> PlacementRequest:
    """What ``mx.neuron(index)`` asks of the runtime for a model needing ``cores`` cores."""
    return PlacementRequest(cores_per_replica=cores, device_index=index)
