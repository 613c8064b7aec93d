"""The Neuron settings a test runs with: the ``neuron`` marker's arguments as variables.

``@pytest.mark.neuron(instance=..., num_cores=..., visible_cores=..., group_sizes=...,
env={...})`` names an emulated instance and the runtime variables of the test;
:class:`NeuronSettings` turns them into environment variables, and
:func:`check_variables` validates them the way the runtime will (a
:class:`~ncrt.errors.ConfigError` naming the variable, the value and what is accepted).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field, replace
from typing import Any, Iterable, Mapping

from ncrt.config import check_against_topology, format_core_set, parse_config
from ncrt.errors import BadInputError, ConfigError
from ncrt.topology import build_topology

from ncrt.plugins.ncg import shim as ncg

__all__ = ["NEURON_PREFIXES", "ARGUMENTS", "NeuronSettings", "settings_of_marks", "check_variables",
           "neuron_variables"]

NEURON_PREFIXES = ("NEURON_RT_", "NEURONCORE_", "NEURON_MAX_NUM_INFERS", "NCRT_")
"""Variables that configure a Neuron runtime or ncrt; a marked test sees only its own."""

ARGUMENTS = ("instance", "num_cores", "visible_cores", "group_sizes", "env")
"""The keyword arguments of the ``neuron`` marker (and of ``neuron_process``'s calls)."""

_COUNT_TEXT = "a whole number of cores (0 means all), such as 4 or '4'"
_CORES_TEXT = "a core index (3), a range text ('0-2', '3-5,6'), or a sequence of indices ([0, 1, 2])"
_SIZES_TEXT = "a NEURONCORE_GROUP_SIZES text ('2,4,3,4', '4x1') or a sequence of sizes ([2, 4, 3, 4])"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _count_text(value: Any) -> str:
    if _is_int(value) or isinstance(value, str):
        return str(value)
    raise ConfigError("NEURON_RT_NUM_CORES", value, _COUNT_TEXT, f"num_cores got a {type(value).__name__}")


def _core_set_text(value: Any) -> str:
    if _is_int(value) or isinstance(value, str):
        return str(value)
    if isinstance(value, Iterable) and not isinstance(value, Mapping):
        items = list(value)
        if items and all(_is_int(item) and item >= 0 for item in items):
            return format_core_set(items)
    raise ConfigError("NEURON_RT_VISIBLE_CORES", value, _CORES_TEXT, f"visible_cores got {value!r}")


def _sizes_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, Iterable) and not isinstance(value, Mapping):
        items = list(value)
        if items and all(_is_int(item) for item in items):
            return ",".join(map(str, items))
    raise ConfigError(ncg.VARIABLE, value, _SIZES_TEXT, f"group_sizes got {value!r}")


def _env_pairs(env: Any) -> tuple[tuple[str, str], ...]:
    if env is None:
        return ()
    if not isinstance(env, Mapping):
        raise BadInputError(f"env={env!r} is not valid; accepted: a dict of variable names to text values")
    pairs = []
    for name, value in env.items():
        if isinstance(value, os.PathLike):
            value = os.fspath(value)
        if not isinstance(name, str) or not name or not (isinstance(value, str) or _is_int(value)):
            raise BadInputError(f"env entry {name!r}: {value!r} is not valid; accepted: a variable name "
                                "and a text, path or whole number value")
        pairs.append((name, str(value)))
    return tuple(pairs)


@dataclass(frozen=True)
class NeuronSettings:
    """An emulated instance and the runtime variables of one test or one process."""

    instance: str | None = None
    num_cores: str | None = None
    visible_cores: str | None = None
    group_sizes: str | None = None
    env: tuple[tuple[str, str], ...] = field(default=())

    @classmethod
    def from_arguments(cls, arguments: Mapping[str, Any], where: str = "neuron marker") -> NeuronSettings:
        """Settings from keyword arguments; :class:`BadInputError` for an unknown one."""
        unknown = sorted(set(arguments) - set(ARGUMENTS))
        if unknown:
            raise BadInputError(f"the {where} got unknown argument(s) {', '.join(unknown)}; "
                                f"accepted: {', '.join(ARGUMENTS)}")
        instance = arguments.get("instance")
        if instance is not None and not isinstance(instance, str):
            raise ConfigError("NCRT_INSTANCE_TYPE", instance, "an instance type name such as 'inf1.6xlarge'")
        convert = {"num_cores": _count_text, "visible_cores": _core_set_text, "group_sizes": _sizes_text}
        values = {name: convert[name](arguments[name]) for name in convert if arguments.get(name) is not None}
        return cls(instance=instance, env=_env_pairs(arguments.get("env")), **values)

    def with_default_instance(self, instance: str | None) -> NeuronSettings:
        """These settings, with ``instance`` when they name none."""
        return self if self.instance or not instance else replace(self, instance=instance)

    def variables(self) -> dict[str, str]:
        """The environment variables these settings stand for."""
        named = {
            "NCRT_INSTANCE_TYPE": self.instance,
            "NEURON_RT_NUM_CORES": self.num_cores,
            "NEURON_RT_VISIBLE_CORES": self.visible_cores,
            ncg.VARIABLE: self.group_sizes,
        }
        variables = {name: value for name, value in named.items() if value is not None}
        variables.update(self.env)
        return variables


def settings_of_marks(marks: Iterable[Any]) -> NeuronSettings:
    """Merge ``neuron`` marks, closest first (a test's own mark over its class's and module's)."""
    arguments: dict[str, Any] = {}
    for mark in marks:
        if mark.args:
            raise BadInputError(f"the neuron marker takes keyword arguments only, got {mark.args!r}; "
                                f"accepted: {', '.join(ARGUMENTS)}")
        for name, value in mark.kwargs.items():
            arguments.setdefault(name, value)
    return NeuronSettings.from_arguments(arguments)


def check_variables(variables: Mapping[str, str]) -> None:
    """Validate ``variables`` as the runtime will: :class:`ConfigError` for a bad value."""
    config = parse_config(variables)
    topology = build_topology(config.instance_type)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the runtime repeats any warning when it starts
        check_against_topology(config, len(topology))
    group_sizes = config.setting(ncg.VARIABLE)
    if group_sizes:
        layout = ncg.layout_of(str(group_sizes))
        if layout.total > len(topology):
            raise ConfigError(ncg.VARIABLE, str(group_sizes), f"groups of at most {len(topology)} cores in all",
                              f"{topology.name} has {len(topology)} NeuronCores, the groups need {layout.total}")


def neuron_variables(environ: Mapping[str, str] | None = None) -> list[str]:
    """The names in ``environ`` (default ``os.environ``) that configure Neuron or ncrt."""
    return [name for name in (os.environ if environ is None else environ) if name.startswith(NEURON_PREFIXES)]
