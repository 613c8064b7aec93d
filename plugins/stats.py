"""Per-process statistics: a publisher thread in every runtime, and a reader for the tools.

Every runtime re-publishes its record (``procs/<pid>.json`` in the state directory, see
:mod:`ncrt.records`) a few times a second, enriched with per-core utilization and
latency percentiles, so ``ncrt top`` and ``ncrt monitor`` can watch other processes.
Writes are atomic (a temporary file renamed over the old one); the record is withdrawn
when the runtime closes. The execute path is untouched: the publisher only reads the
counters the executors already keep.

Readers trust a record only while its pid still holds core locks
(:func:`ncrt.reservation.probe_holders`): the record of a killed process is read as dead.
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ncrt.hookspecs import hookimpl
from ncrt.errors import NcrtError
from ncrt.records import read_records, records_dir
from ncrt.statefiles import write_private_atomically

if TYPE_CHECKING:
    from ncrt.model import LoadedModel
    from ncrt.runtime import Runtime
    from ncrt.topology import Topology

__all__ = [
    "PERCENTILES",
    "PUBLISH_PERIOD",
    "ProcessStats",
    "add_survey_arguments",
    "StatsPublisher",
    "build_record",
    "percentiles",
    "probe_core_holders",
    "read_processes",
    "sample_host",
    "survey_target",
    "write_atomically",
]

PUBLISH_PERIOD = 0.25
UTILIZATION_WINDOW = 1.0
PERCENTILES = (0, 1, 25, 50, 75, 99, 100)
TAG_VARIABLE = "NEURON_PROCESS_TAG"


def percentiles(samples: list[float]) -> dict[str, float] | None:
    """``{"p0": ..., "p50": ..., "p100": ...}`` in seconds (nearest rank), None when empty."""
    if not samples:
        return None
    ordered = sorted(samples)
    last = len(ordered) - 1
    return {f"p{p}": ordered[min(last, round(p / 100 * last))] for p in PERCENTILES}


class _BusyWindow:
    """Utilization of each core over the last second, from busy-time samples."""

    def __init__(self, core_count: int) -> None:
        self._samples: deque[tuple[float, list[float]]] = deque()
        self._core_count = core_count

    def update(self, now: float, busy: list[float]) -> list[float]:
        self._samples.append((now, busy))
        while len(self._samples) > 2 and now - self._samples[1][0] >= UTILIZATION_WINDOW:
            self._samples.popleft()
        then, before = self._samples[0]
        elapsed = now - then
        if elapsed <= 0:
            return [0.0] * self._core_count
        return [min(1.0, max(0.0, (b - a) / elapsed)) for a, b in zip(before, busy)]


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file of this thread and rename it over ``path``.

    The temporary name carries the thread id as well as the pid, so a write racing with
    ``ncrt.records.publish`` in another thread never shares its temporary file.
    """
    write_private_atomically(path, text)


def build_record(runtime: Runtime, utilization: list[float] | None = None) -> dict[str, Any]:
    """The runtime's record: ``describe()`` plus command, tag, time, utilization, latencies."""
    record = runtime.describe()
    record["command"] = runtime.reservation_command()
    record["tag"] = os.environ.get(TAG_VARIABLE, "")
    record["time"] = time.time()
    record["stats_period"] = PUBLISH_PERIOD
    every: list[float] = []
    for entry, counters in zip(record["cores"], runtime.counters):
        samples = list(counters.latencies.copy())
        every.extend(samples)
        entry["latency"] = percentiles(samples)
        entry["utilization"] = utilization[entry["index"]] if utilization else 0.0
    record["latency"] = percentiles(every)
    return record


class StatsPublisher:
    """A daemon thread that re-publishes one runtime's record every ``period`` seconds."""

    def __init__(self, runtime: Runtime, period: float = PUBLISH_PERIOD) -> None:
        self.runtime = runtime
        self.period = period
        self.path = records_dir(runtime.state_dir) / f"{runtime.pid}.json"
        self._window = _BusyWindow(len(runtime.cores))
        self._utilization: list[float] | None = None
        self._stop = threading.Event()
        self._write_lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name="ncrt-stats", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and wait for it, so nothing is written after the withdrawal."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    def publish(self) -> None:
        """Sample the counters and write the record now (atomically)."""
        with self._write_lock:
            if self._stop.is_set() or self.runtime.closed:
                return
            busy = [counters.busy_seconds for counters in self.runtime.counters]
            self._utilization = self._window.update(time.monotonic(), busy)
            write_atomically(self.path, json.dumps(build_record(self.runtime, self._utilization)))

    def _loop(self) -> None:
        while not self._stop.wait(self.period):
            try:
                self.publish()
            except (OSError, NcrtError):
                continue  # state directory briefly unavailable (or tampered with): try again next period


_publishers: dict[int, StatsPublisher] = {}


def publisher_of(runtime: Runtime) -> StatsPublisher | None:
    """The publisher started for ``runtime`` (None when the plugin is blocked)."""
    return _publishers.get(id(runtime))


@hookimpl
def ncrt_runtime_started(runtime: Runtime) -> None:
    publisher = StatsPublisher(runtime)
    _publishers[id(runtime)] = publisher
    publisher.start()


@hookimpl(trylast=True)
def ncrt_model_loaded(loaded: LoadedModel) -> None:
    """Re-publish at once after ``ncrt.records`` wrote its plain record, keeping the stats."""
    publisher = publisher_of(loaded.runtime)
    if publisher is not None:
        publisher.publish()


@hookimpl(tryfirst=True)
def ncrt_runtime_stopping(runtime: Runtime) -> None:
    """Stop publishing before ``ncrt.records`` withdraws the record."""
    publisher = _publishers.pop(id(runtime), None)
    if publisher is not None:
        publisher.stop()


# --------------------------------------------------------------------------- readers


@dataclass
class ProcessStats:
    """One process's published record, and whether the process is still alive."""

    pid: int
    alive: bool
    record: dict[str, Any] = field(default_factory=dict)

    @property
    def command(self) -> str:
        return " ".join(str(self.record.get("command", "")).split())

    @property
    def tag(self) -> str:
        return str(self.record.get("tag", ""))

    @property
    def cores(self) -> list[dict[str, Any]]:
        return list(self.record.get("cores", []))

    @property
    def models(self) -> list[dict[str, Any]]:
        return list(self.record.get("models", []))

    @property
    def time(self) -> float:
        return float(self.record.get("time", 0.0))

    def total(self, counter: str) -> float:
        """A counter summed over this process's cores (``executions``, ``errors``...)."""
        return sum(core.get(counter, 0) for core in self.cores)


def probe_core_holders(topology: Topology, state_dir: Path | str) -> dict[int, int]:
    """Global core index -> pid of the process holding its lock right now (held cores only)."""
    from ncrt.reservation import probe_holders

    holders = probe_holders(topology, Path(state_dir))
    return {core: holder.pid for core, holder in holders.items() if holder is not None}


def read_processes(state_dir: Path | str, topology: Topology, include_dead: bool = False,
                   holders: dict[int, int] | None = None) -> list[ProcessStats]:
    """Every published process, by pid; dead ones (holding no core lock) only on request.

    ``holders`` (from :func:`probe_core_holders`) saves a second probe of the locks.
    """
    state_dir = Path(state_dir)
    alive = set((holders if holders is not None else probe_core_holders(topology, state_dir)).values())
    found = [ProcessStats(pid, pid in alive, record) for pid, record in sorted(read_records(state_dir).items())]
    return [process for process in found if process.alive or include_dead]


def add_survey_arguments(parser: argparse.ArgumentParser) -> None:
    """``--instance-type`` and ``--state-dir``, as ``ncrt ls`` takes them."""
    parser.add_argument("--instance-type", help="topology preset (default: NCRT_INSTANCE_TYPE or the host)")
    parser.add_argument("--state-dir", help="state directory (default: NCRT_STATE_DIR or the per-user one)")


def survey_target(args: argparse.Namespace) -> tuple[Topology, Path]:
    """The topology and state directory the tools watch, from the arguments or the env."""
    from ncrt.config import parse_config
    from ncrt.reservation import default_state_dir
    from ncrt.topology import build_topology

    config = parse_config()
    topology = build_topology(getattr(args, "instance_type", None) or config.instance_type)
    return topology, Path(getattr(args, "state_dir", None) or config.state_dir or default_state_dir())


def sample_host(interval: float | None = None) -> dict[str, Any]:
    """Host vCPU and memory usage (psutil): percent busy, per-type percents, bytes."""
    import psutil

    times = psutil.cpu_times_percent(interval=interval)
    memory = psutil.virtual_memory()
    swap = psutil.swap_memory()
    return {
        "vcpu_count": psutil.cpu_count() or 1,
        "vcpu_percent": round(100.0 - times.idle, 2),
        "vcpu_times": {name: round(getattr(times, name, 0.0), 2) for name in
                       ("user", "nice", "system", "idle", "iowait", "irq", "softirq")},
        "memory_total_bytes": memory.total,
        "memory_used_bytes": memory.total - memory.available,
        "swap_total_bytes": swap.total,
        "swap_used_bytes": swap.used,
    }
