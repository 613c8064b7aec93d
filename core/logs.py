"""Logging the way the Neuron Runtime does: one logger per runtime component.

The components are ``NRT`` (the runtime library that frameworks call), ``NMGR`` (the
manager between runtime and driver) and ``TDRV`` (the driver): loggers ``ncrt.NRT``,
``ncrt.NMGR`` and ``ncrt.TDRV``. :func:`configure_logging` applies seed 004:
``NEURON_RT_LOG_LEVEL`` and ``NEURON_RT_LOG_LOCATION`` hold for every component unless
``NEURON_RT_LOG_LEVEL_<component>`` / ``NEURON_RT_LOG_LOCATION_<component>`` override
them; ``QUIET`` silences a component; a location is ``console`` (stderr), ``syslog`` or
a file path (appended to). Lines look like the runtime's::

    2023-Jan-09 20:27:41.0593 15042:15042 ERROR TDRV:exec_consume_infer_status message

Only the component loggers are touched: no ``basicConfig``, no root handlers.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import stat
import sys
import threading
import time
from typing import TYPE_CHECKING

from .config import COMPONENTS
from .errors import ConfigError

if TYPE_CHECKING:
    from .config import Config

__all__ = [
    "COMPONENTS",
    "TRACE",
    "QUIET",
    "LOGGER_PREFIX",
    "SYSLOG_ADDRESS",
    "RuntimeFormatter",
    "get_logger",
    "level_number",
    "configure_logging",
    "reset_logging",
]

TRACE = 5
"""The runtime's TRACE level, below DEBUG."""

QUIET = logging.CRITICAL + 10
"""A level above every record: a component at QUIET logs nothing."""

LOGGER_PREFIX = "ncrt."
SYSLOG_ADDRESS = "/dev/log"

logging.addLevelName(TRACE, "TRACE")

_LEVELS = {
    "ERROR": logging.ERROR,
    "WARNING": logging.WARNING,
    "WARN": logging.WARNING,
    "INFO": logging.INFO,
    "DEBUG": logging.DEBUG,
    "TRACE": TRACE,
    "QUIET": QUIET,
}
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_MARK = "_ncrt_installed"
_syslog_warned: set[str] = set()


class RuntimeFormatter(logging.Formatter):
    """``2023-Jan-09 20:27:41.0593 pid:tid LEVEL COMPONENT:function message``."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(message)s")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        moment = time.localtime(record.created)
        day = f"{moment.tm_year}-{_MONTHS[moment.tm_mon - 1]}-{moment.tm_mday:02d}"
        clock = f"{moment.tm_hour:02d}:{moment.tm_min:02d}:{moment.tm_sec:02d}"
        return f"{day} {clock}.{min(int(record.msecs * 10), 9999):04d}"

    def formatMessage(self, record: logging.LogRecord) -> str:
        component = record.name.removeprefix(LOGGER_PREFIX).split(".", 1)[0]
        thread = getattr(record, "native_thread_id", None) or threading.get_native_id()
        where = f"{record.process}:{thread}"
        return f"{record.asctime} {where} {record.levelname} {component}:{record.funcName} {record.message}"


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A console handler that writes to whatever ``sys.stderr`` is at the time."""

    def __init__(self) -> None:
        logging.Handler.__init__(self)

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr


def get_logger(component: str) -> logging.Logger:
    """The logger of a runtime component: ``NRT``, ``NMGR`` or ``TDRV`` (any case)."""
    name = component.upper()
    if name not in COMPONENTS:
        raise ValueError(f"unknown runtime component {component!r}; expected one of {', '.join(COMPONENTS)}")
    return logging.getLogger(LOGGER_PREFIX + name)


def level_number(level: str) -> int:
    """The :mod:`logging` level of a runtime level name (``TRACE`` is 5, ``QUIET`` above all)."""
    return _LEVELS[level.upper()]


def configure_logging(config: Config) -> None:
    """Give every component logger its level and location from ``config``.

    Calling it again replaces the handlers it installed before and nothing else.
    A file location that cannot be opened raises :class:`~ncrt.errors.ConfigError`.
    """
    handlers: dict[str, logging.Handler] = {}
    for component in COMPONENTS:
        logger = get_logger(component)
        _remove_installed(logger)
        level = config.component_log_levels.get(component, config.log_level)
        logger.setLevel(level_number(level))
        logger.propagate = False
        if level.upper() == "QUIET":
            continue
        location = config.component_log_locations.get(component, config.log_location)
        if location not in handlers:
            handlers[location] = _make_handler(location, _location_variable(config, component))
        _install(logger, handlers[location], location)


def reset_logging() -> None:
    """Undo :func:`configure_logging`: no ncrt handlers, default level, propagation on."""
    for component in COMPONENTS:
        logger = get_logger(component)
        _remove_installed(logger)
        logger.setLevel(logging.NOTSET)
        logger.propagate = True


def _location_variable(config: Config, component: str) -> str:
    """The variable a component's location came from, for an error message."""
    if component in config.component_log_locations:
        return f"NEURON_RT_LOG_LOCATION_{component}"
    return "NEURON_RT_LOG_LOCATION"


def _remove_installed(logger: logging.Logger) -> None:
    for handler in [handler for handler in logger.handlers if getattr(handler, _MARK, False)]:
        logger.removeHandler(handler)
        handler.close()


def _make_handler(location: str, variable: str) -> logging.Handler:
    if location == "console":
        handler: logging.Handler = _StderrHandler()
    elif location == "syslog":
        handler = _syslog_handler() or _StderrHandler()
    else:
        handler = _file_handler(location, variable)
    handler.setFormatter(RuntimeFormatter())
    setattr(handler, _MARK, True)
    return handler


def _syslog_handler() -> logging.Handler | None:
    """A handler on the local syslog socket, or None where there is none."""
    try:
        if not stat.S_ISSOCK(os.stat(SYSLOG_ADDRESS).st_mode):
            return None
        handler = logging.handlers.SysLogHandler(address=SYSLOG_ADDRESS)
    except (OSError, ValueError):
        return None
    if handler.socket.fileno() < 0:  # some Pythons swallow a refused connection
        handler.close()
        return None
    return handler


def _file_handler(path: str, variable: str) -> logging.Handler:
    try:
        return logging.FileHandler(path, mode="a", encoding="utf-8")
    except (OSError, ValueError) as error:
        raise ConfigError(variable, path, "console, syslog, or a writable file path", str(error)) from error


def _install(logger: logging.Logger, handler: logging.Handler, location: str) -> None:
    logger.addHandler(handler)
    if location == "syslog" and not isinstance(handler, logging.handlers.SysLogHandler):
        _warn_syslog_missing(logger, handler)


def _warn_syslog_missing(logger: logging.Logger, handler: logging.Handler) -> None:
    """Say once per component, whatever its level, that syslog fell back to the console."""
    if logger.name in _syslog_warned:
        return
    _syslog_warned.add(logger.name)
    message = f"syslog is not available ({SYSLOG_ADDRESS} is missing or refuses connections); logging to the console"
    handler.handle(logger.makeRecord(logger.name, logging.WARNING, __file__, 0, message, (), None, "configure_logging"))
