"""Where a torch model goes: one copy per load on the next free cores, or cores named explicitly.

:func:`neuron_cores_context` (torch-neuron's explicit placement) makes every model created
inside it go on ``nc_count`` cores from ``start_nc``; :func:`placement_request` turns such
a choice (or none) into the runtime's :class:`~ncrt.PlacementRequest`.
"""

from __future__ import annotations

import contextlib
import contextvars
from typing import Iterator

from ncrt.errors import BadInputError
from ncrt.manifest import Manifest
from ncrt.placement import PlacementRequest

__all__ = ["DEFAULT_REPLICAS", "NCG_GROUPS_KEY", "cores_choice", "neuron_cores_context", "placement_request"]

DEFAULT_REPLICAS = 4  # a 1-core model is replicated on up to 4 cores ("4x1", seed 000)

_cores_context: contextvars.ContextVar[tuple[int, int] | None] = contextvars.ContextVar(
    "ncrt_torch_cores", default=None
)


NCG_GROUPS_KEY = "ncg_groups"  # set by the ncg plugin under NEURONCORE_GROUP_SIZES


def placement_request(manifest: Manifest, core_count: int, start_nc: int = -1,
                      nc_count: int = -1, legacy_groups: bool = False) -> PlacementRequest:
    """The request for a torch model: ``nc_count`` cores from ``start_nc`` (-1: the default rule).

    Under legacy NeuronCore Groups (``legacy_groups``: the ncg plugin set
    ``config.extra["ncg_groups"]``) models fill the groups in load order, one model per
    group, so the default rule asks for a single replica and the ncg plugin picks the group.
    """
    width = manifest.pipeline_cores
    start = start_nc if start_nc >= 0 else None
    if nc_count < 0:
        room = core_count - (start or 0)
        replicas = max(1, min(DEFAULT_REPLICAS, room)) if width == 1 and not legacy_groups else 1
    elif nc_count == 0 or nc_count % width:
        raise BadInputError(
            f"nc_count={nc_count} cannot hold a model compiled for {width} NeuronCore(s); "
            f"accepted: -1 (default) or a positive multiple of {width}"
        )
    else:
        replicas = nc_count // width
    return PlacementRequest(cores_per_replica=width, replicas=replicas, start=start)


@contextlib.contextmanager
def neuron_cores_context(start_nc: int = -1, nc_count: int = -1) -> Iterator[None]:
    """Models created (traced, loaded) inside go on ``nc_count`` cores from ``start_nc``.

    Like torch-neuronx's ``experimental.neuron_cores_context``; -1 keeps the default rule.
    """
    token = _cores_context.set((start_nc, nc_count))
    try:
        yield
    finally:
        _cores_context.reset(token)


def cores_choice() -> tuple[int, int] | None:
    """The ``(start_nc, nc_count)`` of the innermost :func:`neuron_cores_context`, if any."""
    return _cores_context.get()
