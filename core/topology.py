"""The NeuronCores a host offers: instance-type presets or one core per host CPU.

Each :class:`Core` has a global index, the chip it belongs to and the host CPUs that
back it. When a preset has more cores than the host has CPUs, several cores share a
CPU; when it has fewer, each core gets a contiguous slice of the CPUs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from .errors import ConfigError

__all__ = ["Core", "Topology", "InstancePreset", "PRESETS", "host_cpus", "build_topology"]


@dataclass(frozen=True)
class InstancePreset:
    """An instance type: how many Neuron chips, cores per chip, and the architecture."""

    chips: int
    cores_per_chip: int
    arch: str

    @property
    def core_count(self) -> int:
        return self.chips * self.cores_per_chip


# Inferentia (inf1) has 4 NeuronCores per chip; Inferentia2 and Trainium1 have 2.
PRESETS: dict[str, InstancePreset] = {
    "inf1.xlarge": InstancePreset(1, 4, "inf1"),
    "inf1.2xlarge": InstancePreset(1, 4, "inf1"),
    "inf1.6xlarge": InstancePreset(4, 4, "inf1"),
    "inf1.24xlarge": InstancePreset(16, 4, "inf1"),
    "inf2.xlarge": InstancePreset(1, 2, "inf2"),
    "inf2.8xlarge": InstancePreset(1, 2, "inf2"),
    "inf2.24xlarge": InstancePreset(6, 2, "inf2"),
    "inf2.48xlarge": InstancePreset(12, 2, "inf2"),
    "trn1.2xlarge": InstancePreset(1, 2, "trn1"),
    "trn1.32xlarge": InstancePreset(16, 2, "trn1"),
    "trn1n.32xlarge": InstancePreset(16, 2, "trn1"),
}


@dataclass(frozen=True)
class Core:
    """One NeuronCore: global index, chip, and the host CPUs backing it."""

    index: int
    chip: int
    cpus: tuple[int, ...]

    @property
    def label(self) -> str:
        return f"nc{self.index}"


@dataclass(frozen=True)
class Topology:
    """All cores of the host, in global index order."""

    name: str
    arch: str
    cores_per_chip: int
    cores: tuple[Core, ...]

    def __len__(self) -> int:
        return len(self.cores)

    @property
    def chip_count(self) -> int:
        return len({core.chip for core in self.cores})

    def fingerprint(self) -> str:
        """A short text two processes compare to know they agree on the host."""
        return f"{self.name}:{len(self.cores)}x{self.cores_per_chip}"


def host_cpus() -> tuple[int, ...]:
    """The CPUs this process may run on."""
    try:
        return tuple(sorted(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return tuple(range(os.cpu_count() or 1))


def _backing_cpus(core_count: int, cpus: tuple[int, ...]) -> list[tuple[int, ...]]:
    """Spread the host CPUs over the cores: slices when CPUs >= cores, else wrap around."""
    if len(cpus) >= core_count:
        share, extra = divmod(len(cpus), core_count)
        slices, start = [], 0
        for index in range(core_count):
            width = share + (1 if index < extra else 0)
            slices.append(cpus[start : start + width])
            start += width
        return slices
    return [(cpus[index % len(cpus)],) for index in range(core_count)]


def build_topology(instance_type: str | None, cpus: tuple[int, ...] | None = None) -> Topology:
    """The topology for ``NCRT_INSTANCE_TYPE`` (a preset name) or, if unset, the host."""
    cpus = cpus or host_cpus()
    if instance_type:
        preset = PRESETS.get(instance_type)
        if preset is None:
            raise ConfigError(
                "NCRT_INSTANCE_TYPE", instance_type, "one of " + ", ".join(PRESETS) + " or unset"
            )
        name, arch, per_chip, count = instance_type, preset.arch, preset.cores_per_chip, preset.core_count
    else:
        # One core per host CPU, all on one "chip": the host itself.
        name, arch, per_chip, count = "host", "cpu", len(cpus), len(cpus)
    backing = _backing_cpus(count, cpus)
    cores = tuple(Core(index, index // per_chip, backing[index]) for index in range(count))
    return Topology(name=name, arch=arch, cores_per_chip=per_chip, cores=cores)
