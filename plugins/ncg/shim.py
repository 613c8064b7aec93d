"""The legacy NeuronCore Group shim: ``NEURONCORE_GROUP_SIZES`` on runtime 2.x.

Neuron Runtime 1.x grouped a process's NeuronCores with ``NEURONCORE_GROUP_SIZES``
(``2,4,3,4``, ``4x1``, ``2x2,4``); runtime 2.x dropped it (seeds 000, 002, 004). This
plugin keeps such applications running and says what replaces the variable:

* :func:`parse_group_sizes` reads the value (a comma list of sizes and ``NxM`` terms);
* ``ncrt_add_variables`` declares ``NEURONCORE_GROUP_SIZES`` and ``NCRT_LEGACY_NCG``;
* ``ncrt_configure`` warns once (``DeprecationWarning``) and translates the groups to
  ``NEURON_RT_NUM_CORES`` = the sum of the sizes (group ``i`` starts at the prefix sum
  of the sizes before it: :func:`active_layout`);
* ``ncrt_placement`` answers a framework's device index (MXNet's ``mx.neuron(i)``) with
  the cores of group ``i``, and fills the groups in load order for models loaded
  without a start core (PyTorch, TensorFlow; a framework's default replication becomes
  one replica per group of an ``Nx1`` layout). A model too large for every group is
  placed across groups, with a warning. The frameworks never read the shim's state:
  they say what the application asked for in the :class:`~ncrt.PlacementRequest`.

``NCRT_LEGACY_NCG=error`` makes any use of the variable an error, to prove that an
application no longer depends on it.
"""

from __future__ import annotations

import os
import re
import sys
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ncrt.config import MAX_CORE_SET_SIZE, Variable, choice, format_core_set
from ncrt.errors import ConfigError, PlacementError
from ncrt.hookspecs import hookimpl
from ncrt.placement import Placement, label
from ncrt.topology import build_topology

if TYPE_CHECKING:
    from ncrt.config import Config, VariableTable
    from ncrt.model import Model
    from ncrt.placement import PlacementRequest
    from ncrt.runtime import Runtime

__all__ = [
    "VARIABLE",
    "ACCEPTED",
    "LEGACY_VARIABLE",
    "active_layout",
    "GroupLayout",
    "parse_group_sizes",
    "layout_of",
    "legacy_value",
    "replacement_text",
    "reset_warning",
]

VARIABLE = "NEURONCORE_GROUP_SIZES"
LEGACY_VARIABLE = "NCRT_LEGACY_NCG"
ACCEPTED = (
    "a comma-separated list of group sizes and NxM terms (N groups of M cores), such as "
    "2,4,3,4 or 4x1 or 2x2,4; every size at least 1"
)

_SIZE = re.compile(r"[0-9]+")
_TERM = re.compile(r"([0-9]+)\s*[xX]\s*([0-9]+)")
_warned = False


# --- parsing and translation -----------------------------------------------------


def _number(text: str, value: str, what: str) -> int:
    """A positive decimal integer no larger than MAX_CORE_SET_SIZE."""
    digits = text.lstrip("0") or "0"
    if len(digits) > len(str(MAX_CORE_SET_SIZE)) or int(digits) > MAX_CORE_SET_SIZE:
        raise ConfigError(VARIABLE, value, ACCEPTED, f"{what} {text[:12]} is larger than {MAX_CORE_SET_SIZE}")
    if int(digits) < 1:
        raise ConfigError(VARIABLE, value, ACCEPTED, f"{what} must be at least 1, got {text}")
    return int(digits)


def _term(item: str, value: str) -> list[int]:
    """One comma item: ``4`` -> [4]; ``3x2`` -> [2, 2, 2]."""
    if _SIZE.fullmatch(item):
        return [_number(item, value, "a group size")]
    match = _TERM.fullmatch(item)
    if match is None:
        reason = "empty item in the list" if not item else f"{item[:24]!r} is neither a size nor NxM"
        raise ConfigError(VARIABLE, value, ACCEPTED, reason)
    count = _number(match.group(1), value, "a group count")
    size = _number(match.group(2), value, "a group size")
    if count * size > MAX_CORE_SET_SIZE:
        raise ConfigError(VARIABLE, value, ACCEPTED, f"{item} names more than {MAX_CORE_SET_SIZE} cores")
    return [size] * count


def parse_group_sizes(value: str) -> tuple[int, ...]:
    """``2,4,3,4`` -> (2, 4, 3, 4); ``4x1`` -> (1, 1, 1, 1); ``2x2,4`` -> (2, 2, 4).

    Whitespace around items is ignored. Raises :class:`~ncrt.errors.ConfigError`
    naming ``NEURONCORE_GROUP_SIZES`` for anything else.
    """
    text = value.strip()
    if not text:
        raise ConfigError(VARIABLE, value, ACCEPTED, "the value is empty")
    sizes: list[int] = []
    for item in text.split(","):
        sizes.extend(_term(item.strip(), value))
        if sum(sizes) > MAX_CORE_SET_SIZE:
            raise ConfigError(VARIABLE, value, ACCEPTED, f"the groups need more than {MAX_CORE_SET_SIZE} cores")
    return tuple(sizes)


@dataclass(frozen=True)
class GroupLayout:
    """NeuronCore Groups laid out on the process's cores: group ``i`` starts at ``starts[i]``."""

    sizes: tuple[int, ...]

    @property
    def total(self) -> int:
        """The cores the process reserves: the sum of the group sizes."""
        return sum(self.sizes)

    @property
    def starts(self) -> tuple[int, ...]:
        """The per-process start core of each group: the prefix sums of the sizes."""
        return tuple(sum(self.sizes[:index]) for index in range(len(self.sizes)))

    @property
    def groups(self) -> list[tuple[int, int]]:
        """``[(start, size), ...]`` in group order."""
        return list(zip(self.starts, self.sizes))

    @property
    def replication(self) -> int | None:
        """N for an ``Nx1`` layout (every group one core), else ``None``."""
        return len(self.sizes) if all(size == 1 for size in self.sizes) else None

    def cores_of(self, group: int) -> tuple[int, ...]:
        start, size = self.groups[group]
        return tuple(range(start, start + size))

    def runtime2_env(self) -> dict[str, str]:
        """The runtime 2.x variables that reserve the same cores."""
        return {"NEURON_RT_NUM_CORES": str(self.total)}

    def visible_cores_text(self) -> str:
        return format_core_set(range(self.total))

    def describe_groups(self) -> list[dict[str, object]]:
        """One row per group: index, size, start core, cores label."""
        return [
            {"group": index, "size": size, "start": start, "cores": label(range(start, start + size))}
            for index, (start, size) in enumerate(self.groups)
        ]


def layout_of(value: str) -> GroupLayout:
    """The :class:`GroupLayout` of a ``NEURONCORE_GROUP_SIZES`` value."""
    return GroupLayout(parse_group_sizes(value))


def replacement_text(layout: GroupLayout | None = None) -> str:
    """What replaces the variable under runtime 2.x, for warnings and errors."""
    if layout is None:
        return (
            "NEURON_RT_NUM_CORES (how many cores the process reserves) or NEURON_RT_VISIBLE_CORES "
            "(exactly which), with models loaded in order or at a FlexEG start core "
            "(mx.neuron(start core)); `ncrt migrate env` and `ncrt migrate code` print the translation"
        )
    starts = ", ".join(map(str, layout.starts))
    return (
        f"NEURON_RT_NUM_CORES={layout.total} or NEURON_RT_VISIBLE_CORES={layout.visible_cores_text()}, "
        f"with group starts {starts} as FlexEG start cores (mx.neuron(start)); "
        "`ncrt migrate env` and `ncrt migrate code` print the translation"
    )


# --- the configure hook ------------------------------------------------------------


def reset_warning() -> None:
    """Let the next runtime warn again (the warning is once per process)."""
    global _warned
    _warned = False


def _user_stacklevel() -> int:
    """The stacklevel (for a warn() in the caller) of the first frame outside ncrt and pluggy."""
    frame, level = sys._getframe(1), 1
    while frame is not None and _is_internal(frame.f_globals.get("__name__", "")):
        frame, level = frame.f_back, level + 1
    return level if frame is not None else 1


def _is_internal(module: str) -> bool:
    return module == "ncrt" or module.startswith(("ncrt.", "pluggy", "importlib", "_frozen_importlib"))


def _warn_once(layout: GroupLayout, value: str) -> None:
    global _warned
    if _warned:
        return
    _warned = True
    warnings.warn(
        f"{VARIABLE}={value} is deprecated and not supported by Neuron Runtime 2.x; "
        f"use {replacement_text(layout)}",
        DeprecationWarning,
        stacklevel=_user_stacklevel(),
    )


def _check_not_mixed(config: Config, value: str, layout: GroupLayout) -> None:
    if config.visible_cores is None and not config.num_cores:
        return
    other = "NEURON_RT_VISIBLE_CORES" if config.visible_cores is not None else "NEURON_RT_NUM_CORES"
    raise ConfigError(
        VARIABLE, value,
        f"{VARIABLE} alone (legacy) or {other} alone (runtime 2.x)",
        f"it is set together with {other}; keep {other} (runtime 2.x, replacing it with "
        f"NEURON_RT_NUM_CORES={layout.total} if you want the groups' cores) and unset {VARIABLE}",
    )


def _check_host(config: Config, value: str, layout: GroupLayout) -> None:
    host = len(build_topology(config.instance_type))
    if layout.total > host:
        raise ConfigError(
            VARIABLE, value, f"groups of at most {host} cores in all (this host has {host} NeuronCores)",
            f"the groups need {layout.total} NeuronCores",
        )


def _check_allowed(config: Config, value: str) -> None:
    if config.setting(LEGACY_VARIABLE) != "error":
        return
    try:
        replacement = replacement_text(layout_of(value))
    except ConfigError:
        replacement = replacement_text()
    raise ConfigError(
        VARIABLE, value, f"unset (NCRT_LEGACY_NCG=error forbids {VARIABLE})",
        f"the application still uses {VARIABLE}; use {replacement}",
    )


@hookimpl
def ncrt_add_variables(variables: VariableTable) -> None:
    """The shim owns ``NEURONCORE_GROUP_SIZES`` and ``NCRT_LEGACY_NCG``."""
    variables.add(Variable(VARIABLE, "Deprecated NeuronCore Group sizes (2,4,3,4 or 4x1)", ACCEPTED, "unset"))
    variables.add(Variable(LEGACY_VARIABLE, "What NEURONCORE_GROUP_SIZES does", "warn or error", "warn",
                           choice("warn", "error"), value="warn"))


def active_layout(config: Config) -> GroupLayout | None:
    """The NeuronCore Groups of ``config`` (``None`` when ``NEURONCORE_GROUP_SIZES`` is unset)."""
    value = config.setting(VARIABLE)
    return layout_of(str(value)) if value is not None else None


@hookimpl
def ncrt_configure(config: Config) -> None:
    """Translate ``NEURONCORE_GROUP_SIZES`` into runtime 2.x settings (see the module doc)."""
    value = config.setting(VARIABLE)
    if value is None:
        return
    value = str(value)
    _check_allowed(config, value)
    layout = layout_of(value)
    _check_not_mixed(config, value, layout)
    _check_host(config, value, layout)
    _warn_once(layout, value)
    config.num_cores = layout.total


# --- placement by group --------------------------------------------------------------


def _group_placement(layout: GroupLayout, request: PlacementRequest) -> Placement:
    """Group ``request.device_index``: its first ``request.size`` cores (``mx.neuron(i)`` under NCG)."""
    group = request.device_index
    assert group is not None
    if not 0 <= group < len(layout.sizes):
        raise PlacementError(
            f"NeuronCore Group {group} does not exist: {VARIABLE} defines groups "
            f"0-{len(layout.sizes) - 1} ({','.join(map(str, layout.sizes))})"
        )
    start, size = layout.groups[group]
    if request.size > size:
        raise PlacementError(
            f"a model needing {request.size} NeuronCore(s) does not fit NeuronCore Group {group} "
            f"of {size} core(s) (NC{start}-{start + size - 1}); {VARIABLE} sizes: "
            f"{','.join(map(str, layout.sizes))}"
        )
    return Placement(tuple(range(start, start + request.size)), request.cores_per_replica)


def _group_load(runtime: Runtime, layout: GroupLayout, group: int) -> int:
    """How many models already sit on the group's cores."""
    return len({uid for core in layout.cores_of(group) for uid in runtime.table.models_on(core)})


def _fill_order(runtime: Runtime, layout: GroupLayout, need: int) -> list[int]:
    """Groups of at least ``need`` cores: free ones in order, then the least-shared."""
    fitting = [group for group, size in enumerate(layout.sizes) if size >= need]
    return sorted(fitting, key=lambda group: (_group_load(runtime, layout, group), group))


def _warn_across_groups(model: Model, layout: GroupLayout, need: int) -> None:
    warnings.warn(
        f"model {model.name!r} needs {need} NeuronCore(s) and fits none of the NeuronCore Groups "
        f"({VARIABLE}={','.join(map(str, layout.sizes))}): it is placed across groups on the "
        "next free cores, as torch-neuron does; enlarge a group or use runtime 2.x placement",
        RuntimeWarning,
        stacklevel=_user_stacklevel(),
    )


def _next_groups(runtime: Runtime, layout: GroupLayout, request: PlacementRequest) -> Placement | None:
    """Load order: each replica takes the next group that fits (sharing when none is free).

    Replicas go one per group: a request for the framework's default replication
    (``replicas=None``) gets one replica per group of an ``Nx1`` layout (TensorFlow's
    auto replication); a request for more replicas than there are fitting groups gets
    one per group. ``None`` when no group fits: the model is placed across groups.
    """
    order = _fill_order(runtime, layout, request.cores_per_replica)
    if not order:
        return None
    replicas = request.replicas if request.replicas is not None else (layout.replication or request.default_replicas)
    chosen = sorted(order[:replicas])
    cores = tuple(core for group in chosen for core in layout.cores_of(group)[: request.cores_per_replica])
    return Placement(cores, request.cores_per_replica)


@hookimpl
def ncrt_placement(model: Model, request: PlacementRequest, runtime: Runtime) -> Placement | None:
    """A group index, or load order over the groups; ``None`` without NCG or for start/device ids."""
    layout = active_layout(runtime.config)
    if layout is None or request.start is not None or request.device_ids is not None:
        return None
    if request.device_index is not None:
        return _group_placement(layout, request)
    placement = _next_groups(runtime, layout, request)
    if placement is None:
        _warn_across_groups(model, layout, request.cores_per_replica)
    return placement


def legacy_value(environ: dict[str, str] | None = None) -> str | None:
    """The non-blank ``NEURONCORE_GROUP_SIZES`` of ``environ`` (default ``os.environ``)."""
    value = (os.environ if environ is None else environ).get(VARIABLE, "")
    return value.strip() or None
