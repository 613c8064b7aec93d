"""The errors ncrt raises.

Every error derives from :class:`NcrtError` and carries the Neuron Runtime status
(``NRT_STATUS``, as in ``nrt_status.h``) that the real runtime would report for the
same situation, so code that inspects ``error.status`` keeps working. Messages quote
the value received and say what is accepted. Errors pickle with their class, message,
status and attributes, so they cross process boundaries intact (Ray actors,
multiprocessing pools).
"""

from __future__ import annotations

import contextlib
import enum
from typing import Iterator

__all__ = [
    "NrtStatus",
    "NcrtError",
    "ConfigError",
    "CoresUnavailableError",
    "StateDirError",
    "PlacementError",
    "ModelLoadError",
    "HashMismatchError",
    "ExecutionError",
    "ExecTimeoutError",
    "ForeignModelError",
    "QueueFullError",
    "BadInputError",
    "FrameworkMissingError",
    "ResourceLeakError",
    "ProcessTimeoutError",
    "unreadable_artifact",
]


class NrtStatus(enum.IntEnum):
    """Status codes of the Neuron Runtime (``NRT_STATUS``)."""

    SUCCESS = 0
    FAILURE = 1
    INVALID = 2
    INVALID_HANDLE = 3
    RESOURCE = 4
    TIMEOUT = 5
    HW_ERROR = 6
    QUEUE_FULL = 7
    LOAD_NOT_ENOUGH_NC = 9
    UNSUPPORTED_NEFF_VERSION = 10
    FAIL_HOST_MEM_ALLOC = 11
    UNINITIALIZED = 13
    CLOSED = 14
    EXEC_BAD_INPUT = 1002
    EXEC_COMPLETED_WITH_NUM_ERR = 1003
    EXEC_COMPLETED_WITH_ERR = 1004
    EXEC_NC_BUSY = 1005


class NcrtError(Exception):
    """Base of every ncrt error; ``status`` is the Neuron Runtime status."""

    status: NrtStatus = NrtStatus.FAILURE

    def __init__(self, message: str, *, status: NrtStatus | None = None) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status

    def __str__(self) -> str:
        return f"{self.args[0]} [NRT_{self.status.name}]"

    def __reduce__(self) -> tuple:
        # The default rebuilds with cls(*args), which fails for subclasses whose
        # __init__ takes other arguments (ConfigError, FrameworkMissingError).
        # The instance's own status, if any, is in its __dict__ with the other attributes.
        return (_rebuild, (type(self), self.args[0]), self.__dict__)


def _rebuild(cls: type[NcrtError], message: str) -> NcrtError:
    """An unpickled error: ``cls`` with ``message``; pickle then restores its attributes."""
    error = cls.__new__(cls)
    NcrtError.__init__(error, message)
    return error


class ConfigError(NcrtError, ValueError):
    """A configuration variable has a value ncrt cannot accept."""

    status = NrtStatus.INVALID

    def __init__(self, variable: str, value: object, accepted: str, reason: str = "") -> None:
        self.variable = variable
        self.value = value
        self.accepted = accepted
        why = f" ({reason})" if reason else ""
        super().__init__(f"{variable}={value!r} is not valid{why}; accepted: {accepted}")


class CoresUnavailableError(NcrtError):
    """The NeuronCores a process asked for are held by other processes or do not exist."""

    status = NrtStatus.RESOURCE


class StateDirError(NcrtError):
    """The state directory that holds the core locks is unsafe or inconsistent."""

    status = NrtStatus.FAILURE


class PlacementError(NcrtError, ValueError):
    """A model cannot be placed on the cores asked for."""

    status = NrtStatus.LOAD_NOT_ENOUGH_NC


class ModelLoadError(NcrtError):
    """An artifact cannot be turned into a loaded model."""

    status = NrtStatus.INVALID


class HashMismatchError(ModelLoadError):
    """A compiled model's payload does not match the sha256 in its manifest."""

    status = NrtStatus.INVALID


class ExecutionError(NcrtError):
    """A model raised while executing on a core; ``core`` is the per-process index."""

    status = NrtStatus.EXEC_COMPLETED_WITH_ERR

    def __init__(self, message: str, *, core: int | None = None) -> None:
        super().__init__(message)
        self.core = core


class ExecTimeoutError(ExecutionError, TimeoutError):
    """An execution ran past ``NEURON_RT_EXEC_TIMEOUT``."""

    status = NrtStatus.TIMEOUT


class ForeignModelError(NcrtError):
    """A model (or future) used in a process other than the one that loaded it.

    A forked child holds none of its parent's NeuronCores (the Neuron runtime is not
    fork-safe either): it must load its own models.
    """

    status = NrtStatus.INVALID_HANDLE


class QueueFullError(NcrtError):
    """More requests are in flight than the configured limit allows."""

    status = NrtStatus.QUEUE_FULL


class BadInputError(NcrtError, ValueError):
    """Inputs whose shape or structure the compiled model cannot take."""

    status = NrtStatus.EXEC_BAD_INPUT


class FrameworkMissingError(NcrtError, ImportError):
    """A plugin needs a framework that is not installed; the message names the extra."""

    status = NrtStatus.FAILURE

    def __init__(self, framework: str, extra: str) -> None:
        super().__init__(
            f"ncrt's {framework} support needs {framework}, which is not installed; "
            f"install it with: pip install 'ncrt[{extra}]'"
        )
        self.framework = framework
        self.extra = extra


class ResourceLeakError(NcrtError):
    """A test ended with NeuronCores reserved or models loaded that it did not release."""

    status = NrtStatus.RESOURCE


class ProcessTimeoutError(NcrtError, TimeoutError):
    """A process started for a test ran past its time limit and was killed."""

    status = NrtStatus.TIMEOUT


@contextlib.contextmanager
def unreadable_artifact(what: str, raw: tuple[type[BaseException], ...], fix: str) -> Iterator[None]:
    """Inside this block, a framework loader's own error (one of ``raw``) about a damaged
    file becomes a :class:`ModelLoadError` that names ``what``, the raw error and ``fix``.

    ncrt's own errors pass unchanged; anything not in ``raw`` is a bug and is not hidden.
    """
    try:
        yield
    except NcrtError:
        raise
    except raw as error:
        lines = str(error).strip().splitlines() or [""]
        detail = lines[-1] if lines[0].startswith("Traceback") else lines[0]  # MXNet: the last line says it
        detail = detail.removeprefix(f"{type(error).__name__}: ")[:240]
        raise ModelLoadError(f"{what} cannot be read: it is damaged or is not what it claims to be "
                             f"({type(error).__name__}: {detail}); {fix}") from error
