"""Where a torch model goes: one copy per load on the next free cores, or cores named explicitly.

This is the torch-neuron core-placement guide's rule: ``torch.jit.load`` of a model
compiled for N cores puts one copy on the N least-used cores in load order (replication
by default is TensorFlow-Neuron's alone, seed 000).

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

__all__ = ["cores_choice", "neuron_cores_context", "placement_request"]

_cores_context: contextvars.ContextVar[tuple[int, int] | None] = contextvars.ContextVar(
    "ncrt_torch_cores", default=None
)


def placement_request(manifest: Manifest, start_nc: int = -1, nc_count: int = -1) -> PlacementRequest:
    """The request for a torch model: ``nc_count`` cores from ``start_nc`` (-1: the default rule).

    The default rule is torch-neuron's: each load puts one copy of the model on the
    next free cores of its compiled size (``--neuroncore-pipeline-cores``); only an
    explicit ``nc_count`` replicates it.
    """
    width = manifest.pipeline_cores
    start = start_nc if start_nc >= 0 else None
    if nc_count < 0:
        replicas = 1
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
