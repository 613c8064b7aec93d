"""Per-process records in the state directory: which models a process placed where.

Each runtime has one writer of ``procs/<pid>.json`` (:class:`ProcessRecord`, kept in the
runtime's stash): it builds the record from ``runtime.describe()``, lets every plugin add
its fields (``ncrt_process_record``: the stats plugin adds utilization and latencies),
and writes it atomically (a temporary file renamed over the old one), so a reader never
sees a torn record. Once withdrawn, nothing writes it again, whichever thread asks. A
record says nothing about liveness: readers trust it only for a pid that still holds
core locks (``probe_holders``), so a killed process's leftover record is ignored.
Registered as a built-in plugin.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .hookspecs import hookimpl
from .stash import StashKey
from .statefiles import private_dir, read_process_records, write_private_atomically

if TYPE_CHECKING:
    from .model import LoadedModel
    from .runtime import Runtime

__all__ = ["ProcessRecord", "build_record", "publish", "read_records", "records_dir", "write_atomically"]


def records_dir(state_dir: Path) -> Path:
    """``<state dir>/procs``, created if missing; a planted link or file there is refused."""
    return private_dir(Path(state_dir) / "procs")


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see the old or the new file, never a part."""
    write_private_atomically(path, text)


def build_record(runtime: Runtime) -> dict[str, Any]:
    """The runtime's record: ``describe()``, command, time, and what the plugins add."""
    record = runtime.describe()
    record["command"] = runtime.command
    record["time"] = time.time()
    runtime.pm.hook.ncrt_process_record(runtime=runtime, record=record)
    return record


class ProcessRecord:
    """The one writer of a runtime's ``procs/<pid>.json``."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.path = records_dir(runtime.state_dir) / f"{runtime.pid}.json"
        # re-entrant: building a record unloads models queued by the garbage collector,
        # and each unload publishes (the inner write is then overwritten by this one)
        self._lock = threading.RLock()
        self._withdrawn = False

    def publish(self) -> None:
        """Write the record now, unless it was withdrawn."""
        with self._lock:
            if self._withdrawn or self.runtime.closed:
                return
            write_atomically(self.path, json.dumps(build_record(self.runtime)))

    def withdraw(self) -> None:
        """Delete the record; later publishes write nothing."""
        with self._lock:
            self._withdrawn = True
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass


_WRITER = StashKey["ProcessRecord"]()


def publish(runtime: Runtime) -> None:
    """Write ``runtime``'s record now (nothing when the records plugin is blocked)."""
    writer = runtime.stash.get(_WRITER, None)
    if writer is not None:
        writer.publish()


def read_records(state_dir: Path) -> dict[int, dict[str, Any]]:
    """Every sound record by pid (alive or not: check against the core locks).

    Hardened (:func:`ncrt.statefiles.read_process_records`): a bad record is skipped with
    one warning naming it; a planted ``procs`` link is refused.
    """
    return read_process_records(Path(state_dir) / "procs")


@hookimpl
def ncrt_runtime_started(runtime: Runtime) -> None:
    writer = runtime.stash.setdefault(_WRITER, ProcessRecord(runtime))
    writer.publish()


@hookimpl
def ncrt_model_loaded(loaded: LoadedModel) -> None:
    publish(loaded.runtime)


@hookimpl
def ncrt_model_unloaded(loaded: LoadedModel) -> None:
    publish(loaded.runtime)


@hookimpl
def ncrt_runtime_stopping(runtime: Runtime) -> None:
    writer = runtime.stash.get(_WRITER, None)
    if writer is not None:
        writer.withdraw()
