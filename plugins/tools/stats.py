"""Per-process statistics: a publisher thread in every runtime, and a reader for the tools.

Every runtime re-publishes its record (``procs/<pid>.json`` in the state directory,
written by its one writer in :mod:`ncrt.records`) a few times a second; this plugin adds
per-core utilization, latency percentiles and the process tag (``ncrt_process_record``),
so ``ncrt top`` and ``ncrt monitor`` can watch other processes. The execute path is untouched: the publisher only reads the
counters the executors already keep.

Readers trust a record only while its pid still holds core locks
(:func:`ncrt.reservation.probe_holders`): the record of a killed process is read as dead.
"""

from __future__ import annotations

import argparse
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ncrt.config import Variable, parse_config
from ncrt.hookspecs import hookimpl
from ncrt.errors import NcrtError
from ncrt.records import publish, read_records
from ncrt.reservation import default_state_dir, probe_holders
from ncrt.stash import StashKey
from ncrt.topology import build_topology

if TYPE_CHECKING:
    from ncrt.config import VariableTable
    from ncrt.runtime import Runtime
    from ncrt.topology import Topology

__all__ = [
    "PERCENTILES",
    "PUBLISH_PERIOD",
    "ProcessStats",
    "add_survey_arguments",
    "StatsPublisher",
    "add_statistics",
    "percentiles",
    "probe_core_holders",
    "read_processes",
    "sample_host",
    "survey_target",
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


def add_statistics(record: dict[str, Any], runtime: Runtime, utilization: list[float] | None) -> None:
    """Tag, publishing period, per-core utilization and latency percentiles, added to ``record``."""
    record["tag"] = runtime.config.setting(TAG_VARIABLE) or ""
    record["stats_period"] = PUBLISH_PERIOD
    every: list[float] = []
    for entry, counters in zip(record["cores"], runtime.counters):
        samples = list(counters.latencies.copy())
        every.extend(samples)
        entry["latency"] = percentiles(samples)
        entry["utilization"] = utilization[entry["index"]] if utilization else 0.0
    record["latency"] = percentiles(every)


class StatsPublisher:
    """A daemon thread that has one runtime's record re-published every ``period`` seconds.

    The record itself is written by :mod:`ncrt.records` (its one writer); this plugin adds
    its figures through ``ncrt_process_record``, sampling utilization each time.
    """

    def __init__(self, runtime: Runtime, period: float = PUBLISH_PERIOD) -> None:
        self.runtime = runtime
        self.period = period
        self._window = _BusyWindow(len(runtime.cores))
        self._window_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="ncrt-stats", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and wait for it."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    def utilization(self) -> list[float]:
        """Each core's busy fraction over the last second, sampled now."""
        busy = [counters.busy_seconds for counters in self.runtime.counters]
        with self._window_lock:
            return self._window.update(time.monotonic(), busy)

    def _loop(self) -> None:
        while not self._stop.wait(self.period):
            try:
                publish(self.runtime)
            except (OSError, NcrtError):
                continue  # state directory briefly unavailable (or tampered with): try again next period


_PUBLISHER = StashKey[StatsPublisher]()


def publisher_of(runtime: Runtime) -> StatsPublisher | None:
    """The publisher started for ``runtime`` (None when the plugin is blocked)."""
    return runtime.stash.get(_PUBLISHER, None)


@hookimpl
def ncrt_add_variables(variables: VariableTable) -> None:
    variables.add(Variable(TAG_VARIABLE, "A tag that names this process in ncrt top and ncrt monitor",
                           "any text", "none", value=""))


@hookimpl
def ncrt_runtime_started(runtime: Runtime) -> None:
    publisher = runtime.stash.setdefault(_PUBLISHER, StatsPublisher(runtime))
    publisher.start()


@hookimpl
def ncrt_process_record(runtime: Runtime, record: dict[str, Any]) -> None:
    publisher = publisher_of(runtime)
    add_statistics(record, runtime, publisher.utilization() if publisher is not None else None)


@hookimpl
def ncrt_runtime_stopping(runtime: Runtime) -> None:
    publisher = publisher_of(runtime)
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
