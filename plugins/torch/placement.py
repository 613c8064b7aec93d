"""Where a torch model goes: one copy per load on the next free cores, or cores named explicitly.

This is the torch-neuron core-placement guide's rule: ``torch.jit.load`` of a model
compiled for N cores puts one copy on the N least-used cores in load order (replication
by default is TensorFlow-Neuron's alone, seed 000).

The guide's explicit placement (``torch_neuron.experimental``):

- :func:`neuron_cores_context` ``(start_nc=-1, nc_count=-1)``: every model loaded (or
  traced) inside goes on ``nc_count`` cores from ``start_nc``, as
  ``floor(nc_count / cores_per_model)`` replicas (``-1``: the least-used start, one copy);
- :func:`multicore_context`: every model loaded inside is replicated on all the cores
  of the process (as many whole replicas as fit).

:func:`placement_request` turns such a choice (or none) into the runtime's
:class:`~ncrt.PlacementRequest`.
"""

from __future__ import annotations

import contextlib
import contextvars
from dataclasses import dataclass
from typing import Iterator

from ncrt.errors import BadInputError
from ncrt.manifest import Manifest
from ncrt.placement import PlacementRequest

__all__ = ["CoreChoice", "cores_choice", "multicore_context", "neuron_cores_context", "placement_request"]


@dataclass(frozen=True)
class CoreChoice:
    """An explicit placement: ``nc_count`` cores from ``start_nc``, or every core (``multicore``)."""

    start_nc: int = -1
    nc_count: int = -1
    multicore: bool = False

    def __post_init__(self) -> None:
        accepted = {"start_nc": "-1 (the default) or a core index >= 0",
                    "nc_count": "-1 (the model's own size) or a count >= 1"}
        for name, what in accepted.items():
            value = getattr(self, name)
            whole = isinstance(value, int) and not isinstance(value, bool)
            if not whole or value < -1 or (name == "nc_count" and value == 0):
                raise BadInputError(f"{name}={value!r} is not valid; accepted: {what}")

    def request(self, manifest: Manifest, core_count: int) -> PlacementRequest:
        """The placement request for a model of ``manifest`` in a process of ``core_count`` cores."""
        if self.multicore:
            return PlacementRequest(cores_per_replica=manifest.pipeline_cores,
                                    replicas=max(1, core_count // manifest.pipeline_cores), start=0)
        return placement_request(manifest, self.start_nc, self.nc_count)


_DEFAULT = CoreChoice()
_cores_context: contextvars.ContextVar[CoreChoice | None] = contextvars.ContextVar("ncrt_torch_cores", default=None)


def placement_request(manifest: Manifest, start_nc: int = -1, nc_count: int = -1) -> PlacementRequest:
    """The request for a torch model: ``nc_count`` cores from ``start_nc`` (-1: the default rule).

    The default rule is torch-neuron's: each load puts one copy of the model on the
    next free cores of its compiled size (``--neuroncore-pipeline-cores``). An explicit
    ``nc_count`` replicates it ``floor(nc_count / cores_per_model)`` times (the
    core-placement API); a count smaller than the model is a ``ValueError``.
    """
    CoreChoice(start_nc, nc_count)  # validates both
    width = manifest.pipeline_cores
    start = start_nc if start_nc >= 0 else None
    if nc_count == -1:
        return PlacementRequest(cores_per_replica=width, replicas=1, start=start)
    if nc_count < width:
        raise BadInputError(
            f"nc_count={nc_count} cannot hold a model compiled for {width} NeuronCore(s) "
            f"(--neuroncore-pipeline-cores {width}); accepted: -1 (the model's own size) or a count "
            f">= {width} (floor(nc_count / {width}) replicas)"
        )
    return PlacementRequest(cores_per_replica=width, replicas=nc_count // width, start=start)


@contextlib.contextmanager
def _choosing(choice: CoreChoice) -> Iterator[None]:
    token = _cores_context.set(choice)
    try:
        yield
    finally:
        _cores_context.reset(token)


def neuron_cores_context(start_nc: int = -1, nc_count: int = -1) -> contextlib.AbstractContextManager[None]:
    """Models loaded (or traced) inside go on ``nc_count`` cores from ``start_nc``.

    torch-neuron's ``torch_neuron.experimental.neuron_cores_context``: ``start_nc`` is a
    per-process core index (-1: the least-used cores); ``nc_count`` -1 is the model's own
    size, a larger count replicates it ``floor(nc_count / cores_per_model)`` times. Only
    the load needs to happen inside; calls later run where the model was placed. The
    choice is per thread (a context set in one thread does not place loads in another).
    """
    return _choosing(CoreChoice(start_nc, nc_count))


def multicore_context() -> contextlib.AbstractContextManager[None]:
    """Models loaded (or traced) inside are replicated on every core of the process.

    torch-neuron's ``torch_neuron.experimental.multicore_context``: as many whole replicas
    as fit, from core 0; calls go to the least-loaded replica.
    """
    return _choosing(CoreChoice(multicore=True))


def cores_choice() -> CoreChoice | None:
    """The choice of the innermost :func:`neuron_cores_context` / :func:`multicore_context`, if any."""
    return _cores_context.get()
