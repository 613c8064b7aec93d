"""Placement: which of the process's cores a loaded model occupies.

Runtime 2.x places a model on a group of consecutive cores of its compiled size
(``--neuroncore-pipeline-cores``). By default that is the next free group in load
order; MXNet's FlexEG names the start core; DataParallel names exact cores. When no
free group is left, models share cores: the runtime then switches between them, which
is counted and warned about (seed 002's "bad configuration"). Indices here are
per-process (the process's first reserved core is 0).
"""

from __future__ import annotations

import sys
import warnings
from dataclasses import dataclass, field
from typing import Iterable

from .coreset import format_cores
from .errors import PlacementError

__all__ = [
    "ModelSwitchWarning",
    "caller_stacklevel",
    "PlacementRequest",
    "Placement",
    "PlacementTable",
    "span",
]


class ModelSwitchWarning(RuntimeWarning):
    """Models were placed on shared cores: running them costs model switches."""


def span(start: int, count: int) -> tuple[int, ...]:
    return tuple(range(start, start + count))


def label(cores: Iterable[int]) -> str:
    """Runtime-style label of per-process cores: ``NC2-5``, ``NC0``, ``NC1,NC3``."""
    return format_cores(cores, "NC", prefix_both_ends=False)


@dataclass(frozen=True)
class PlacementRequest:
    """What the loader asks for, in the framework's own terms.

    ``cores_per_replica`` is the compiled size; ``replicas`` copies sit side by side in
    one group (``None``: the framework's default replication, ``default_replicas``, unless
    a legacy layout says otherwise). At most one of ``start`` (a FlexEG start core),
    ``device_ids`` (exact cores, one replica each) and ``device_index`` (a framework
    device-context index such as ``mx.neuron(i)``) is given; none means "next free group".
    Under runtime 2.x a ``device_index`` is the start core (FlexEG); a legacy plugin (the
    NCG shim) may read it as a group index.
    """

    cores_per_replica: int = 1
    replicas: int | None = 1
    default_replicas: int = 1
    start: int | None = None
    device_ids: tuple[int, ...] | None = None
    device_index: int | None = None

    @property
    def replica_count(self) -> int:
        """The replicas asked for, the framework's default ones when none was named."""
        return self.default_replicas if self.replicas is None else self.replicas

    @property
    def size(self) -> int:
        return self.cores_per_replica * self.replica_count


@dataclass(frozen=True)
class Placement:
    """The cores a model occupies, split into replicas of ``cores_per_replica`` each."""

    cores: tuple[int, ...]
    cores_per_replica: int = 1

    def __post_init__(self) -> None:
        if not self.cores or len(self.cores) % self.cores_per_replica:
            raise PlacementError(
                f"a placement of cores {self.cores} cannot hold replicas of "
                f"{self.cores_per_replica} core(s)"
            )

    @property
    def replicas(self) -> list[tuple[int, ...]]:
        step = self.cores_per_replica
        return [self.cores[i : i + step] for i in range(0, len(self.cores), step)]

    @property
    def label(self) -> str:
        return label(self.cores)


@dataclass
class PlacementTable:
    """Which models sit on which of the process's ``core_count`` cores."""

    core_count: int
    occupants: dict[int, list[str]] = field(default_factory=dict)

    def models_on(self, core: int) -> list[str]:
        return self.occupants.get(core, [])

    def is_free(self, cores: Iterable[int]) -> bool:
        return not any(self.models_on(core) for core in cores)

    def check_fits(self, start: int, size: int) -> tuple[int, ...]:
        """The group ``start..start+size-1``, or PlacementError listing valid starts."""
        if 0 <= start and start + size <= self.core_count:
            return span(start, size)
        last = self.core_count - size
        valid = f"{', '.join(map(str, range(last + 1)))}" if last >= 0 else "none"
        raise PlacementError(
            f"a model needing {size} NeuronCore(s) cannot start at core {start}: the process "
            f"has cores 0-{self.core_count - 1}; valid start indexes: {valid}"
        )

    def check_devices(self, device_ids: Iterable[int]) -> tuple[int, ...]:
        ids = tuple(device_ids)
        for core in ids:
            if not 0 <= core < self.core_count:
                raise PlacementError(
                    f"NeuronCore nc:{core} is not visible to this process; it sees "
                    f"nc:0-nc:{self.core_count - 1} (indices are per process, starting at 0)"
                )
        return ids

    def next_group(self, size: int) -> tuple[int, ...]:
        """The first free group of ``size`` cores; if none, the least-shared one."""
        if size > self.core_count:
            raise PlacementError(
                f"the model needs {size} NeuronCore(s) but the process has {self.core_count}; "
                f"set NEURON_RT_NUM_CORES to at least {size} or compile for fewer cores"
            )
        starts = range(self.core_count - size + 1)
        load = {start: sum(len(self.models_on(c)) for c in span(start, size)) for start in starts}
        return span(min(starts, key=lambda start: (load[start], start)), size)

    def add(self, name: str, cores: Iterable[int]) -> list[str]:
        """Record ``name`` on ``cores``; return the models it now shares cores with."""
        shared: list[str] = []
        for core in cores:
            shared.extend(other for other in self.models_on(core) if other not in shared)
            self.occupants.setdefault(core, []).append(name)
        return shared

    def remove(self, name: str) -> None:
        for names in self.occupants.values():
            while name in names:
                names.remove(name)


def caller_stacklevel() -> int:
    """The stacklevel of the first frame outside ncrt, so a warning points at user code."""
    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_globals.get("__name__", "").startswith("ncrt"):
        frame, level = frame.f_back, level + 1
    return level


def warn_shared(name: str, cores: Iterable[int], shared: list[str]) -> None:
    if shared:
        warnings.warn(
            f"model {name!r} on {label(cores)} shares NeuronCores with {', '.join(shared)}: "
            "they cannot run in parallel and each switch between them costs a model switch",
            ModelSwitchWarning,
            stacklevel=caller_stacklevel(),
        )
