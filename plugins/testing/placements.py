"""Placements as objects, and ``assert_same_placement``.

A process run under ncrt with ``NCRT_PLACEMENT_REPORT`` writes, at exit, where each of its
models landed (:mod:`ncrt.plugins.ncg.report`). :class:`ProcessPlacement` and
:class:`ModelPlacement` are that report as objects; :class:`NeuronRun` is a finished
process (exit status, output, the placement of every ncrt process it ran).
:func:`assert_same_placement` compares two of them model by model with ``ncrt migrate
check``'s comparison and fails with its side-by-side table. Nothing here needs pytest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from ncrt.config import format_core_set
from ncrt.errors import BadInputError

from ncrt.plugins.ncg import migrate

__all__ = ["ModelPlacement", "ProcessPlacement", "NeuronRun", "assert_same_placement"]

_VIEWS = {"process": "per-process cores", "global": "global cores"}
_OUTPUT_TAIL = 2000


def _ints(values: Sequence[Any]) -> tuple[int, ...]:
    return tuple(int(value) for value in values)


def _find(models: Sequence[ModelPlacement], name: str, where: str) -> ModelPlacement:
    """The one model called ``name``; KeyError naming what was loaded otherwise."""
    found = [model for model in models if model.name == name]
    if len(found) != 1:
        loaded = ", ".join(model.name for model in models) or "none"
        problem = "no model" if not found else f"{len(found)} models"
        raise KeyError(f"{where} has {problem} named {name!r} (loaded: {loaded}); "
                       "index .models for repeated names")
    return found[0]


@dataclass(frozen=True)
class ModelPlacement:
    """One loaded model: its cores (per process, from 0, and global), replicas and switches."""

    name: str
    framework: str
    cores: tuple[int, ...]
    global_cores: tuple[int, ...]
    cores_per_replica: int
    replicas: int
    replica_cores: tuple[tuple[int, ...], ...]
    label: str
    shared_with: tuple[str, ...]
    model_switches: int
    pid: int
    uid: str = ""
    executions: dict[str, int] = field(default_factory=dict, compare=False, hash=False)

    @classmethod
    def from_entry(cls, entry: Mapping[str, Any], pid: int) -> ModelPlacement:
        """A model entry of a placement report."""
        return cls(
            name=str(entry["name"]), framework=str(entry["framework"]), cores=_ints(entry["cores"]),
            global_cores=_ints(entry["global_cores"]), cores_per_replica=int(entry["cores_per_replica"]),
            replicas=int(entry["replicas"]), replica_cores=tuple(_ints(r) for r in entry.get("replica_cores", [])),
            label=str(entry["label"]), shared_with=tuple(entry.get("shared_with", [])),
            model_switches=int(entry.get("model_switches", 0)), pid=pid, uid=str(entry.get("uid", "")),
            executions={str(k): int(v) for k, v in entry.get("executions", {}).items()},
        )

    @property
    def global_label(self) -> str:
        """The global cores as ``NEURON_RT_VISIBLE_CORES`` writes them: ``4-5``."""
        return format_core_set(self.global_cores)


@dataclass(frozen=True)
class ProcessPlacement:
    """The placement report of one ncrt process."""

    pid: int
    command: str
    topology: str
    settings: dict[str, str] = field(compare=False, hash=False)
    reserved_cores: tuple[int, ...]
    ncg: dict[str, Any] | None = field(compare=False, hash=False)
    models: tuple[ModelPlacement, ...]
    report: dict[str, Any] = field(repr=False, compare=False, hash=False)

    @classmethod
    def from_report(cls, report: Mapping[str, Any]) -> ProcessPlacement:
        """A report as :func:`ncrt.plugins.ncg.report.read_report` returns it."""
        pid = int(report["pid"])
        return cls(
            pid=pid, command=str(report.get("command", "")), topology=str(report.get("topology", "")),
            settings=dict(report.get("settings", {})), reserved_cores=_ints(report.get("reserved_cores", [])),
            ncg=report.get("ncg"), models=tuple(ModelPlacement.from_entry(m, pid) for m in report.get("models", [])),
            report=dict(report),
        )

    def model(self, name: str) -> ModelPlacement:
        """The model called ``name``."""
        return _find(self.models, name, f"process {self.pid}")


@dataclass(frozen=True)
class NeuronRun:
    """A finished process started under ncrt: exit status, output, and what it placed.

    ``returncode`` follows :mod:`subprocess` (``-N`` when killed by signal N);
    ``exit_status`` is the shell's and ``ncrt run``'s (``128+N``). ``processes`` holds one
    :class:`ProcessPlacement` per ncrt runtime the command ran (the process itself first,
    then any it started); a process killed before it exited writes none.
    """

    command: tuple[str, ...]
    pid: int
    returncode: int
    stdout: str = field(repr=False)
    stderr: str = field(repr=False)
    processes: tuple[ProcessPlacement, ...]

    @property
    def exit_status(self) -> int:
        return 128 - self.returncode if self.returncode < 0 else self.returncode

    @property
    def models(self) -> tuple[ModelPlacement, ...]:
        """Every model of every process, the process itself first, in load order."""
        return tuple(model for process in self.processes for model in process.models)

    @property
    def placement(self) -> ProcessPlacement:
        """The placement of the process itself; AssertionError when it wrote none."""
        for process in self.processes:
            if process.pid == self.pid:
                return process
        raise AssertionError(f"{self.describe()} wrote no placement report (it never created a "
                             f"runtime, or was killed){self._tail()}")

    def model(self, name: str) -> ModelPlacement:
        """The model called ``name``, in any of the processes."""
        return _find(self.models, name, self.describe())

    def describe(self) -> str:
        return f"{' '.join(self.command)} (pid {self.pid})"

    def check(self) -> NeuronRun:
        """This run; AssertionError with its output when it did not exit with status 0."""
        __tracebackhide__ = True
        if self.returncode != 0:
            raise AssertionError(f"{self.describe()} exited with status {self.exit_status}{self._tail()}")
        return self

    def _tail(self) -> str:
        parts = [(name, text[-_OUTPUT_TAIL:]) for name, text in (("stdout", self.stdout), ("stderr", self.stderr))]
        return "".join(f"\n--- {name} ---\n{text.rstrip()}" for name, text in parts if text.strip())


_NO_REPORT: dict[str, Any] = {"format": "none", "models": [], "settings": {}}


def report_of(value: Any, side: str) -> Mapping[str, Any]:
    """The placement report behind a NeuronRun, a ProcessPlacement or a report dict."""
    __tracebackhide__ = True
    if isinstance(value, NeuronRun):
        value.check()
        if len(value.processes) > 1:
            raise BadInputError(
                f"the {side} run {value.describe()} ran {len(value.processes)} ncrt processes; compare "
                "them one by one: assert_same_placement(legacy.processes[i], migrated.processes[i])")
        return value.processes[0].report if value.processes else _NO_REPORT
    if isinstance(value, ProcessPlacement):
        return value.report
    if isinstance(value, Mapping) and "models" in value:
        return value
    raise BadInputError(f"cannot compare the {side} side {value!r:.80}; accepted: a NeuronRun (what "
                        "neuron_process returns), a ProcessPlacement, or a placement report dict")


def assert_same_placement(legacy: Any, migrated: Any, *, cores: str = "process") -> None:
    """Fail unless both sides place every model on the same cores, with the same replicas.

    Models are paired by name (by load order when names repeat), as ``ncrt migrate check``
    pairs them; ``cores="process"`` compares the cores each process indexes from 0,
    ``cores="global"`` the host's global cores. The failure message is ``ncrt migrate
    check``'s side-by-side table. A side whose run failed fails with that run's output.
    """
    __tracebackhide__ = True
    if cores not in _VIEWS:
        raise BadInputError(f"cores={cores!r} is not valid; accepted: {' or '.join(map(repr, _VIEWS))}")
    left, right = report_of(legacy, "legacy"), report_of(migrated, "migrated")
    rows = migrate.compare_reports(left, right, cores=cores)
    if rows and all(row["same"] for row in rows):
        return
    table = migrate.render_comparison(rows, left, right)
    raise AssertionError(f"the placements are not the same (comparing {_VIEWS[cores]}):\n{table}")
