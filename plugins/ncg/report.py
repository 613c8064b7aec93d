"""The placement report: where every model of a process landed, written as JSON at exit.

Set ``NCRT_PLACEMENT_REPORT=FILE`` (or ``ncrt run --placement-report FILE``) and the
runtime writes, when it closes (at interpreter exit), every loaded model with its
framework, its per-process and global cores, its replicas, the models it shares cores
with and the model switches counted on its cores. A ``{pid}`` in the path is replaced
by the process id, for applications that start several processes. ``ncrt migrate
check`` compares two such reports.

Models unloaded before exit (an application that lets its models go out of scope before
it ends unloads them, as Neuron does) are reported too, marked ``"unloaded": true``: the
report says where each model of the run was placed, not only which were still placed at
exit. Two models share cores when their cores meet while both were placed.
"""

from __future__ import annotations

import itertools
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ncrt.config import Variable, parse_path
from ncrt.hookspecs import hookimpl
from ncrt.records import write_atomically
from ncrt.stash import StashKey

from .shim import VARIABLE, active_layout

if TYPE_CHECKING:
    from ncrt.config import Config, VariableTable
    from ncrt.model import LoadedModel
    from ncrt.runtime import Runtime

__all__ = ["REPORT_VARIABLE", "FORMAT", "ModelHistory", "build_report", "write_report", "read_report", "report_path"]

REPORT_VARIABLE = "NCRT_PLACEMENT_REPORT"
FORMAT = "ncrt-placement-report/1"

_SETTINGS = (
    "NEURON_RT_VISIBLE_CORES",
    "NEURON_RT_NUM_CORES",
    "NEURONCORE_GROUP_SIZES",
    "NCRT_LEGACY_NCG",
    "NCRT_INSTANCE_TYPE",
)


def report_path(config: Config, pid: int | None = None) -> Path | None:
    """The report file named by ``NCRT_PLACEMENT_REPORT`` (``{pid}`` filled in), or ``None``."""
    text = config.setting(REPORT_VARIABLE)
    if not text:
        return None
    return Path(str(text).replace("{pid}", str(os.getpid() if pid is None else pid)))


@dataclass
class _Lifetime:
    """One placed model: when it was placed and unloaded, in the order of those events."""

    loaded: LoadedModel
    placed: int
    unloaded: int | None = None

    def overlaps(self, other: _Lifetime) -> bool:
        ends = (self.unloaded, other.unloaded)
        return ((ends[0] is None or ends[0] > other.placed) and
                (ends[1] is None or ends[1] > self.placed))


class ModelHistory:
    """Every model placed by a runtime, unloaded ones included, in load order."""

    def __init__(self) -> None:
        self.lifetimes: list[_Lifetime] = []
        self._events = itertools.count()

    def placed(self, loaded: LoadedModel) -> None:
        self.lifetimes.append(_Lifetime(loaded, next(self._events)))

    def unloaded(self, loaded: LoadedModel) -> None:
        for lifetime in self.lifetimes:
            if lifetime.loaded is loaded and lifetime.unloaded is None:
                lifetime.unloaded = next(self._events)

    def sharing(self, lifetime: _Lifetime) -> list[str]:
        """Names of the other models whose cores met ``lifetime``'s while both were placed."""
        cores = set(lifetime.loaded.cores)
        return [other.loaded.name for other in self.lifetimes
                if other is not lifetime and cores & set(other.loaded.cores) and other.overlaps(lifetime)]


_HISTORY = StashKey[ModelHistory]()


def _history(runtime: Runtime) -> ModelHistory:
    """The runtime's history; one made of the models placed now if none was kept."""
    history = runtime.stash.get(_HISTORY, None)
    if history is None:
        history = ModelHistory()
        for loaded in runtime.models:
            history.placed(loaded)
    return history


def _model_entry(runtime: Runtime, history: ModelHistory, lifetime: _Lifetime) -> dict[str, Any]:
    loaded = lifetime.loaded
    entry = loaded.describe()
    entry["unloaded"] = lifetime.unloaded is not None
    entry["replica_cores"] = [list(replica) for replica in loaded.placement.replicas]
    entry["shared_with"] = history.sharing(lifetime)
    entry["model_switches"] = sum(runtime.counters[core].model_switches for core in loaded.cores)
    entry["executions"] = {f"NC{core}": runtime.counters[core].executions for core in loaded.cores}
    return entry


def _ncg_entry(runtime: Runtime) -> dict[str, Any] | None:
    layout = active_layout(runtime.config)
    if layout is None:
        return None
    return {
        "group_sizes": runtime.config.setting(VARIABLE),
        "groups": [{"group": i, "start": start, "size": size} for i, (start, size) in enumerate(layout.groups)],
        "replicas": layout.replication,
    }


def build_report(runtime: Runtime) -> dict[str, Any]:
    """The report of ``runtime`` as a JSON-ready dict (see the module doc)."""
    runtime.unload_freed()
    history = _history(runtime)
    return {
        "format": FORMAT,
        "pid": runtime.pid,
        "command": runtime.command,
        "time": time.time(),
        "topology": runtime.topology.fingerprint(),
        "settings": {name: os.environ[name] for name in _SETTINGS if os.environ.get(name, "").strip()},
        "reserved_cores": [core.global_index for core in runtime.cores],
        "ncg": _ncg_entry(runtime),
        "models": [_model_entry(runtime, history, lifetime) for lifetime in history.lifetimes],
        "cores": runtime.describe()["cores"],
    }


def write_report(runtime: Runtime, path: Path) -> None:
    """Write the report of ``runtime`` to ``path`` atomically (its folder is created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, json.dumps(build_report(runtime), indent=2, sort_keys=True) + "\n")


def read_report(path: Path | str) -> dict[str, Any]:
    """A report written by :func:`write_report`; ValueError for anything else."""
    data = json.loads(Path(path).read_text())
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"{path} is not an ncrt placement report (expected format {FORMAT})")
    return data


@hookimpl
def ncrt_add_variables(variables: VariableTable) -> None:
    variables.add(Variable(
        REPORT_VARIABLE, "Write the placement of every model to this JSON file at exit ({pid}: the process id)",
        "a file path", "unset", parse_path,
    ))


@hookimpl
def ncrt_model_loaded(loaded: LoadedModel) -> None:
    """Keep the model in the history when a report will be written."""
    runtime = loaded.runtime
    if report_path(runtime.config) is not None:
        runtime.stash.setdefault(_HISTORY, ModelHistory()).placed(loaded)


@hookimpl
def ncrt_model_unloaded(loaded: LoadedModel) -> None:
    history = loaded.runtime.stash.get(_HISTORY, None)
    if history is not None:
        history.unloaded(loaded)


@hookimpl
def ncrt_runtime_stopping(runtime: Runtime) -> None:
    """Write the report when ``NCRT_PLACEMENT_REPORT`` is set."""
    path = report_path(runtime.config)
    if path is not None:
        write_report(runtime, path)
