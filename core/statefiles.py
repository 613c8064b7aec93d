"""Files of the state directory, read without trusting them.

Every ncrt process, and any program of the same user, can write into the state
directory, so its files are untrusted input: a process record may be truncated, of the
wrong shape, huge, nested 100,000 deep, or not a regular file at all (a FIFO that would
block a reader for ever, a symbolic link to ``/dev/zero``). The readers here open files
with ``O_NOFOLLOW | O_NONBLOCK``, accept regular files of this user only, read at most
:data:`RECORD_LIMIT` bytes, and check a record against its schema before anyone uses it.
A bad process record is skipped with one :class:`StateRecordWarning` that names it;
a planted directory or link where ncrt keeps its own folders is refused with a
:class:`~ncrt.errors.StateDirError`.
"""

from __future__ import annotations

import errno
import json
import math
import os
import stat
import threading
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator

from .errors import StateDirError

__all__ = [
    "RECORD_LIMIT",
    "StateFileError",
    "StateRecordWarning",
    "check_private_dir",
    "file_kind",
    "private_dir",
    "process_record_problem",
    "read_json_file",
    "read_process_records",
    "read_state_file",
    "write_private_atomically",
]

RECORD_LIMIT = 1 << 20
"""The largest state file read, in bytes (a record of 16 cores and 100 models is ~30 KB)."""

_NAMED_LIMIT = 4096  # longest accepted name or command in a record
_FIX = "remove it (ncrt recreates what it needs), or set NCRT_STATE_DIR to a directory of your own"


class StateFileError(StateDirError):
    """A state file that ncrt refuses to read: not a regular file of ours, too big, or malformed."""

    def __init__(self, path: Path | str, problem: str) -> None:
        super().__init__(f"ncrt state file {path} {problem}")
        self.path = Path(path)
        self.problem = problem


class StateRecordWarning(RuntimeWarning):
    """A process record in the state directory was skipped (its message names the file)."""


# --------------------------------------------------------------------------- folders


def file_kind(mode: int) -> str:
    """What a file of ``mode`` is, in words: "a directory", "a FIFO"..."""
    kinds = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISLNK, "a symbolic link"),
             (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))
    return next((name for test, name in kinds if test(mode)), "not a regular file")


def check_private_dir(path: Path | str) -> Path:
    """Return ``path`` if it is a real directory of this user; raise StateDirError if not.

    Never follows a symbolic link: a link planted in place of one of ncrt's folders
    could send its records (and their rewrites) anywhere.
    """
    path = Path(path)
    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode):
        raise StateDirError(f"ncrt state folder {path} is a symbolic link (to {os.readlink(path)}); "
                            f"ncrt never follows links in its state directory: {_FIX}")
    if not stat.S_ISDIR(info.st_mode):
        raise StateDirError(f"ncrt state folder {path} is {file_kind(info.st_mode)}, not a directory: {_FIX}")
    if info.st_uid != os.geteuid():
        raise StateDirError(f"ncrt state folder {path} is owned by uid {info.st_uid}, not by this user "
                            f"(uid {os.geteuid()}): {_FIX}")
    return path


def private_dir(path: Path | str) -> Path:
    """``path`` as a private (0700) directory, created if missing, checked either way."""
    path = Path(path)
    try:
        path.mkdir(mode=0o700)
    except FileExistsError:
        pass
    return check_private_dir(path)


# --------------------------------------------------------------------------- reading


def read_state_file(path: Path | str, limit: int = RECORD_LIMIT) -> bytes:
    """The bytes of a regular file of this user, at most ``limit`` of them.

    Raises :class:`StateFileError` for a symbolic link, a FIFO, a directory or device,
    a file of another user or one larger than ``limit``; FileNotFoundError if missing.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise StateFileError(path, "is a symbolic link; ncrt never follows links in its state directory") from None
        if error.errno in (errno.ENXIO, errno.EOPNOTSUPP):
            raise StateFileError(path, "is a socket or device, not a regular file") from None
        raise
    try:
        return _read_regular(fd, path, limit)
    finally:
        os.close(fd)


def _read_regular(fd: int, path: Path | str, limit: int) -> bytes:
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        raise StateFileError(path, f"is {file_kind(info.st_mode)}, not a regular file")
    if info.st_uid != os.geteuid():
        raise StateFileError(path, f"is owned by uid {info.st_uid}, not by this user (uid {os.geteuid()})")
    if info.st_size > limit:
        raise StateFileError(path, f"holds {info.st_size} bytes; the most ncrt reads is {limit}")
    chunks, size = [], 0
    while True:
        chunk = os.read(fd, min(limit + 1 - size, 1 << 16))
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            raise StateFileError(path, f"grew past {limit} bytes while being read")


def read_json_file(path: Path | str, limit: int = RECORD_LIMIT) -> Any:
    """The JSON value of a state file (see :func:`read_state_file`); StateFileError if malformed."""
    data = read_state_file(path, limit)
    try:
        return json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as error:
        raise StateFileError(path, f"is not UTF-8 text ({error.reason} at byte {error.start})") from None
    except RecursionError:
        raise StateFileError(path, "is JSON nested too deeply to read") from None
    except ValueError as error:
        raise StateFileError(path, f"is not valid JSON ({error})") from None


# --------------------------------------------------------------------------- schema


def _is_int(value: Any, minimum: int = 0) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def _is_number(value: Any, minimum: float = 0.0) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value) and value >= minimum)


def _is_text(value: Any) -> bool:
    return isinstance(value, str) and len(value) <= _NAMED_LIMIT


def _is_optional_text(value: Any) -> bool:
    return value is None or _is_text(value)


def _is_ints(value: Any) -> bool:
    return isinstance(value, list) and all(_is_int(item) for item in value)


def _is_texts(value: Any) -> bool:
    return isinstance(value, list) and all(_is_text(item) for item in value)


def _is_latency(value: Any) -> bool:
    return value is None or (isinstance(value, dict) and all(_is_number(v) for v in value.values()))


def _is_ratio(value: Any) -> bool:
    return _is_number(value) and value <= 1.0


_Check = Callable[[Any], bool]
_Fields = dict[str, tuple[_Check, str, bool]]  # name -> (check, what is accepted, required)

_CORE_FIELDS: _Fields = {
    "index": (_is_int, "an integer >= 0", True),
    "global_index": (_is_int, "an integer >= 0", True),
    "chip": (_is_int, "an integer >= 0", False),
    "cpus": (_is_ints, "a list of integers >= 0", False),
    "models": (_is_texts, "a list of model names", False),
    "executions": (_is_int, "an integer >= 0", False),
    "errors": (_is_int, "an integer >= 0", False),
    "timeouts": (_is_int, "an integer >= 0", False),
    "model_switches": (_is_int, "an integer >= 0", False),
    "busy_seconds": (_is_number, "a number of seconds >= 0", False),
    "last_model": (_is_optional_text, "a model uid or null", False),
    "latency": (_is_latency, "null or an object of percentiles in seconds", False),
    "utilization": (_is_ratio, "a number from 0 to 1", False),
}

_MODEL_FIELDS: _Fields = {
    "name": (_is_text, "a model name", True),
    "uid": (_is_text, "a model uid", False),
    "framework": (_is_text, "a framework name", False),
    "label": (_is_text, "a core label such as NC0-1", False),
    "cores": (_is_ints, "a list of integers >= 0", False),
    "global_cores": (_is_ints, "a list of integers >= 0", False),
    "cores_per_replica": (lambda value: _is_int(value, 1), "an integer >= 1", False),
    "replicas": (lambda value: _is_int(value, 1), "an integer >= 1", False),
}

_RECORD_FIELDS: _Fields = {
    "pid": (lambda value: _is_int(value, 1), "a process id", True),
    "cores": (lambda value: isinstance(value, list), "a list of core entries", True),
    "models": (lambda value: isinstance(value, list), "a list of model entries", True),
    "topology": (_is_text, "a topology fingerprint", False),
    "command": (lambda value: isinstance(value, str), "a command line", False),
    "tag": (_is_text, "a process tag", False),
    "time": (_is_number, "a time in seconds", False),
    "stats_period": (_is_number, "a number of seconds", False),
    "latency": (_is_latency, "null or an object of percentiles in seconds", False),
}


def _json_kind(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null",
             int: "an integer", float: "a number"}
    return names.get(type(value), type(value).__name__)


def _object_problem(value: Any, fields: _Fields, where: str) -> str | None:
    """What is wrong with one JSON object of a record (``where`` names it: "the record",
    "cores[0]"), or None."""
    if not isinstance(value, dict):
        return f"{where} is {_json_kind(value)}, not an object"
    prefix = "" if where == "the record" else f"{where}."
    for name, (check, accepted, required) in fields.items():
        if name not in value:
            if required:
                return f"{where} lacks {name!r}"
            continue
        if not check(value[name]):
            return f"{prefix}{name} is {_shown(value[name])}; accepted: {accepted}"
    return None


def _shown(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, (dict, list)) else _json_kind(value)
    return text if len(text) <= 40 else text[:37] + "..."


def process_record_problem(record: Any, pid: int | None = None) -> str | None:
    """What is wrong with a process record (``procs/<pid>.json``), or None if it is sound."""
    problem = _object_problem(record, _RECORD_FIELDS, "the record")
    if problem:
        return problem
    if pid is not None and record["pid"] != pid:
        return f"the record names pid {record['pid']}, not the pid {pid} of its file name"
    for position, core in enumerate(record["cores"]):
        problem = _object_problem(core, _CORE_FIELDS, f"cores[{position}]")
        if problem:
            return problem
    for position, model in enumerate(record["models"]):
        problem = _object_problem(model, _MODEL_FIELDS, f"models[{position}]")
        if problem:
            return problem
    return None


# --------------------------------------------------------------------------- records

_warned: set[tuple[Any, ...]] = set()
_warned_lock = threading.Lock()


def _warn_once(path: Path, problem: str) -> None:
    """One StateRecordWarning per bad version of a record (named by path and content)."""
    try:
        info = os.lstat(path)
        key: tuple[Any, ...] = (str(path), info.st_ino, info.st_mtime_ns, info.st_size)
    except OSError:
        key = (str(path), problem)
    with _warned_lock:
        if key in _warned:
            return
        _warned.add(key)
    warnings.warn(f"skipped the process record {path}: {problem}", StateRecordWarning, stacklevel=3)


def _record_files(folder: Path) -> Iterator[tuple[int, Path]]:
    for path in sorted(folder.glob("*.json")):
        if path.stem.isascii() and path.stem.isdigit() and len(path.stem) <= 10:
            yield int(path.stem), path


def read_process_records(folder: Path | str) -> dict[int, dict[str, Any]]:
    """Every sound process record in ``folder`` (``<state dir>/procs``), by pid.

    A missing folder holds no records; a folder that is a link or not ours raises
    StateDirError; each unreadable or malformed record is skipped with one warning.
    """
    folder = Path(folder)
    if not os.path.lexists(folder):
        return {}
    check_private_dir(folder)
    records: dict[int, dict[str, Any]] = {}
    for pid, path in _record_files(folder):
        try:
            record = read_json_file(path)
        except FileNotFoundError:
            continue  # withdrawn while we listed the folder
        except (StateFileError, OSError) as error:
            _warn_once(path, getattr(error, "problem", None) or str(error))
            continue
        problem = process_record_problem(record, pid)
        if problem:
            _warn_once(path, problem)
            continue
        records[pid] = record
    return records


# --------------------------------------------------------------------------- writing


def write_private_atomically(path: Path | str, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see the old or the new file, never a part.

    The temporary file is created exclusively (``O_EXCL | O_NOFOLLOW``), so a planted
    link at its name is refused rather than followed; the rename replaces a link at
    ``path`` itself, never its target.
    """
    path = Path(path)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(temporary, flags, 0o600)
    except FileExistsError:
        os.unlink(temporary)  # our own leftover (same pid and thread), or a planted entry
        fd = os.open(temporary, flags, 0o600)
    data = memoryview(text.encode("utf-8"))
    try:
        while data:
            data = data[os.write(fd, data):]
    finally:
        os.close(fd)
    try:
        os.replace(temporary, path)
    except IsADirectoryError:
        os.unlink(temporary)
        raise StateFileError(path, f"is a directory, not a record: {_FIX}") from None
