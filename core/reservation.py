"""Runtime 2.x core reservation: the cores a process holds, exclusive across processes.

A reserved NeuronCore belongs to one process until that process exits, however it exits
(seed 004: "Once a NeuronCore is reserved for a process, it cannot be used by another
process at all, until the process reserving that NeuronCore is terminated"). ncrt holds
each core with ``fcntl.flock`` on a lock file in a private state directory
(``core-007.lock`` for global core 7). The kernel drops a flock when the last descriptor
of its open file description closes, so a SIGKILLed holder frees its cores at once and no
cleanup step exists. Lock files are never unlinked (unlinking a locked file would let two
processes lock two different inodes of the "same" core).

After locking, a holder writes a small JSON record into the lock file (pid, command line,
topology fingerprint, time). The record is purely informative, used to name holders in
error messages and tools: whether a core is held is decided only by probing its lock, so
the stale record of a dead process reads as free.

Allocation is serialised between processes by an exclusive ``flock`` on ``alloc.lock``
(held only while acquiring); :func:`probe_holders` takes it shared, so that its brief
probing locks never make an allocation see a free core as busy.

``topology.json`` in the state directory names the topology fingerprint the current
holders use; a process with a different topology is refused while any core is held.

Fork safety: a forked child shares its parent's open file descriptions, and with them the
parent's locks. The child therefore *closes* (never unlocks) the descriptors of every live
reservation right after ``fork()``; in the child such a reservation has ``forked == True``,
``cores == ()`` and holds nothing, and the parent's cores are freed when the parent exits,
even while the child still runs.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import stat
import sys
import threading
import time
import weakref
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, NamedTuple

from .coreset import format_cores, runs
from .errors import CoresUnavailableError, StateDirError
from .statefiles import file_kind

if TYPE_CHECKING:
    from types import TracebackType

    from .topology import Topology

__all__ = [
    "Holder",
    "Reservation",
    "command_line",
    "cores_label",
    "default_state_dir",
    "ensure_state_dir",
    "held_cores",
    "lock_path",
    "probe_holders",
]

TOPOLOGY_FILE = "topology.json"
ALLOC_LOCK_FILE = "alloc.lock"
_COMMAND_LIMIT = 1000
_SHOWN_COMMAND_LIMIT = 240
_FIX_HINT = "set NCRT_STATE_DIR to a directory of your own (ncrt creates it with mode 0700)"
_PLANTED_HINT = f"remove it (ncrt recreates its lock files), or {_FIX_HINT}"
_CORE_LOCK = re.compile(r"core-([0-9]{1,6})\.lock")


class Holder(NamedTuple):
    """Who holds a core, from its lock-file record; ``pid`` 0 means the record is unreadable."""

    pid: int
    command: str


# Every reservation whose descriptors are open in this process, for the fork handler.
_LIVE: weakref.WeakSet[Reservation] = weakref.WeakSet()
# Held while descriptors are being opened (acquire, probe) and across fork(), so a
# child never inherits a half-made reservation or a probing lock.
_FORK_GUARD = threading.Lock()


# --------------------------------------------------------------------------- state dir


def default_state_dir() -> Path:
    """``$XDG_RUNTIME_DIR/ncrt`` when that is a directory, else ``/tmp/ncrt-<uid>``."""
    runtime_dir = os.environ.get("XDG_RUNTIME_DIR")
    if runtime_dir and os.path.isdir(runtime_dir):
        return Path(runtime_dir) / "ncrt"
    return Path("/tmp") / f"ncrt-{os.getuid()}"


def ensure_state_dir(path: Path | str) -> Path:
    """Create the state directory with mode 0700 if missing; refuse an unsafe one."""
    path = Path(path)
    if not os.path.lexists(path):
        try:
            path.mkdir(mode=0o700, parents=True)
            os.chmod(path, 0o700)  # whatever the umask
        except FileExistsError:
            pass
    _check_state_dir(path)
    return path


def _check_state_dir(path: Path) -> None:
    """Raise :class:`StateDirError` unless ``path`` is a private directory of ours."""
    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode):
        target = os.readlink(path)
        _refuse(path, f"is a symbolic link (to {target}); a link could redirect the core locks")
    if not stat.S_ISDIR(info.st_mode):
        _refuse(path, "exists and is not a directory")
    if info.st_uid != os.geteuid():
        _refuse(path, f"is owned by uid {info.st_uid}, not by this user (uid {os.geteuid()})")
    if info.st_mode & 0o022:
        mode = oct(stat.S_IMODE(info.st_mode))
        fix = f"run 'chmod 700 {path}' if it is yours alone, or {_FIX_HINT}"
        _refuse(path, f"is group- or world-writable (mode {mode})", fix)


def _refuse(path: Path, problem: str, fix: str = _FIX_HINT) -> None:
    """Raise the :class:`StateDirError` for an unsafe state directory or lock file."""
    raise StateDirError(f"ncrt state path {path} {problem}; ncrt refuses to use it: {fix}")


def lock_path(state_dir: Path, core: int) -> Path:
    """The lock file of global core ``core``: ``core-007.lock``."""
    return state_dir / f"core-{core:03d}.lock"


# --------------------------------------------------------------------------- lock files


def _open_private(path: Path, flags: int) -> int | None:
    """Open a state file without following links; None if missing; refuse foreign files."""
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, 0o600)
    except FileNotFoundError:
        return None
    except OSError as error:
        if error.errno == errno.ELOOP:
            _refuse(path, "is a symbolic link; ncrt never follows links in its state directory")
        if error.errno == errno.EISDIR:
            _refuse(path, "is a directory, not a lock file", _PLANTED_HINT)
        if error.errno in (errno.ENXIO, errno.EOPNOTSUPP):
            _refuse(path, "is a socket or device, not a lock file", _PLANTED_HINT)
        raise
    info = os.fstat(fd)
    if info.st_uid != os.geteuid():
        os.close(fd)
        _refuse(path, f"is owned by uid {info.st_uid}, not by this user (uid {os.geteuid()})")
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        _refuse(path, f"is {file_kind(info.st_mode)}, not a regular file", _PLANTED_HINT)
    return fd


def _try_lock(fd: int) -> bool:
    """Take an exclusive flock without waiting; False when another description holds it."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _read_holder(fd: int) -> Holder:
    """The record a holder wrote into its lock file (``Holder(0, "unknown")`` if unreadable)."""
    try:
        record = json.loads(os.pread(fd, 65536, 0).decode("utf-8"))
        return Holder(int(record["pid"]), str(record["command"]))
    except (OSError, ValueError, KeyError, TypeError, RecursionError):
        return Holder(0, "unknown")


def _probe(path: Path) -> Holder | None:
    """Whether a lock file is held right now, probed on a new open file description."""
    fd = _open_private(path, os.O_RDONLY)
    if fd is None:
        return None
    try:
        return None if _try_lock(fd) else _read_holder(fd)
    finally:
        os.close(fd)  # drops the probing lock, if we got it


def _survey(state_dir: Path, cores: range | tuple[int, ...]) -> dict[int, Holder | None]:
    """Probe each core's lock: its holder, or None when free."""
    return {core: _probe(lock_path(state_dir, core)) for core in cores}


def command_line() -> str:
    """This process's command line, joined by spaces (shortened when huge)."""
    try:
        raw = Path("/proc/self/cmdline").read_bytes()
        command = " ".join(part.decode(errors="replace") for part in raw.split(b"\0") if part)
    except OSError:
        command = " ".join([sys.executable, *sys.argv])
    return _shorten(command, _COMMAND_LIMIT)


def _write_record(fd: int, topology: Topology) -> None:
    """Replace a held lock file's content with who holds it (informative only)."""
    record = {
        "pid": os.getpid(),
        "command": command_line(),
        "topology": topology.fingerprint(),
        "time": time.time(),
    }
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(record).encode("utf-8"), 0)


def _close_all(fds: list[int]) -> None:
    """Close every descriptor in ``fds`` and empty the list (idempotent)."""
    while fds:
        try:
            os.close(fds.pop())
        except OSError:
            pass


@contextmanager
def _allocation_lock(state_dir: Path, *, shared: bool = False) -> Iterator[None]:
    """Serialise allocations between processes (exclusive) or wait for them (shared)."""
    flags = os.O_RDONLY if shared else os.O_RDWR | os.O_CREAT
    fd = _open_private(state_dir / ALLOC_LOCK_FILE, flags)
    try:
        if fd is not None:
            fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        yield
    finally:
        if fd is not None:
            os.close(fd)


# --------------------------------------------------------------------------- topology


def _read_fingerprint(state_dir: Path) -> str | None:
    """The topology fingerprint recorded in ``topology.json``, None if absent or unreadable."""
    fd = _open_private(state_dir / TOPOLOGY_FILE, os.O_RDONLY)
    if fd is None:
        return None
    try:
        return str(json.loads(os.pread(fd, 65536, 0).decode("utf-8"))["fingerprint"])
    except (OSError, ValueError, KeyError, TypeError, RecursionError):
        return None
    finally:
        os.close(fd)


def _write_fingerprint(state_dir: Path, fingerprint: str) -> None:
    """Record the topology the holders of this state directory use."""
    fd = _open_private(state_dir / TOPOLOGY_FILE, os.O_RDWR | os.O_CREAT)
    assert fd is not None  # O_CREAT
    try:
        os.ftruncate(fd, 0)
        record = {"fingerprint": fingerprint, "pid": os.getpid(), "time": time.time()}
        os.pwrite(fd, json.dumps(record).encode("utf-8"), 0)
    finally:
        os.close(fd)


def _live_holders(state_dir: Path) -> dict[int, Holder]:
    """Every core of any topology held right now in this state directory."""
    holders = {}
    for path in sorted(state_dir.glob("core-*.lock")):
        match = _CORE_LOCK.fullmatch(path.name)
        holder = _probe(path) if match else None
        if holder is not None:
            holders[int(match.group(1))] = holder
    return holders


def _check_topology(state_dir: Path, topology: Topology) -> None:
    """Refuse a topology other than the current holders'; record ours when nobody holds."""
    ours, recorded = topology.fingerprint(), _read_fingerprint(state_dir)
    if recorded == ours:
        return
    holders = _live_holders(state_dir) if recorded is not None else {}
    if holders:
        pids = ", ".join(sorted({str(holder.pid) for holder in holders.values()}))
        raise StateDirError(
            f"ncrt state directory {state_dir} is in use under topology {recorded!r} "
            f"(cores held by pid {pids}), but this process uses topology {ours!r}; processes "
            "sharing a state directory must agree on the cores of the host. Use the same "
            "NCRT_INSTANCE_TYPE, or give this process a separate state directory, e.g. "
            f"NCRT_STATE_DIR={state_dir}-{topology.name}"
        )
    _write_fingerprint(state_dir, ours)


# --------------------------------------------------------------------------- messages


def cores_label(cores: tuple[int, ...] | list[int], prefix: str = "nc") -> str:
    """``nc3-nc5``, ``nc1,nc4`` (or with ``prefix=""``: ``3-5``, ``1,4``); ``none`` when empty."""
    return format_cores(cores, prefix) or "none"


def _shorten(text: str, limit: int) -> str:
    """``text`` with its middle elided when longer than ``limit``."""
    if len(text) <= limit:
        return text
    half = (limit - 5) // 2
    return f"{text[:half]} ... {text[-half:]}"


def _describe_holders(holders: dict[int, Holder]) -> str:
    """``nc0-nc2 held by pid 123 (python app.py)``, one clause per holder."""
    by_holder: dict[Holder, list[int]] = {}
    for core, holder in sorted(holders.items()):
        by_holder.setdefault(holder, []).append(core)
    clauses = []
    for holder, cores in by_holder.items():
        command = _shorten(" ".join(holder.command.split()), _SHOWN_COMMAND_LIMIT)
        this = ", this process" if holder.pid == os.getpid() else ""
        clauses.append(f"{cores_label(cores)} held by pid {holder.pid} ({command}{this})")
    return "; ".join(clauses)


def _free_run(free: tuple[int, ...], count: int) -> tuple[int, int] | None:
    """The first free run of ``count`` cores (trimmed), else the first longest free run."""
    free_runs = runs(free)
    if not free_runs:
        return None
    for first, last in free_runs:
        if last - first + 1 >= count:
            return first, first + count - 1
    return max(free_runs, key=lambda run: run[1] - run[0])


def _advice(free: tuple[int, ...], count: int, holders: dict[int, Holder]) -> str:
    """What to set instead: a count and exact cores that are free, or whom to stop."""
    pids = sorted({holder.pid for holder in holders.values() if holder.pid > 0})
    stop = f"stop pid {', '.join(map(str, pids))}" if pids else ""
    run = _free_run(free, count)
    if run is None:
        return f"no NeuronCore is free: {stop or 'wait for the holders to exit'}"
    visible = str(run[0]) if run[0] == run[1] else f"{run[0]}-{run[1]}"
    advice = f"set NEURON_RT_NUM_CORES={min(count, len(free))} or NEURON_RT_VISIBLE_CORES={visible}"
    return f"{advice}, or {stop}" if stop else advice


def _unavailable(
    requested: tuple[int, ...] | int, survey: dict[int, Holder | None], note: str = ""
) -> CoresUnavailableError:
    """The runtime's "not available" error, plus holders, free cores and what to do."""
    free = tuple(core for core, holder in survey.items() if holder is None)
    busy = {core: holder for core, holder in survey.items() if holder is not None}
    if isinstance(requested, int):
        asked, count, blocking = f"{requested} NeuronCore(s)", requested, busy
    else:
        asked, count = cores_label(requested), len(requested)
        blocking = {core: busy[core] for core in requested if core in busy}
    parts = [f"NeuronCore(s) not available - Requested:{asked} Available:{len(free)}"]
    parts += [note] if note else []
    parts += [_describe_holders(blocking)] if blocking else []
    parts += [f"free: {cores_label(free)}", _advice(free, count, blocking)]
    error = CoresUnavailableError(". ".join(parts))
    error.requested, error.free, error.holders = requested, free, blocking
    return error


# --------------------------------------------------------------------------- choosing


def _pick(free: tuple[int, ...], num: int) -> tuple[int, ...] | None:
    """The lowest contiguous run of ``num`` free cores, else the lowest ``num`` free ones."""
    if len(free) < num:
        return None
    for first, last in runs(free):
        if last - first + 1 >= num:
            return tuple(range(first, first + num))
    return free[:num]


def _exact_cores(state_dir: Path, topology: Topology, visible: tuple[int, ...]) -> tuple[int, ...]:
    """The visible cores, sorted; refuse indices outside the topology."""
    if not visible:
        raise ValueError("visible names no NeuronCore; pass None to reserve all cores")
    wanted = tuple(sorted(set(visible)))
    missing = [core for core in wanted if not 0 <= core < len(topology)]
    if missing:
        note = (
            f"{cores_label(missing)} does not exist: {topology.name} has "
            f"{cores_label(tuple(range(len(topology))))}"
        )
        raise _unavailable(wanted, _survey(state_dir, range(len(topology))), note)
    return wanted


def _free_cores(state_dir: Path, topology: Topology, num: int) -> tuple[int, ...]:
    """``num`` free cores of the topology, chosen by :func:`_pick`."""
    survey = _survey(state_dir, range(len(topology)))
    free = tuple(core for core, holder in survey.items() if holder is None)
    chosen = _pick(free, num)
    if chosen is None:
        note = f"{topology.name} has only {len(topology)}" if num > len(topology) else ""
        raise _unavailable(num, survey, note)
    return chosen


def _choose(
    state_dir: Path, topology: Topology, visible: tuple[int, ...] | None, num: int
) -> tuple[int, ...]:
    """Which cores to lock: visible wins over num; neither means all cores."""
    if visible is not None:
        return _exact_cores(state_dir, topology, visible)
    if num < 0:
        raise ValueError(f"num={num} is not valid; accepted: 0 (all cores) or a positive count")
    if num > 0:
        return _free_cores(state_dir, topology, num)
    return tuple(range(len(topology)))


def _lock_cores(
    state_dir: Path, topology: Topology, cores: tuple[int, ...], fds: list[int]
) -> None:
    """Lock every core into ``fds``; on a busy one, close them all and raise."""
    for core in cores:
        fd = _open_private(lock_path(state_dir, core), os.O_RDWR | os.O_CREAT)
        assert fd is not None  # O_CREAT
        fds.append(fd)
        if not _try_lock(fd):
            _close_all(fds)
            raise _unavailable(cores, _survey(state_dir, range(len(topology))))
        _write_record(fd, topology)


# --------------------------------------------------------------------------- reservation


class Reservation:
    """The cores this process holds, by global index; held until released or exit.

    ``forked`` is True in a child created by ``fork()`` after the reservation was made:
    there the reservation holds nothing and ``cores`` is ``()``. ``held`` tells whether
    the locks are still open (False after :meth:`release` and in a forked child).
    Dropping the last reference releases the cores, like closing a file.
    """

    def __init__(
        self, cores: tuple[int, ...], state_dir: Path, topology: Topology, fds: list[int]
    ) -> None:
        self.cores = cores
        self.state_dir = state_dir
        self.topology = topology
        self.forked = False
        self._fds = fds
        weakref.finalize(self, _close_all, fds)
        _LIVE.add(self)

    @classmethod
    def acquire(
        cls,
        topology: Topology,
        *,
        visible: tuple[int, ...] | None = None,
        num: int = 0,
        state_dir: Path | None = None,
    ) -> Reservation:
        """Reserve ``visible`` cores exactly, else ``num`` free ones, else all cores."""
        directory = ensure_state_dir(state_dir if state_dir is not None else default_state_dir())
        fds: list[int] = []
        with _FORK_GUARD, _allocation_lock(directory):
            try:
                _check_topology(directory, topology)
                cores = _choose(directory, topology, visible, num)
                _lock_cores(directory, topology, cores, fds)
            except BaseException:
                _close_all(fds)
                raise
            return cls(cores, directory, topology, fds)

    @property
    def held(self) -> bool:
        """Whether this process still holds the cores."""
        return bool(self._fds)

    def release(self) -> None:
        """Give the cores back (closes the lock files; calling it again does nothing)."""
        _LIVE.discard(self)
        _close_all(self._fds)

    def _disown_after_fork(self) -> None:
        """In a forked child: close the inherited descriptors without unlocking them."""
        _close_all(self._fds)  # close, never LOCK_UN: the parent's lock must survive
        self.forked = True
        self.cores = ()

    def __enter__(self) -> Reservation:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()

    def __repr__(self) -> str:
        state = "forked" if self.forked else "held" if self.held else "released"
        return (
            f"Reservation(cores={cores_label(self.cores)}, "
            f"topology={self.topology.fingerprint()!r}, state_dir={str(self.state_dir)!r}, {state})"
        )


def probe_holders(topology: Topology, state_dir: Path | None = None) -> dict[int, Holder | None]:
    """For each core of the topology: who holds it right now, or None when it is free.

    Creates nothing: a missing state directory or lock file means free. Cores held by
    this very process read as held (by its own pid).
    """
    directory = Path(state_dir) if state_dir is not None else default_state_dir()
    if not os.path.lexists(directory):
        return {core: None for core in range(len(topology))}
    _check_state_dir(directory)
    with _FORK_GUARD, _allocation_lock(directory, shared=True):
        return _survey(directory, range(len(topology)))


def held_cores(state_dir: Path) -> dict[int, Holder]:
    """Every core held right now in ``state_dir``, whatever its topology: global index -> holder.

    Creates nothing; cores held by this very process are listed too (with its own pid).
    """
    directory = Path(state_dir)
    if not os.path.lexists(directory):
        return {}
    _check_state_dir(directory)
    with _FORK_GUARD, _allocation_lock(directory, shared=True):
        return _live_holders(directory)


def _after_fork_in_child() -> None:
    """Drop the parent's reservations in a forked child, then let it allocate again."""
    for reservation in list(_LIVE):
        reservation._disown_after_fork()
    _LIVE.clear()
    _FORK_GUARD.release()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        before=_FORK_GUARD.acquire,
        after_in_parent=_FORK_GUARD.release,
        after_in_child=_after_fork_in_child,
    )
