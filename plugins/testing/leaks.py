"""What a test left behind: models still referenced and cores still reserved when it ended.

A model is held when something outside the test still references it once the test and
its function-scoped fixtures are gone: a global, a cache, a fixture of wider scope, a
thread. :func:`release_runtime` closes the process's runtime, drops the runtime's own
references and sees which models survive garbage collection. A reservation is held when
a core lock in the test's state directory is still taken once that runtime is closed:
by a process the test started and did not wait for, or by a ``Runtime``/``Reservation``
the test opened itself (:func:`held_cores`).
"""

from __future__ import annotations

import gc
import itertools
import os
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ncrt.config import format_core_set
from ncrt.reservation import held_cores as probe_state_dir
from ncrt.runtime import current_runtime, reset_runtime

if TYPE_CHECKING:
    from ncrt.model import LoadedModel

__all__ = ["HeldModel", "HeldCores", "release_runtime", "held_cores", "describe_leaks"]

_COLLECT_PATIENCE = 1.0  # seconds for the executor threads of a closed runtime to finish
_COLLECT_TRIES = 3
_COLLECT_PAUSE = 0.02


@dataclass(frozen=True)
class HeldModel:
    """A model still referenced after its test ended."""

    name: str
    framework: str
    label: str
    global_cores: tuple[int, ...]

    @classmethod
    def of(cls, loaded: LoadedModel) -> HeldModel:
        described = loaded.describe()
        return cls(loaded.name, loaded.model.framework, loaded.placement.label, tuple(described["global_cores"]))

    def describe(self) -> str:
        return (f"model {self.name!r} [{self.framework}] on {self.label} (global {format_core_set(self.global_cores)}) "
                "is still referenced after the test (a global, a cache, a fixture of wider scope or a thread): "
                "drop the reference, or call its unload()")


@dataclass(frozen=True)
class HeldCores:
    """Cores of the test's state directory still reserved by one process."""

    pid: int
    command: str
    cores: tuple[int, ...]

    def describe(self) -> str:
        where = f"global cores {format_core_set(self.cores)}"
        if self.pid == os.getpid():
            return (f"{where} are still reserved by this test process (pid {self.pid}): a Runtime or "
                    "Reservation the test opened is still open; close() or release() it")
        return (f"{where} are still reserved by pid {self.pid} ({' '.join(self.command.split())[:120]}): "
                "a process the test started is still running; wait for it or stop it")


def _survivors(watched: list[tuple[weakref.ref, HeldModel]]) -> list[HeldModel]:
    """The watched models still alive after collection.

    The executor threads of the closed runtime drop their last job (and its model) once they
    run again, which a long ``gc.collect()`` holding the GIL can delay: collection is tried
    at least :data:`_COLLECT_TRIES` times, with pauses, for up to :data:`_COLLECT_PATIENCE` s.
    """
    deadline = time.monotonic() + _COLLECT_PATIENCE
    for attempt in itertools.count(1):
        time.sleep(_COLLECT_PAUSE)
        gc.collect()
        alive = [model for reference, model in watched if reference() is not None]
        if not alive or (attempt >= _COLLECT_TRIES and time.monotonic() >= deadline):
            return alive
    raise AssertionError("unreachable")


def release_runtime(watch_models: bool = True) -> list[HeldModel]:
    """Close the process's runtime; with ``watch_models``, the models still referenced."""
    runtime = current_runtime()
    if runtime is None:
        return []
    live = [loaded for loaded in runtime.models if not loaded.unloaded] if watch_models else []
    watched = [(weakref.ref(loaded), HeldModel.of(loaded)) for loaded in live]
    del live
    reset_runtime()  # a closed runtime holds no model: survivors are the test's references
    del runtime
    return _survivors(watched) if watched else []


def _parent_of(pid: int) -> int | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(text.rpartition(")")[2].split()[1])


def _is_ours(pid: int) -> bool:
    """Whether ``pid`` is this process or one of its descendants (Linux ``/proc``)."""
    me, seen = os.getpid(), 0
    while pid and pid > 1 and seen < 64:
        if pid == me:
            return True
        pid, seen = _parent_of(pid) or 0, seen + 1
    return False


def held_cores(state_dir: Path, only_ours: bool = False) -> list[HeldCores]:
    """Cores still reserved in ``state_dir``, by process; ``only_ours``: this process and its children."""
    by_pid: dict[int, tuple[str, list[int]]] = {}
    for core, holder in sorted(probe_state_dir(state_dir).items()):
        if only_ours and not _is_ours(holder.pid):
            continue
        by_pid.setdefault(holder.pid, (holder.command, []))[1].append(core)
    return [HeldCores(pid, command, tuple(cores)) for pid, (command, cores) in by_pid.items()]


def describe_leaks(test: str, models: list[HeldModel], cores: list[HeldCores], state_dir: Path) -> str:
    """The message of the error that fails a test which left models or cores held."""
    lines = [f"{test} ended with NeuronCores or models still held (state directory {state_dir}):"]
    lines += [f"  - {leak.describe()}" for leak in [*models, *cores]]
    return "\n".join(lines)
