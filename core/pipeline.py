"""NeuronCore Pipeline: a model cut into stages, one per core, with requests streaming through.

Seed 003: "With NeuronCore Pipeline mode, Neuron stores the model parameters onto the
Inferentias' local caches, and streams the inference requests across the available
NeuronCores, as specified by the --neuroncore-pipeline-cores compiler argument." Here:

- **partitioning** (compile time, in each framework plugin): the model's graph is cut into
  ``N`` stages balanced by cost. :func:`balanced_stages` is the framework-neutral part: it
  cuts a sequence of units (graph operations in topological order) with known costs, at
  the places where the graph can be cut, so that the slowest stage is as fast as possible.
  :func:`partition_record` is what the manifest stores (``Manifest.partition``), and
  :func:`warn_fewer_stages` the one warning a model gets when it cannot be cut into ``N``.
- **streaming** (run time, here): a plugin hands the stages over with the model
  (``Model(..., stages=[StageSpec(payload, runner), ...])``). Each replica of a placed
  pipelined model gets a :class:`StagePipeline`: stage ``k`` lives on the replica's core
  ``k`` (its own per-core state, so its weights are resident there once) and runs as an
  ordinary job of that core's executor, on that core's CPUs. Stages are joined by bounded
  queues (:data:`STAGE_DEPTH` requests per stage), so request ``k+1`` runs in stage 0 while
  request ``k`` runs in stage 1. Nothing blocks a core's worker thread: a request that
  finds the next stage full waits in the pipeline, not in a thread. A synchronous call
  runs each stage whose core is idle in the calling thread, holding that core (as the
  runtime runs any synchronous call, like ``nrt_execute``); the others are queued.

A pipelined call is admitted like any other (``NEURON_MAX_NUM_INFERS``,
``NEURON_RT_ASYNC_EXEC_MAX_INFLIGHT_REQUESTS``), shares cores with other models like any
job (model switches are counted on each stage's core), and ``NEURON_RT_EXEC_TIMEOUT``
applies to each stage's execution: the stage's core is reset and only that request
fails. An error in a stage fails only its request.
"""

from __future__ import annotations

import collections
import dataclasses
import threading
import time
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Sequence

from .errors import ExecTimeoutError, ExecutionError
from .executor import ExecutionFuture, Job
from .placement import _caller_stacklevel

if TYPE_CHECKING:
    from .model import Model, Runner
    from .runtime import LocalCore, Runtime

__all__ = [
    "STAGE_DEPTH",
    "PipelineStagesWarning",
    "StageCounters",
    "StagePipeline",
    "StageSpec",
    "balanced_stages",
    "build_pipelines",
    "partition_record",
    "warn_fewer_stages",
]

STAGE_DEPTH = 2
"""Requests one stage holds at once: queued on its core, running, or done and waiting for the
next stage. Two (one running, one ready behind it) keep every stage busy."""


class PipelineStagesWarning(UserWarning):
    """A model compiled for N pipeline cores could be cut into fewer than N stages."""


# --------------------------------------------------------------------------- partitioning


def _stage_costs(prefix: list[float], bounds: list[int]) -> list[float]:
    return [prefix[end] - prefix[start] for start, end in zip(bounds, bounds[1:])]


def balanced_stages(costs: Sequence[float], stages: int,
                    cut_points: Sequence[int] | None = None) -> list[tuple[int, int]]:
    """Cut units ``0..len(costs)-1`` into at most ``stages`` runs, minimising the largest run's cost.

    ``cut_points``: where a cut may go (``p`` cuts between unit ``p-1`` and unit ``p``);
    ``None`` allows every place. Returns ``[(start, end), ...]`` (end exclusive), as many
    runs as ``stages`` when there are enough units and cut points, fewer otherwise. Among
    equally slow partitions the one with the smallest sum of squared stage costs wins (the
    other stages as even as possible). Exact dynamic programming over the cut points.
    """
    count = len(costs)
    if count == 0:
        return []
    allowed = sorted({p for p in (range(1, count) if cut_points is None else cut_points) if 0 < p < count})
    points = [0, *allowed, count]
    stages = max(1, min(stages, len(points) - 1))
    prefix = [0.0]
    for cost in costs:
        prefix.append(prefix[-1] + max(0.0, float(cost)))
    return _best_cuts(prefix, points, stages)


def _best_cuts(prefix: list[float], points: list[int], stages: int) -> list[tuple[int, int]]:
    """``best[s][j]``: the best (max, sum of squares) for points[0..j] in ``s`` stages."""
    infinity = (float("inf"), float("inf"))
    size = len(points)
    best = [[infinity] * size for _ in range(stages + 1)]
    choice = [[0] * size for _ in range(stages + 1)]
    best[0][0] = (0.0, 0.0)
    for stage in range(1, stages + 1):
        for end in range(stage, size):
            for start in range(stage - 1, end):
                before = best[stage - 1][start]
                if before == infinity:
                    continue
                cost = prefix[points[end]] - prefix[points[start]]
                candidate = (max(before[0], cost), before[1] + cost * cost)
                if candidate < best[stage][end]:
                    best[stage][end], choice[stage][end] = candidate, start
    bounds, end = [], size - 1
    for stage in range(stages, 0, -1):
        start = choice[stage][end]
        bounds.append((points[start], points[end]))
        end = start
    return bounds[::-1]


def partition_record(requested: int, stages: list[dict[str, Any]], cost_basis: str, note: str = "") -> dict[str, Any]:
    """What ``Manifest.partition`` holds: the cores asked for, one entry per stage, how cost was measured.

    Each stage entry has at least ``index``, ``first`` and ``last`` (the first and last
    unit of the stage), ``units``, ``cost`` and ``param_bytes``. ``note`` says why there
    are fewer stages than ``requested`` (empty when there are as many).
    """
    return {"requested": requested, "stages": stages, "cost_basis": cost_basis, "note": note}


def warn_fewer_stages(model: str, requested: int, stages: int, reason: str) -> str:
    """Warn once that ``model`` runs as ``stages`` stages instead of ``requested``; return the note."""
    runs = (f"whole on its {requested}-core group, one request at a time" if stages == 1
            else f"as {stages} stages on its {requested}-core group, the last stage holding the "
                 f"{requested - stages + 1} cores left")
    note = (f"model {model!r} was compiled with --neuroncore-pipeline-cores={requested} but cannot be cut into "
            f"{requested} stages: {reason}; it runs {runs}")
    warnings.warn(note, PipelineStagesWarning, stacklevel=_caller_stacklevel())
    return note


# --------------------------------------------------------------------------- stages at run time


@dataclass(frozen=True)
class StageSpec:
    """One stage of a pipelined model, as its plugin hands it over with the model.

    ``runner(stage_model, inputs, core)`` runs the stage like a model's runner: stage 0
    gets the call's inputs, stage ``k+1`` what stage ``k`` returned, and the last stage's
    return value is the call's output. ``stage_model.payload`` is ``payload``, and
    ``stage_model.replica_for(core.index, make)`` keeps per-core state (the stage's
    weights on its core). ``label`` names the stage in tools (``"conv1..relu3"``).
    """

    payload: Any
    runner: Runner
    label: str = ""


class StageCounters:
    """What one stage of one replica has done (read by ``ncrt ls``, ``top``, ``monitor``)."""

    __slots__ = ("executions", "errors", "busy_seconds")

    def __init__(self) -> None:
        self.executions = 0
        self.errors = 0
        self.busy_seconds = 0.0

    def snapshot(self) -> dict[str, Any]:
        return {"executions": self.executions, "errors": self.errors, "busy_seconds": round(self.busy_seconds, 6)}


class _Stage:
    """Stage ``index`` of one replica: its cores (one; the last stage holds any left over), its
    stage model (runner = the pipeline's), counters."""

    __slots__ = ("index", "cores", "spec", "model", "counters")

    def __init__(self, index: int, cores: tuple[LocalCore, ...], spec: StageSpec, model: Model) -> None:
        self.index, self.cores, self.spec, self.model = index, cores, spec, model
        self.counters = StageCounters()

    @property
    def core(self) -> LocalCore:
        """The core whose executor runs the stage."""
        return self.cores[0]


class _Request:
    """One submitted job: its calls stream through the stages; the future gets them all back."""

    __slots__ = ("future", "outputs", "remaining", "single", "failed", "running", "caller")

    def __init__(self, future: ExecutionFuture, calls: int, single: bool, caller: int | None) -> None:
        self.future = future
        self.outputs: list[Any] = [None] * calls
        self.remaining = calls
        self.single = single
        self.failed = False
        self.running: dict[_Item, float] = {}
        self.caller = caller  # the thread that may run this request's stages inline


QUEUED, RUNNING, DONE, FAILED, SKIPPED, ABANDONED = range(6)


class _Item:
    """One call of a request on its way through the stages."""

    __slots__ = ("request", "position", "value", "stage", "job", "state", "error")

    def __init__(self, request: _Request, position: int, value: Any) -> None:
        self.request, self.position, self.value = request, position, value
        self.stage = 0
        self.job: Job | None = None
        self.state = QUEUED
        self.error: BaseException | None = None


def _complete(future: ExecutionFuture, value: Any = None, error: BaseException | None = None) -> None:
    """Finish a request's future (as a core's executor finishes a job's)."""
    future._finish(value, error)


class StagePipeline:
    """One replica of a pipelined model: stage ``k`` on core ``k``, bounded queues between stages.

    ``occupancy[k]`` counts the items stage ``k`` holds (queued on its core, running, or
    finished and waiting in ``waiting[k + 1]``); an item enters stage ``k`` only while
    ``occupancy[k] < depth``, so a slow stage holds back the stages before it instead of
    letting work pile up. All bookkeeping happens under one lock; the stage jobs are
    ordinary jobs of each core's executor.
    """

    def __init__(self, runtime: Runtime, model: Model, cores: Sequence[LocalCore], specs: Sequence[StageSpec],
                 depth: int = STAGE_DEPTH) -> None:
        self.runtime = runtime
        self.model = model
        self.depth = max(1, depth)
        last = len(specs) - 1
        held = [tuple(cores[k : k + 1]) if k < last else tuple(cores[last:]) for k in range(len(specs))]
        self.stages = [_Stage(k, held[k], spec, _stage_model(model, spec, self._runner(k), len(held[k])))
                       for k, spec in enumerate(specs)]
        self._waiting: list[collections.deque[_Item]] = [collections.deque() for _ in self.stages]
        self._occupancy = [0] * len(self.stages)
        self._lock = threading.Lock()

    @property
    def cores(self) -> tuple[LocalCore, ...]:
        return tuple(stage.core for stage in self.stages)

    def in_flight(self) -> list[int]:
        """How many items each stage holds right now."""
        with self._lock:
            return list(self._occupancy)

    # -- submitting ----------------------------------------------------------------------

    def submit(self, calls: Sequence[Any], single: bool, on_done: Callable[[ExecutionFuture], None] | None = None,
               inline: bool = False) -> ExecutionFuture:
        """Stream ``calls`` through the stages; the future holds their outputs (one if ``single``).

        ``inline``: a synchronous call of one request may run each stage in the calling
        thread while that stage's core is idle (holding the core, as ``nrt_execute`` does and
        as the runtime does for every model), so an unloaded pipeline costs no thread
        handoffs; a busy stage is queued on its core as usual.
        """
        holder: list[_Request] = []
        future = ExecutionFuture(self.runtime.config.exec_timeout, lambda: self._time_out(holder[0]))
        caller = threading.get_ident() if inline and len(calls) == 1 else None
        request = _Request(future, len(calls), single, caller)
        holder.append(request)
        if on_done is not None:
            future.add_done_callback(on_done)
        if not calls:
            _complete(future, [])
            return future
        with self._lock:
            self._waiting[0].extend(_Item(request, position, call) for position, call in enumerate(calls))
            ready = self._advance()
        self._dispatch(ready)
        return future

    def _advance(self) -> list[_Item]:
        """Admit every waiting item the bounded queues allow, last stage first (under the lock)."""
        ready: list[_Item] = []
        for index in range(len(self.stages) - 1, -1, -1):
            waiting = self._waiting[index]
            while waiting and self._occupancy[index] < self.depth:
                item = waiting.popleft()
                if index:
                    self._occupancy[index - 1] -= 1
                if item.request.failed:
                    continue
                self._occupancy[index] += 1
                item.stage, item.state = index, QUEUED
                ready.append(item)
        return ready

    def _dispatch(self, items: list[_Item]) -> None:
        """Queue each item's stage as a job of that stage's core (outside the lock).

        Items this thread may run inline go last, so the others are queued on their cores
        before this thread gets busy with its own.
        """
        me = threading.get_ident()
        for item in sorted(items, key=lambda item: item.request.caller == me):
            self._queue(self.stages[item.stage], item)

    def _queue(self, stage: _Stage, item: _Item) -> None:
        executor = self.runtime.executor(stage.core.index)
        future = ExecutionFuture(self.runtime.config.exec_timeout, lambda: executor.abandon(job))
        job = item.job = Job(stage.model, [item], stage.cores, future, True)
        future.add_done_callback(lambda _: self._stage_done(stage, item))
        if item.request.caller == threading.get_ident() and executor.try_inline(job):
            return
        executor.submit(job)

    # -- running a stage (in the stage core's executor thread, or inline in a caller's) -----

    def _runner(self, index: int) -> Runner:
        def run_stage(stage_model: Model, item: _Item, core: LocalCore) -> Any:
            stage = self.stages[index]
            if not self._begin(item):
                return None  # its request failed or timed out meanwhile: nothing to compute
            start = time.monotonic()
            try:
                value = stage.spec.runner(stage_model, item.value, core)
            except BaseException as error:
                self._end(stage, item, start, error=error)
                raise  # the core's executor counts the error too
            self._end(stage, item, start, value=value)
            return value

        return run_stage

    def _end(self, stage: _Stage, item: _Item, start: float, value: Any = None,
             error: BaseException | None = None) -> None:
        """Record a stage's outcome on its item, unless the item was given up meanwhile."""
        counters = stage.counters
        counters.executions += 1
        counters.busy_seconds += time.monotonic() - start
        if error is not None:
            counters.errors += 1
        with self._lock:
            if item.state == RUNNING:
                item.value, item.error, item.state = value, error, DONE if error is None else FAILED

    def _begin(self, item: _Item) -> bool:
        with self._lock:
            request = item.request
            if request.failed or item.state != QUEUED:
                item.state = SKIPPED if item.state == QUEUED else item.state
                return False
            item.state = RUNNING
            request.running[item] = now = time.monotonic()
            if request.future.started_at is None:
                request.future.started_at = now
            return True

    def _stage_done(self, stage: _Stage, item: _Item) -> None:
        """A stage job finished: pass the item on, or finish (or fail) its request."""
        request = item.request
        outcome: tuple[Any, BaseException | None] | None = None
        with self._lock:
            if item.state == ABANDONED:
                return  # timed out: its share of the queue was given back already
            self._leave_running(item)
            if item.state in (FAILED, RUNNING, QUEUED):
                outcome = (None, self._failure(stage, item))
                item.state = ABANDONED if item.state != FAILED else FAILED
                self._occupancy[stage.index] -= 1
                self._fail(request)
            elif request.failed or item.state == SKIPPED:
                self._occupancy[stage.index] -= 1
            elif stage.index == len(self.stages) - 1:
                self._occupancy[stage.index] -= 1
                request.outputs[item.position] = item.value
                request.remaining -= 1
                if request.remaining == 0:
                    outcome = (request.outputs[0] if request.single else request.outputs, None)
            else:
                self._waiting[stage.index + 1].append(item)
            ready = self._advance()
        self._dispatch(ready)
        if outcome is not None:
            _complete(request.future, *outcome)

    def _leave_running(self, item: _Item) -> None:
        request = item.request
        request.running.pop(item, None)
        request.future.started_at = min(request.running.values()) if request.running else None

    def _fail(self, request: _Request) -> None:
        """Mark ``request`` failed and drop its items still waiting between stages (under the lock)."""
        request.failed = True
        for index, waiting in enumerate(self._waiting):
            kept = [item for item in waiting if item.request is not request]
            if index:
                self._occupancy[index - 1] -= len(waiting) - len(kept)
            waiting.clear()
            waiting.extend(kept)

    def _failure(self, stage: _Stage, item: _Item) -> BaseException:
        core = stage.core
        where = (f"stage {stage.index} of {len(self.stages)} of model {self.model.name!r} on NeuronCore "
                 f"NC{core.index} (global nc{core.global_index})")
        if item.error is None:  # the core's executor gave the job up (a timeout) while it ran
            timeout = self.runtime.config.exec_timeout
            return ExecTimeoutError(f"{where} did not finish within NEURON_RT_EXEC_TIMEOUT={timeout:g} s; "
                                    "its cores were freed and stay usable", core=core.index)
        if isinstance(item.error, ExecutionError):
            return item.error
        error = ExecutionError(f"{where} failed: {type(item.error).__name__}: {item.error}", core=core.index)
        error.__cause__ = item.error
        return error

    # -- timeouts ------------------------------------------------------------------------

    def _time_out(self, request: _Request) -> ExecTimeoutError:
        """A waiter found a stage of ``request`` past NEURON_RT_EXEC_TIMEOUT: reset its core, fail it."""
        timeout = self.runtime.config.exec_timeout
        now = time.monotonic()
        with self._lock:
            overdue = sorted(request.running.items(), key=lambda entry: entry[1])
            overdue = [item for item, start in overdue if now - start >= timeout] or [item for item, _ in overdue[:1]]
            for item in overdue:
                self._leave_running(item)
                item.state = ABANDONED
                self._occupancy[item.stage] -= 1
            self._fail(request)
            ready = self._advance()
        errors = [self._abandon(item) for item in overdue if item.job is not None]
        self._dispatch(ready)
        if errors:
            stage = self.stages[overdue[0].stage]
            return ExecTimeoutError(f"pipeline stage {stage.index} of {len(self.stages)}: {errors[0]}",
                                    core=stage.core.index)
        return ExecTimeoutError(
            f"model {self.model.name!r} did not finish within NEURON_RT_EXEC_TIMEOUT={timeout:g} s",
            core=self.stages[0].core.index,
        )

    def _abandon(self, item: _Item) -> ExecTimeoutError:
        """Give up the item's stage job, inline (free its cores) or queued (reset its core)."""
        executor = self.runtime.executor(self.stages[item.stage].core.index)
        executor.abandon_inline(item.job)
        return executor.abandon(item.job)

    # -- description ---------------------------------------------------------------------

    def describe(self, replica: int) -> list[dict[str, Any]]:
        return [
            {"replica": replica, "stage": stage.index, "core": stage.core.index,
             "global_core": stage.core.global_index, "cores": [core.index for core in stage.cores],
             "global_cores": [core.global_index for core in stage.cores],
             "label": stage.spec.label, **stage.counters.snapshot()}
            for stage in self.stages
        ]


def _stage_model(model: Model, spec: StageSpec, runner: Runner, width: int) -> Model:
    """The Model a stage job runs: the pipelined model's name and uid (model switches, tools), the
    stage's payload, and a manifest whose ``pipeline_cores`` is the cores the stage holds."""
    from .model import Model

    manifest = dataclasses.replace(model.manifest, pipeline_cores=width)
    stage = Model(model.name, model.framework, manifest, spec.payload, runner=runner, inline=False)
    stage.uid = model.uid
    return stage


def build_pipelines(runtime: Runtime, model: Model, replicas: Sequence[tuple[LocalCore, ...]]) -> list[StagePipeline] | None:
    """One :class:`StagePipeline` per replica when ``model`` has two or more stages that fit its replicas.

    ``None`` (the model runs whole, as one job holding its replica's cores) for a model
    without stages, or placed on replicas with fewer cores than it has stages. With fewer
    stages than cores, the last stage holds the cores left over (so a model sharing them
    still takes turns with it, as with the whole group on hardware).
    """
    stages = model.stages
    if not stages or len(stages) < 2 or any(len(cores) < len(stages) for cores in replicas):
        return None
    return [StagePipeline(runtime, model, cores, stages) for cores in replicas]
