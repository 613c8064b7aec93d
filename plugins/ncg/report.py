"""The placement report: where every model of a process landed, written as JSON at exit.

Set ``NCRT_PLACEMENT_REPORT=FILE`` (or ``ncrt run --placement-report FILE``) and the
runtime writes, when it closes (at interpreter exit), every model loaded in the process
with its framework, its per-process and global cores, its replicas, the models it shared
cores with and the model switches counted on its cores. A model the application freed
before exit (unloaded from its cores, as ``nrt_unload`` does) is still reported, with
``"unloaded": true``: the report says where every model landed, not only the survivors. A ``{pid}`` in the path is replaced
by the process id, for applications that start several processes. ``ncrt migrate
check`` compares two such reports.
"""

from __future__ import annotations

import json
import os
import time
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

__all__ = ["REPORT_VARIABLE", "FORMAT", "build_report", "write_report", "read_report", "report_path"]

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


class _Loads:
    """Every model placed in the process (while a report is asked for), and who shared with whom."""

    def __init__(self) -> None:
        self.models: list[LoadedModel] = []
        self.shared: dict[str, list[str]] = {}

    def add(self, runtime: Runtime, loaded: LoadedModel) -> None:
        """Record ``loaded`` and the live models it shares cores with (both ways)."""
        uid = loaded.model.uid
        others = {other for core in loaded.cores for other in runtime.table.models_on(core)} - {uid}
        self.shared[uid] = []
        for other in self.models:
            if other.model.uid in others:
                self.shared[uid].append(other.name)
                self.shared.setdefault(other.model.uid, []).append(loaded.name)
        self.models.append(loaded)


_LOADS = StashKey[_Loads]()


def _loads(runtime: Runtime) -> _Loads:
    return runtime.stash.setdefault(_LOADS, _Loads())


def _reported_models(runtime: Runtime) -> list[LoadedModel]:
    """The models loaded since the report was asked for, and any others still placed."""
    recorded = _loads(runtime).models
    return recorded + [loaded for loaded in runtime.models if loaded not in recorded]


def _sharing(runtime: Runtime, loaded: LoadedModel) -> list[str]:
    """Names of the other models that shared any of ``loaded``'s cores with it, in load order."""
    recorded = _loads(runtime).shared.get(loaded.model.uid)
    if recorded is not None:
        return list(recorded)
    uids = {uid for core in loaded.cores for uid in runtime.table.models_on(core)} - {loaded.model.uid}
    return [other.name for other in runtime.models if other.model.uid in uids]


def _model_entry(runtime: Runtime, loaded: LoadedModel) -> dict[str, Any]:
    entry = loaded.describe()
    entry["unloaded"] = loaded.unloaded
    entry["replica_cores"] = [list(replica) for replica in loaded.placement.replicas]
    entry["shared_with"] = _sharing(runtime, loaded)
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
    return {
        "format": FORMAT,
        "pid": runtime.pid,
        "command": runtime.command,
        "time": time.time(),
        "topology": runtime.topology.fingerprint(),
        "settings": {name: os.environ[name] for name in _SETTINGS if os.environ.get(name, "").strip()},
        "reserved_cores": [core.global_index for core in runtime.cores],
        "ncg": _ncg_entry(runtime),
        "models": [_model_entry(runtime, loaded) for loaded in _reported_models(runtime)],
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
    """Remember every placed model while a report is asked for (freed ones are reported too)."""
    if report_path(loaded.runtime.config) is not None:
        _loads(loaded.runtime).add(loaded.runtime, loaded)


@hookimpl
def ncrt_runtime_stopping(runtime: Runtime) -> None:
    """Write the report when ``NCRT_PLACEMENT_REPORT`` is set."""
    path = report_path(runtime.config)
    if path is not None:
        write_report(runtime, path)
