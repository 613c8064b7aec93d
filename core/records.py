"""Per-process records in the state directory: which models a process placed where.

Each runtime writes ``procs/<pid>.json`` atomically (a temporary file renamed over the
old one), so a reader never sees a torn record. A record says nothing about liveness:
readers trust it only for a pid that still holds core locks (``probe_holders``), so a
killed process's leftover record is ignored. Registered as a built-in plugin.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .hookspecs import hookimpl
from .statefiles import private_dir, read_process_records, write_private_atomically

if TYPE_CHECKING:
    from .model import LoadedModel
    from .runtime import Runtime

__all__ = ["records_dir", "publish", "withdraw", "read_records"]


def records_dir(state_dir: Path) -> Path:
    """``<state dir>/procs``, created if missing; a planted link or file there is refused."""
    return private_dir(Path(state_dir) / "procs")


def _record_path(state_dir: Path, pid: int) -> Path:
    return records_dir(state_dir) / f"{pid}.json"


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see the old or the new file, never a part."""
    write_private_atomically(path, text)


def publish(runtime: Runtime) -> None:
    """Write this runtime's record (cores, models, counters)."""
    record = runtime.describe()
    record["command"] = runtime.reservation_command()
    record["time"] = time.time()
    write_atomically(_record_path(runtime.state_dir, runtime.pid), json.dumps(record))


def withdraw(runtime: Runtime) -> None:
    try:
        _record_path(runtime.state_dir, runtime.pid).unlink()
    except FileNotFoundError:
        pass


def read_records(state_dir: Path) -> dict[int, dict[str, Any]]:
    """Every sound record by pid (alive or not: check against the core locks).

    Hardened (:func:`ncrt.statefiles.read_process_records`): a bad record is skipped with
    one warning naming it; a planted ``procs`` link is refused.
    """
    return read_process_records(Path(state_dir) / "procs")


@hookimpl
def ncrt_runtime_started(runtime: Runtime) -> None:
    publish(runtime)


@hookimpl
def ncrt_model_loaded(loaded: LoadedModel) -> None:
    publish(loaded.runtime)


@hookimpl
def ncrt_runtime_stopping(runtime: Runtime) -> None:
    withdraw(runtime)
