"""The runtime configuration: every environment variable ncrt honours, parsed once.

The Neuron Runtime is configured through process environment variables (seed 004:
``NEURON_RT_*``); the frameworks add ``NEURONCORE_GROUP_SIZES`` and
``NEURON_MAX_NUM_INFERS`` (seed 003), and ncrt's own knobs are ``NCRT_*``.
:func:`parse_config` turns an environment into a :class:`Config`; every bad value
raises :class:`~ncrt.errors.ConfigError` naming the variable, the value received
and what is accepted, and no input string raises any other exception.

A variable set to an empty (or blank) string is treated as unset. Every variable is a
:class:`Variable` of a :class:`VariableTable`: the core's own (:data:`CORE_VARIABLES`)
and those each plugin declares in its ``ncrt_add_variables`` hook. Parsing, validation,
error messages and the docs' configuration table all read that one table;
``ncrt.config.VARIABLES`` lists it for the registered plugins.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from .coreset import format_cores
from .errors import ConfigError

__all__ = [
    "INT_MAX",
    "MAX_CORE_SET_SIZE",
    "LOG_LEVELS",
    "COMPONENTS",
    "CORE_VARIABLES",
    "InvalidValue",
    "Parser",
    "Variable",
    "VARIABLES",  # noqa: F822 - computed on access from the registered plugins
    "VariableTable",
    "Config",
    "blocked_plugins",
    "check_against_topology",
    "choice",
    "format_core_set",
    "format_nc_range",
    "parse_bool",
    "parse_config",
    "parse_core_set",
    "parse_int",
    "parse_path",
    "parse_positive",
    "parse_text",
    "parse_value",
    "read_variable",
    "variable_table",
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


Parser = Callable[[str, str], object]
"""``parse(name, text) -> value`` for a stripped, non-blank ``text``; raises :class:`InvalidValue`."""


def parse_text(name: str, text: str) -> str:
    """Any text, as given (stripped)."""
    return text


@dataclass(frozen=True)
class Variable:
    """One environment variable: what it does, what it accepts, its default, how it is read.

    ``default`` is the default as the docs show it and ``value`` the value used when the
    variable is unset. ``attribute`` names the :class:`Config` field of one of the core's
    own variables; any other variable's value is in ``Config.settings``.
    """

    name: str
    description: str
    accepted: str
    default: str
    parse: Parser = parse_text
    attribute: str | None = None
    value: object = None


_CORE_SET_TEXT = (
    "a core index (3), an inclusive range (0-2) or a comma-separated list of both "
    f"(3-5,6); indices from 0 to {INT_MAX}"
)
_LEVEL_TEXT = "ERROR, WARNING (or WARN), INFO, DEBUG, TRACE or QUIET, in any ASCII case"
_LOCATION_TEXT = "console, syslog, or a file path"
_BOOL_TEXT = "true, false, 1 or 0, in any ASCII case"

@dataclass
class Config:
    """The parsed configuration; plugins may adjust it in ``ncrt_configure``.

    The core's own variables have fields; every other variable's value (a plugin's, the
    per-component log settings) is read with :meth:`setting`.
    """

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
    instance_type: str | None = None
    state_dir: str | None = None
    strict: bool = False
    queue_full: str = "block"
    disabled_plugins: tuple[str, ...] = ()
    coalesce: bool = True
    coalesce_max_batch: int | None = None
    coalesce_max_delay_us: int = 0
    settings: dict[str, object] = field(default_factory=dict)
    variables: VariableTable | None = field(default=None, compare=False, repr=False)

    def setting(self, name: str) -> object:
        """The value of a variable without a field of its own (a plugin's): as set, or its default."""
        if name in self.settings:
            return self.settings[name]
        variables = self.variables or variable_table()
        if name not in variables:
            raise KeyError(f"{name} is not a variable of any registered plugin")
        return variables[name].value

    def max_inflight(self, core_count: int) -> int:
        """Outstanding requests allowed: ``NEURON_MAX_NUM_INFERS`` or cores + 3 (seed 003)."""
        if self.max_num_infers is not None:
            return self.max_num_infers
        return core_count + 3


# --- scalar parsers: (variable name, stripped non-empty text) -> value -------------


def _clip(text: str, width: int = 24) -> str:
    """A long value shortened for the reason part of a message."""
    return text if len(text) <= width else text[:width] + "..."


class InvalidValue(ValueError):
    """Raised by a variable's parser with the reason a value is wrong.

    :func:`parse_config` turns it into a :class:`~ncrt.errors.ConfigError` naming the
    variable, the value and what the variable accepts.
    """


def _index(text: str) -> int:
    """A decimal integer from 0 to INT_MAX, without int() on a huge string."""
    if not _DIGITS.fullmatch(text):
        raise InvalidValue(f"{_clip(text)!r} is not a non-negative decimal integer")
    significant = text.lstrip("0") or "0"
    if len(significant) > len(str(INT_MAX)) or int(significant) > INT_MAX:
        raise InvalidValue(f"{_clip(text)} is larger than {INT_MAX}")
    return int(significant)


def _seconds(text: str) -> float:
    if not _DECIMAL.fullmatch(text):
        raise InvalidValue("not a non-negative number of seconds")
    _index(text.split(".", 1)[0] or "0")
    return float(text)


def parse_int(name: str, text: str, minimum: int = 0) -> int:
    try:
        value = _index(text)
    except InvalidValue as invalid:
        raise InvalidValue(str(invalid)) from None
    if value < minimum:
        raise InvalidValue(f"{value} is less than {minimum}")
    return value


def parse_positive(name: str, text: str) -> int:
    return parse_int(name, text, minimum=1)


def _parse_seconds(name: str, text: str) -> float:
    """Whole seconds as the runtime takes them, or a decimal (an ncrt extension)."""
    return _seconds(text)


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
        raise InvalidValue("only ASCII letters are accepted")
    level = text.upper()
    if level == "WARN":
        return "WARNING"
    if level not in LOG_LEVELS:
        raise InvalidValue("")
    return level


def _parse_location(name: str, text: str) -> str:
    word = _ascii_word(text)
    if word in ("console", "syslog"):
        return word
    return parse_path(name, text)


def parse_path(name: str, text: str) -> str:
    if "\0" in text:
        raise InvalidValue("a path cannot contain a NUL character")
    return text


def choice(*choices: str) -> Callable[[str, str], str]:
    def parse(name: str, text: str) -> str:
        word = _ascii_word(text)
        if word not in choices:
            raise InvalidValue("")
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
        raise InvalidValue("empty item in the list")
    start_text, dash, end_text = (part.strip() for part in item.partition("-"))
    if dash and not (start_text and end_text):
        raise InvalidValue(f"{_clip(item)!r} is a negative index or a range without both ends")
    start = _index(start_text)
    end = _index(end_text) if dash else start
    if end < start:
        raise InvalidValue(f"range end {end} is before start {start}")
    return range(start, end + 1)


def _core_set(text: str) -> tuple[int, ...]:
    ranges = [_core_range(item.strip()) for item in text.split(",")]
    if sum(len(span) for span in ranges) > MAX_CORE_SET_SIZE:
        raise InvalidValue(f"names more than {MAX_CORE_SET_SIZE} cores")
    return tuple(sorted({index for span in ranges for index in span}))


def parse_core_set(text: str, name: str = "NEURON_RT_VISIBLE_CORES") -> tuple[int, ...]:
    """``3``, ``0-2``, ``3-5,6`` or ``1,3`` as sorted, de-duplicated core indices.

    ``name`` is the variable an error message names.
    """
    try:
        return _core_set(text)
    except InvalidValue as invalid:
        raise ConfigError(name, text, _CORE_SET_TEXT, str(invalid)) from None


def format_core_set(cores: Iterable[int]) -> str:
    """The compact form :func:`parse_core_set` reads back: ``0-2,5``."""
    return format_cores(cores)


def format_nc_range(cores: Iterable[int]) -> str:
    """The runtime's way of printing cores: ``nc3-nc5``, ``nc1,nc3``."""
    return format_cores(cores, "nc")


# --- the variables -------------------------------------------------------------------


def _parse_core_set_variable(name: str, text: str) -> tuple[int, ...]:
    return parse_core_set(text, name)


def _parse_bool_variable(name: str, text: str) -> bool:
    return parse_bool(name, text)


CORE_VARIABLES: tuple[Variable, ...] = (
    Variable("NEURON_RT_VISIBLE_CORES", "NeuronCores this process reserves; wins over NEURON_RT_NUM_CORES; a non-contiguous set warns (an error with NCRT_STRICT=1)", _CORE_SET_TEXT, "unset (all)",
             _parse_core_set_variable, "visible_cores"),
    Variable(
        "NEURON_RT_NUM_CORES",
        "Number of free NeuronCores this process reserves, contiguous when possible",
        f"an integer from 0 to {INT_MAX}; 0 means all",
        "0",
        parse_int,
        "num_cores",
    ),
    Variable("NEURON_RT_LOG_LEVEL", "Log level of every runtime component", _LEVEL_TEXT, "ERROR",
             _parse_level, "log_level"),
    Variable("NEURON_RT_LOG_LOCATION", "Where every runtime component logs", _LOCATION_TEXT, "console",
             _parse_location, "log_location"),
    *(
        Variable(f"NEURON_RT_LOG_LEVEL_{name}", f"Log level of {name}", _LEVEL_TEXT, "NEURON_RT_LOG_LEVEL",
                 _parse_level)
        for name in COMPONENTS
    ),
    *(
        Variable(f"NEURON_RT_LOG_LOCATION_{name}", f"Where {name} logs", _LOCATION_TEXT, "NEURON_RT_LOG_LOCATION",
                 _parse_location)
        for name in COMPONENTS
    ),
    Variable(
        "NEURON_RT_EXEC_TIMEOUT",
        "Execution timeout: every caller gets ExecTimeoutError after T without progress, even if the model never returns, and the core is freed; 0 means none (decimals are an ncrt extension)",
        f"a number of seconds from 0 to {INT_MAX}, such as 30 or 0.5",
        "30",
        _parse_seconds,
        "exec_timeout",
    ),
    Variable("NEURON_RT_VALIDATE_HASH", "Refuse a compiled model whose payload does not match its manifest's sha256, or whose manifest does not match its seal", _BOOL_TEXT, "false",
             _parse_bool_variable, "validate_hash"),
    Variable(
        "NEURON_RT_MULTI_INSTANCE_SHARED_WEIGHTS",
        "Replicas of one model on different cores share one copy of the weights",
        _BOOL_TEXT,
        "false",
        _parse_bool_variable,
        "multi_instance_shared_weights",
    ),
    Variable(
        "NEURON_RT_ASYNC_EXEC_MAX_INFLIGHT_REQUESTS",
        "Per-core limit on asynchronous requests in flight; 0: only NEURON_MAX_NUM_INFERS applies",
        f"an integer from 0 to {INT_MAX}",
        "0",
        parse_int,
        "async_exec_max_inflight_requests",
    ),
    Variable("NEURON_RT_ALLOW_LEGACY_NEFF", "Run a model compiled for an older architecture (accepted and validated)", _BOOL_TEXT, "false",
             _parse_bool_variable, "allow_legacy_neff"),
    Variable(
        "NEURON_MAX_NUM_INFERS",
        "Outstanding inference requests per process",
        f"an integer from 1 to {INT_MAX}",
        "number of cores + 3",
        parse_positive,
        "max_num_infers",
    ),
    Variable("NCRT_INSTANCE_TYPE", "Instance type to emulate", "inf1.xlarge/2xlarge/6xlarge/24xlarge, inf2.xlarge/8xlarge/24xlarge/48xlarge, trn1.2xlarge/32xlarge, trn1n.32xlarge", "the host",
             parse_text, "instance_type"),
    Variable("NCRT_STATE_DIR", "Where the core locks and process records live (0700; symlinks and foreign owners refused)", "a directory path", "$XDG_RUNTIME_DIR/ncrt or /tmp/ncrt-$UID",
             parse_path, "state_dir"),
    Variable("NCRT_STRICT", "Turn hardware-only warnings into errors", _BOOL_TEXT, "false",
             _parse_bool_variable, "strict"),
    Variable("NCRT_QUEUE_FULL", "block waits for room under the in-flight limits, error raises QueueFullError (NRT_QUEUE_FULL)", "block or error",
             "block", choice("block", "error"), "queue_full"),
    Variable("NCRT_DISABLE_PLUGINS", "Plugins not to register", "comma-separated plugin names", "none",
             _parse_names, "disabled_plugins"),
    Variable("NCRT_COALESCE", "Join concurrent requests smaller than the coalescing limit that wait for the same model into one execution, each caller getting its own rows back", _BOOL_TEXT, "true",
             _parse_bool_variable, "coalesce"),
    Variable("NCRT_COALESCE_MAX_BATCH", "The most rows one coalesced execution holds (requests of at least that many rows run on their own); a per-model setting wins", f"an integer from 1 to {INT_MAX}", "the compiled batch size",
             parse_positive, "coalesce_max_batch"),
    Variable("NCRT_COALESCE_MAX_DELAY_US", "Microseconds a partly filled coalesced execution waits for more requests after its oldest one arrived (Triton's max_queue_delay_microseconds); 0 joins only what is already waiting; a per-model setting wins", f"an integer from 0 to {INT_MAX}", "0",
             parse_int, "coalesce_max_delay_us"),
)
"""The variables the core reads itself; plugins add theirs through ``ncrt_add_variables``."""


class VariableTable:
    """Every environment variable this process honours: the core's and its plugins'.

    Plugins add theirs in the ``ncrt_add_variables`` hook (``variables.add(Variable(...))``);
    :func:`parse_config` parses and validates exactly the variables of the table, and the
    configuration table of the docs is generated from it.
    """

    def __init__(self, variables: Iterable[Variable] = CORE_VARIABLES) -> None:
        self._by_name: dict[str, Variable] = {}
        for variable in variables:
            self.add(variable)

    def add(self, variable: Variable) -> None:
        """Declare ``variable``; a name already declared is an error (two owners)."""
        if variable.name in self._by_name:
            raise ValueError(f"the variable {variable.name} is declared twice (by the core or two plugins)")
        self._by_name[variable.name] = variable

    def __getitem__(self, name: str) -> Variable:
        return self._by_name[name]

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __iter__(self) -> Iterator[Variable]:
        return iter(self._by_name.values())

    def __len__(self) -> int:
        return len(self._by_name)


def parse_value(variable: Variable, text: str) -> object:
    """``text`` (stripped, non-blank) as ``variable``'s value, or ConfigError."""
    try:
        return variable.parse(variable.name, text)
    except InvalidValue as invalid:
        raise ConfigError(variable.name, text, variable.accepted, str(invalid)) from None


def read_variable(name: str, environ: Mapping[str, str] | None = None, variables: VariableTable | None = None) -> object:
    """The value of one variable in ``environ`` (default ``os.environ``): parsed, or its default."""
    variable = (variables or variable_table())[name]
    text = (os.environ if environ is None else environ).get(name, "").strip()
    return parse_value(variable, text) if text else variable.value


def variable_table() -> VariableTable:
    """The variables of the process's plugins (those of ``ncrt.manager.shared_plugin_manager``)."""
    from .manager import shared_variable_table

    return shared_variable_table()


def __getattr__(name: str) -> object:
    if name == "VARIABLES":  # every variable of the registered plugins, in declaration order
        return tuple(variable_table())
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _component_settings(settings: Mapping[str, object], prefix: str) -> dict[str, str]:
    return {
        component: str(settings[f"{prefix}_{component}"])
        for component in COMPONENTS
        if settings.get(f"{prefix}_{component}") is not None
    }


def parse_config(environ: Mapping[str, str] | None = None, variables: VariableTable | None = None) -> Config:
    """Parse the environment (default ``os.environ``) into a :class:`Config`.

    ``variables`` (default: the registered plugins' table) says which variables are read;
    a variable set to something other than blank is parsed and validated. Raises
    :class:`~ncrt.errors.ConfigError` for the first bad value.
    """
    environ = os.environ if environ is None else environ
    variables = variables or variable_table()
    config = Config(variables=variables)
    for variable in variables:
        text = environ.get(variable.name, "").strip()
        if not text:
            continue
        value = parse_value(variable, text)
        if variable.attribute:
            setattr(config, variable.attribute, value)
        else:
            config.settings[variable.name] = value
    config.component_log_levels = _component_settings(config.settings, "NEURON_RT_LOG_LEVEL")
    config.component_log_locations = _component_settings(config.settings, "NEURON_RT_LOG_LOCATION")
    return config


def blocked_plugins(environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """``NCRT_DISABLE_PLUGINS`` of ``environ``: what the plugin manager must not register."""
    variable = next(v for v in CORE_VARIABLES if v.name == "NCRT_DISABLE_PLUGINS")
    text = (os.environ if environ is None else environ).get(variable.name, "").strip()
    return parse_value(variable, text) if text else ()  # type: ignore[return-value]


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
