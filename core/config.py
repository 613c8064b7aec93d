"""The runtime configuration: every environment variable ncrt honours, parsed once.

The Neuron Runtime is configured through process environment variables (seed 004:
``NEURON_RT_*``); the frameworks add ``NEURONCORE_GROUP_SIZES`` and
``NEURON_MAX_NUM_INFERS`` (seed 003), and ncrt's own knobs are ``NCRT_*``.
:func:`parse_config` turns an environment into a :class:`Config`; every bad value
raises :class:`~ncrt.errors.ConfigError` naming the variable, the value received
and what is accepted, and no input string raises any other exception.

A variable set to an empty (or blank) string is treated as unset. The table
:data:`VARIABLES` documents every variable; error messages and docs read it.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from .errors import ConfigError

__all__ = [
    "INT_MAX",
    "MAX_CORE_SET_SIZE",
    "LOG_LEVELS",
    "COMPONENTS",
    "Variable",
    "VARIABLES",
    "Config",
    "parse_config",
    "parse_core_set",
    "parse_bool",
    "check_against_topology",
    "format_core_set",
    "format_nc_range",
]

INT_MAX = 2**31 - 1
"""The largest core index, count or timeout accepted (C ``INT_MAX``, as the runtime)."""

MAX_CORE_SET_SIZE = 2**16
"""The most cores a core set may name; guards against ``0-2147483647`` eating memory."""

LOG_LEVELS = ("ERROR", "WARNING", "INFO", "DEBUG", "TRACE", "QUIET")
"""The log levels, from least to most verbose; QUIET disables output. WARN = WARNING."""

COMPONENTS = ("NRT", "NMGR", "TDRV")
"""The runtime components that have their own log level and location."""

_DIGITS = re.compile(r"[0-9]+")
_DECIMAL = re.compile(r"[0-9]+(?:\.[0-9]*)?|\.[0-9]+")
_TRUE_WORDS = ("true", "1")
_FALSE_WORDS = ("false", "0")


@dataclass(frozen=True)
class Variable:
    """One environment variable: what it does, what it accepts, its default."""

    name: str
    description: str
    accepted: str
    default: str


_CORE_SET_TEXT = (
    "a core index (3), an inclusive range (0-2) or a comma-separated list of both "
    f"(3-5,6); indices from 0 to {INT_MAX}"
)
_LEVEL_TEXT = "ERROR, WARNING (or WARN), INFO, DEBUG, TRACE or QUIET, in any ASCII case"
_LOCATION_TEXT = "console, syslog, or a file path"
_BOOL_TEXT = "true, false, 1 or 0, in any ASCII case"

VARIABLES: tuple[Variable, ...] = (
    Variable("NEURON_RT_VISIBLE_CORES", "NeuronCores this process reserves", _CORE_SET_TEXT, "unset (all)"),
    Variable(
        "NEURON_RT_NUM_CORES",
        "Number of free NeuronCores this process reserves",
        f"an integer from 0 to {INT_MAX}; 0 means all",
        "0",
    ),
    Variable("NEURON_RT_LOG_LEVEL", "Log level of every runtime component", _LEVEL_TEXT, "ERROR"),
    Variable("NEURON_RT_LOG_LOCATION", "Where every runtime component logs", _LOCATION_TEXT, "console"),
    *(
        Variable(f"NEURON_RT_LOG_LEVEL_{name}", f"Log level of {name}", _LEVEL_TEXT, "NEURON_RT_LOG_LEVEL")
        for name in COMPONENTS
    ),
    *(
        Variable(f"NEURON_RT_LOG_LOCATION_{name}", f"Where {name} logs", _LOCATION_TEXT, "NEURON_RT_LOG_LOCATION")
        for name in COMPONENTS
    ),
    Variable(
        "NEURON_RT_EXEC_TIMEOUT",
        "Execution timeout in seconds; 0 means none (decimals such as 0.5 are an ncrt extension)",
        f"a number of seconds from 0 to {INT_MAX}, such as 30 or 0.5",
        "30",
    ),
    Variable("NEURON_RT_VALIDATE_HASH", "Check a compiled model's sha256 on load", _BOOL_TEXT, "false"),
    Variable(
        "NEURON_RT_MULTI_INSTANCE_SHARED_WEIGHTS",
        "Share weights between instances of one model on different cores",
        _BOOL_TEXT,
        "false",
    ),
    Variable(
        "NEURON_RT_ASYNC_EXEC_MAX_INFLIGHT_REQUESTS",
        "Asynchronous execution requests in flight; 0 disables",
        f"an integer from 0 to {INT_MAX}",
        "0",
    ),
    Variable("NEURON_RT_ALLOW_LEGACY_NEFF", "Run a model compiled for an older architecture", _BOOL_TEXT, "false"),
    Variable(
        "NEURON_MAX_NUM_INFERS",
        "Outstanding inference requests a model accepts",
        f"an integer from 1 to {INT_MAX}",
        "number of cores + 3",
    ),
    Variable("NEURONCORE_GROUP_SIZES", "Deprecated NeuronCore Group sizes (2,4,3,4 or 4x1)", "group sizes", "unset"),
    Variable("NCRT_INSTANCE_TYPE", "Instance type to emulate", "an instance type such as inf1.6xlarge", "the host"),
    Variable("NCRT_STATE_DIR", "Directory of the core reservation locks", "a directory path", "a per-user temp dir"),
    Variable("NCRT_STRICT", "Turn hardware-only warnings into errors", _BOOL_TEXT, "false"),
    Variable("NCRT_QUEUE_FULL", "What a request does when the in-flight limit is reached", "block or error", "block"),
    Variable("NCRT_DISABLE_PLUGINS", "Plugins not to register", "comma-separated plugin names", "none"),
    Variable("NCRT_LEGACY_NCG", "What NEURONCORE_GROUP_SIZES does", "warn or error", "warn"),
)

_BY_NAME: dict[str, Variable] = {variable.name: variable for variable in VARIABLES}


def _accepted(name: str) -> str:
    """What the variable accepts, for an error message."""
    return _BY_NAME[name].accepted


def _fail(name: str, text: str, reason: str = "") -> ConfigError:
    return ConfigError(name, text, _accepted(name), reason)


def _clip(text: str, width: int = 24) -> str:
    """A long value shortened for the reason part of a message."""
    return text if len(text) <= width else text[:width] + "..."


@dataclass
class Config:
    """The parsed configuration; plugins may adjust it in ``ncrt_configure``."""

    visible_cores: tuple[int, ...] | None = None
    num_cores: int = 0
    log_level: str = "ERROR"
    log_location: str = "console"
    component_log_levels: dict[str, str] = field(default_factory=dict)
    component_log_locations: dict[str, str] = field(default_factory=dict)
    exec_timeout: float = 30.0
    validate_hash: bool = False
    multi_instance_shared_weights: bool = False
    async_exec_max_inflight_requests: int = 0
    allow_legacy_neff: bool = False
    max_num_infers: int | None = None
    group_sizes: str | None = None
    instance_type: str | None = None
    state_dir: str | None = None
    strict: bool = False
    queue_full: str = "block"
    disabled_plugins: tuple[str, ...] = ()
    legacy_ncg: str = "warn"
    extra: dict[str, object] = field(default_factory=dict)

    def max_inflight(self, core_count: int) -> int:
        """Outstanding requests allowed: ``NEURON_MAX_NUM_INFERS`` or cores + 3 (seed 003)."""
        if self.max_num_infers is not None:
            return self.max_num_infers
        return core_count + 3


# --- scalar parsers: (variable name, stripped non-empty text) -> value -------------


class _Invalid(Exception):
    """Raised by the helpers below with a reason; the caller turns it into a ConfigError."""


def _index(text: str) -> int:
    """A decimal integer from 0 to INT_MAX, without int() on a huge string."""
    if not _DIGITS.fullmatch(text):
        raise _Invalid(f"{_clip(text)!r} is not a non-negative decimal integer")
    significant = text.lstrip("0") or "0"
    if len(significant) > len(str(INT_MAX)) or int(significant) > INT_MAX:
        raise _Invalid(f"{_clip(text)} is larger than {INT_MAX}")
    return int(significant)


def _seconds(text: str) -> float:
    if not _DECIMAL.fullmatch(text):
        raise _Invalid("not a non-negative number of seconds")
    _index(text.split(".", 1)[0] or "0")
    return float(text)


def _parse_int(name: str, text: str, minimum: int = 0) -> int:
    try:
        value = _index(text)
    except _Invalid as invalid:
        raise _fail(name, text, str(invalid)) from None
    if value < minimum:
        raise _fail(name, text, f"{value} is less than {minimum}")
    return value


def _parse_positive(name: str, text: str) -> int:
    return _parse_int(name, text, minimum=1)


def _parse_seconds(name: str, text: str) -> float:
    """Whole seconds as the runtime takes them, or a decimal (an ncrt extension)."""
    try:
        return _seconds(text)
    except _Invalid as invalid:
        raise _fail(name, text, str(invalid)) from None


def _ascii_word(text: str) -> str | None:
    """``text`` in lower case if it is ASCII, else None: words are compared as ASCII only,
    so that no look-alike (a dotless ``ı``, a Kelvin sign ``K``) case-maps into a keyword."""
    return text.lower() if text.isascii() else None


def parse_bool(name: str, text: str) -> bool:
    """``true``/``false``/``1``/``0`` in any (ASCII) case, surrounding whitespace allowed."""
    word = _ascii_word(text.strip())
    if word in _TRUE_WORDS:
        return True
    if word in _FALSE_WORDS:
        return False
    raise ConfigError(name, text, _BOOL_TEXT)


def _parse_level(name: str, text: str) -> str:
    if not text.isascii():
        raise _fail(name, text, "only ASCII letters are accepted")
    level = text.upper()
    if level == "WARN":
        return "WARNING"
    if level not in LOG_LEVELS:
        raise _fail(name, text)
    return level


def _parse_location(name: str, text: str) -> str:
    word = _ascii_word(text)
    if word in ("console", "syslog"):
        return word
    return _parse_path(name, text)


def _parse_path(name: str, text: str) -> str:
    if "\0" in text:
        raise _fail(name, text, "a path cannot contain a NUL character")
    return text


def _parse_raw(name: str, text: str) -> str:
    return text


def _choice(*choices: str) -> Callable[[str, str], str]:
    def parse(name: str, text: str) -> str:
        word = _ascii_word(text)
        if word not in choices:
            raise _fail(name, text)
        return word

    return parse


def _parse_names(name: str, text: str) -> tuple[str, ...]:
    """A comma-separated list of names; blanks ignored, duplicates dropped, order kept."""
    names = (item.strip() for item in text.split(","))
    return tuple(dict.fromkeys(item for item in names if item))


# --- core sets ---------------------------------------------------------------------


def _core_range(item: str) -> range:
    """``3`` or ``0-2`` (whitespace around either end tolerated) as a range."""
    if not item:
        raise _Invalid("empty item in the list")
    start_text, dash, end_text = (part.strip() for part in item.partition("-"))
    if dash and not (start_text and end_text):
        raise _Invalid(f"{_clip(item)!r} is a negative index or a range without both ends")
    start = _index(start_text)
    end = _index(end_text) if dash else start
    if end < start:
        raise _Invalid(f"range end {end} is before start {start}")
    return range(start, end + 1)


def _core_set(text: str) -> tuple[int, ...]:
    ranges = [_core_range(item.strip()) for item in text.split(",")]
    if sum(len(span) for span in ranges) > MAX_CORE_SET_SIZE:
        raise _Invalid(f"names more than {MAX_CORE_SET_SIZE} cores")
    return tuple(sorted({index for span in ranges for index in span}))


def parse_core_set(text: str, name: str = "NEURON_RT_VISIBLE_CORES") -> tuple[int, ...]:
    """``3``, ``0-2``, ``3-5,6`` or ``1,3`` as sorted, de-duplicated core indices.

    ``name`` is the variable an error message names.
    """
    try:
        return _core_set(text)
    except _Invalid as invalid:
        raise ConfigError(name, text, _CORE_SET_TEXT, str(invalid)) from None


def format_core_set(cores: Iterable[int]) -> str:
    """The compact form :func:`parse_core_set` reads back: ``0-2,5``."""
    return ",".join(f"{start}" if start == end else f"{start}-{end}" for start, end in _runs(cores))


def format_nc_range(cores: Iterable[int]) -> str:
    """The runtime's way of printing cores: ``nc3-nc5``, ``nc1,nc3``."""
    return ",".join(f"nc{start}" if start == end else f"nc{start}-nc{end}" for start, end in _runs(cores))


def _runs(cores: Iterable[int]) -> list[tuple[int, int]]:
    """Consecutive runs of the sorted distinct cores, as (first, last) pairs."""
    runs: list[tuple[int, int]] = []
    for index in sorted(set(cores)):
        if runs and runs[-1][1] == index - 1:
            runs[-1] = (runs[-1][0], index)
        else:
            runs.append((index, index))
    return runs


# --- the environment ---------------------------------------------------------------

_Parser = Callable[[str, str], object]

_FIELDS: dict[str, tuple[str, _Parser]] = {
    "NEURON_RT_VISIBLE_CORES": ("visible_cores", lambda name, text: parse_core_set(text, name)),
    "NEURON_RT_NUM_CORES": ("num_cores", _parse_int),
    "NEURON_RT_LOG_LEVEL": ("log_level", _parse_level),
    "NEURON_RT_LOG_LOCATION": ("log_location", _parse_location),
    "NEURON_RT_EXEC_TIMEOUT": ("exec_timeout", _parse_seconds),
    "NEURON_RT_VALIDATE_HASH": ("validate_hash", parse_bool),
    "NEURON_RT_MULTI_INSTANCE_SHARED_WEIGHTS": ("multi_instance_shared_weights", parse_bool),
    "NEURON_RT_ASYNC_EXEC_MAX_INFLIGHT_REQUESTS": ("async_exec_max_inflight_requests", _parse_int),
    "NEURON_RT_ALLOW_LEGACY_NEFF": ("allow_legacy_neff", parse_bool),
    "NEURON_MAX_NUM_INFERS": ("max_num_infers", _parse_positive),
    "NEURONCORE_GROUP_SIZES": ("group_sizes", _parse_raw),
    "NCRT_INSTANCE_TYPE": ("instance_type", _parse_raw),
    "NCRT_STATE_DIR": ("state_dir", _parse_path),
    "NCRT_STRICT": ("strict", parse_bool),
    "NCRT_QUEUE_FULL": ("queue_full", _choice("block", "error")),
    "NCRT_DISABLE_PLUGINS": ("disabled_plugins", _parse_names),
    "NCRT_LEGACY_NCG": ("legacy_ncg", _choice("warn", "error")),
}


def _set_values(environ: Mapping[str, str]) -> dict[str, str]:
    """The variables ncrt reads that are set to something other than blank, stripped."""
    values = {name: environ.get(name, "") for name in _BY_NAME}
    return {name: text.strip() for name, text in values.items() if text and text.strip()}


def _component_settings(values: Mapping[str, str], prefix: str, parse: _Parser) -> dict[str, str]:
    settings = {}
    for component in COMPONENTS:
        name = f"{prefix}_{component}"
        if name in values:
            settings[component] = str(parse(name, values[name]))
    return settings


def parse_config(environ: Mapping[str, str] | None = None) -> Config:
    """Parse the environment (default ``os.environ``) into a :class:`Config`.

    Raises :class:`~ncrt.errors.ConfigError` for the first bad value.
    """
    values = _set_values(os.environ if environ is None else environ)
    config = Config()
    for name, (attribute, parse) in _FIELDS.items():
        if name in values:
            setattr(config, attribute, parse(name, values[name]))
    config.component_log_levels = _component_settings(values, "NEURON_RT_LOG_LEVEL", _parse_level)
    config.component_log_locations = _component_settings(values, "NEURON_RT_LOG_LOCATION", _parse_location)
    return config


# --- checks that need the topology -------------------------------------------------


def check_against_topology(config: Config, core_count: int) -> None:
    """Check the core settings against a host of ``core_count`` cores.

    A visible core past the last one, or more cores asked for than exist, raises
    :class:`~ncrt.errors.ConfigError`; a non-contiguous visible set warns (real
    Neuron hardware needs consecutive cores) or, with ``NCRT_STRICT``, raises.
    """
    _check_visible_exist(config.visible_cores, core_count)
    _check_num_cores(config.num_cores, core_count)
    _check_contiguous(config.visible_cores, config.strict)


def _check_visible_exist(visible: tuple[int, ...] | None, core_count: int) -> None:
    missing = [index for index in visible or () if index >= core_count]
    if missing:
        raise ConfigError(
            "NEURON_RT_VISIBLE_CORES",
            format_core_set(visible or ()),
            f"core indices 0-{core_count - 1} (this host has {core_count} NeuronCores)",
            f"core {missing[0]} does not exist; the last core is {core_count - 1}",
        )


def _check_num_cores(num_cores: int, core_count: int) -> None:
    if num_cores > core_count:
        raise ConfigError(
            "NEURON_RT_NUM_CORES",
            str(num_cores),
            f"a value from 1 to {core_count}, or 0 for all cores",
            f"this host has only {core_count} NeuronCores",
        )


def _check_contiguous(visible: tuple[int, ...] | None, strict: bool) -> None:
    if not visible or visible[-1] - visible[0] + 1 == len(visible):
        return
    text = format_core_set(visible)
    message = f"real Neuron hardware requires consecutive cores, got {format_nc_range(visible)}"
    if strict:
        accepted = "consecutive cores (such as 0-2) when NCRT_STRICT=1"
        raise ConfigError("NEURON_RT_VISIBLE_CORES", text, accepted, message)
    warnings.warn(f"NEURON_RT_VISIBLE_CORES={text}: {message}", RuntimeWarning, stacklevel=3)
