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
  finds the next stage full waits in the pipeline, not in a thread. A lone synchronous
  call runs its stages on its caller's runner while their cores are idle (as the runtime
  runs any synchronous call); under load every stage runs on its own core's thread.
- **fused runs** (optional, per plugin): a model may also hand over a
  :data:`FusedRunner`, which runs all its stages as one execution of the whole model
  with the stages' own per-core state (their weights, resident once). A synchronous
  call that finds its replica's pipeline idle then runs fused, as an ordinary job that
  holds every core of the replica: nothing streams past a lone call, and handing the
  data from stage to stage would only add the per-stage costs. Tools count these runs apart
  (``fused_executions``); under load, or when any of the cores is busy, calls stream.

A pipelined call is admitted like any other (``NEURON_MAX_NUM_INFERS``,
``NEURON_RT_ASYNC_EXEC_MAX_INFLIGHT_REQUESTS``), shares cores with other models like any
job (model switches are counted on each stage's core), and keeps the executor's
``NEURON_RT_EXEC_TIMEOUT`` promise: its caller gets ``ExecTimeoutError`` T after the later
of its submission and its last progress, even when a stage never returns, and the stuck
stage's core is reset (see :class:`StagePipeline`). An error in a stage fails only its
request. A forked child cannot run a pipelined model (``ForeignModelError``, as for any).
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
from .executor import ExecutionFuture, Job, caller_runner, current_runner
from .placement import caller_stacklevel

if TYPE_CHECKING:
    from .executor import CoreExecutor
    from .executor import Runner as ExecutorRunner
    from .model import Model, Runner
    from .runtime import LocalCore, Runtime

__all__ = [
    "STAGE_DEPTH",
    "FusedRunner",
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
    warnings.warn(note, PipelineStagesWarning, stacklevel=caller_stacklevel())
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


FusedRunner = Callable[["Model", Sequence["Model"], Any, Sequence["LocalCore"]], Any]
"""``fused(model, stage_models, inputs, cores) -> outputs``: run every stage of one replica
as one execution of the whole model. ``model`` is the replica's fused model (its own
per-core state for the whole model), ``stage_models[k]`` stage ``k``'s model (whose
``replica_for(cores[k].index, ...)`` holds the stage's state on its core), ``cores[k]``
the core of stage ``k``. It runs holding every core of the replica."""


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
    stage model (whose runner is the pipeline's), counters, and when it last finished a call."""

    __slots__ = ("index", "cores", "spec", "model", "counters", "finished_at", "_runtime", "_executor")

    def __init__(self, runtime: Runtime, index: int, cores: tuple[LocalCore, ...], spec: StageSpec,
                 model: Model) -> None:
        self.index, self.cores, self.spec, self.model = index, cores, spec, model
        self.counters = StageCounters()
        self.finished_at = 0.0
        self._runtime = runtime
        self._executor: CoreExecutor | None = None

    @property
    def core(self) -> LocalCore:
        """The core whose executor runs the stage."""
        return self.cores[0]

    @property
    def executor(self) -> CoreExecutor:
        executor = self._executor
        if executor is None:
            executor = self._executor = self._runtime.executor(self.core.index)
        return executor

    def where(self, count: int, model: str) -> str:
        core = self.core
        return f"stage {self.index} of {count} of model {model!r} on NeuronCore NC{core.index} (global nc{core.global_index})"


class _Item:
    """One call of a request on its way through the stages.

    ``since``: when it became ready for its current stage (its request's submission, or
    the end of the stage before): its clock for ``NEURON_RT_EXEC_TIMEOUT``. ``job``: the
    stage job running or queued for it (None while it waits to enter a stage).
    """

    __slots__ = ("request", "position", "value", "stage", "job", "since", "started", "done")

    def __init__(self, request: _Request, position: int, value: Any) -> None:
        self.request, self.position, self.value = request, position, value
        self.stage = 0
        self.job: Job | None = None
        self.since = request.submitted
        self.started = False
        self.done = False


class _Request:
    """One submitted job of a pipelined model: its calls stream through the stages, its future
    gets them all back. It is the :class:`~ncrt.executor.Deadline` that future enforces."""

    __slots__ = ("pipeline", "future", "items", "outputs", "remaining", "single", "release", "submitted",
                 "synchronous", "thread", "runner", "failed")

    def __init__(self, pipeline: StagePipeline, calls: Sequence[Any], single: bool, release: Callable[[], None],
                 synchronous: bool) -> None:
        self.pipeline = pipeline
        self.future = ExecutionFuture()
        self.submitted = time.monotonic()
        self.items = [_Item(self, position, call) for position, call in enumerate(calls)]
        self.outputs: list[Any] = [None] * len(calls)
        self.remaining = len(calls)
        self.single = single
        self.release = release
        self.synchronous = synchronous  # its stages may run on its caller's side (runner, or inline)
        self.thread = threading.get_ident()
        self.runner: ExecutorRunner | None = None
        self.failed = False

    @property
    def timeout(self) -> float:
        return self.pipeline.timeout

    def deadline(self) -> float:
        return self.pipeline.deadline_of(self)

    def abandon(self) -> None:
        self.pipeline.abandon(self)


class StagePipeline:
    """One replica of a pipelined model: stage ``k`` on core ``k``, bounded queues between stages.

    ``occupancy[k]`` counts the calls stage ``k`` holds (queued on its core, running, or
    finished and waiting in ``waiting[k + 1]``); a call enters stage ``k`` only while
    ``occupancy[k] < depth``, so a slow stage holds back the stages before it instead of
    letting work pile up. All bookkeeping happens under one lock; the stages run as
    ordinary jobs of each core's executor, so they hold their core while they run (model
    switches on shared cores are counted as for any job) and the executor's timeout
    machinery covers them.

    Where a stage runs: a synchronous single call that finds the pipeline idle runs its
    stages on its caller's runner (each while its core is idle: the lowest latency, no
    thread handoff between stages), or, with ``NEURON_RT_EXEC_TIMEOUT=0``, in the calling
    thread itself; every other stage goes to its core's worker thread, pinned to that
    core's CPUs, so under load each stage keeps its own CPUs.

    ``NEURON_RT_EXEC_TIMEOUT`` (T) holds for each request as for any job: it times out T
    after the later of its submission and its calls' last progress, where a call waiting
    to enter stage ``k`` progresses whenever a stage from ``k`` on finishes a call, and a
    call queued on a core whenever that core finishes one. The request's waiter, or the
    runtime's watchdog (for requests nobody waits for), abandons it: the stage jobs past
    their deadline are abandoned (their cores reset), its other calls dropped.
    """

    def __init__(self, runtime: Runtime, model: Model, cores: Sequence[LocalCore], specs: Sequence[StageSpec],
                 depth: int = STAGE_DEPTH) -> None:
        self.model = model
        self.timeout = runtime.config.exec_timeout
        self.depth = max(1, depth)
        last = len(specs) - 1
        held = [tuple(cores[k : k + 1]) if k < last else tuple(cores[last:]) for k in range(len(specs))]
        self.stages = [_Stage(runtime, k, held[k], spec, _stage_model(model, spec, self._runner(k), len(held[k])))
                       for k, spec in enumerate(specs)]
        self._waiting: list[collections.deque[_Item]] = [collections.deque() for _ in self.stages]
        self._occupancy = [0] * len(self.stages)
        self._requests: dict[_Request, None] = {}  # in flight, oldest first
        self._lock = threading.Lock()
        self.fused_executions = 0
        self.fused_model = _fused_model(self) if model.fused is not None else None
        if self.timeout > 0:
            runtime.watch(self)

    @property
    def cores(self) -> tuple[LocalCore, ...]:
        return tuple(stage.core for stage in self.stages)

    @property
    def idle(self) -> bool:
        """Whether no request is streaming through the stages now."""
        return not self._requests

    def in_flight(self) -> list[int]:
        """How many calls each stage holds right now."""
        with self._lock:
            return list(self._occupancy)

    # -- submitting ----------------------------------------------------------------------

    def submit(self, calls: Sequence[Any], single: bool, release: Callable[[], None],
               synchronous: bool = False) -> ExecutionFuture:
        """Stream ``calls`` through the stages; the future holds their outputs (one if ``single``).

        ``release()`` gives back what the runtime reserved for the request (in-flight
        tokens); it is called once, right before the future is settled. ``synchronous``:
        the caller waits for the result now, so a single call finding the pipeline idle
        runs its stages on the caller's side (see the class docstring).
        """
        request = _Request(self, calls, single, release, synchronous and len(calls) == 1 and self.model.inline)
        if self.timeout > 0:
            request.future.enforce(request)
        if not calls:
            self._settle(request, [], None)
            return request.future
        with self._lock:
            if self._requests:
                request.synchronous = False  # others are streaming: stages keep to their cores' threads
            self._requests[request] = None
            self._waiting[0].extend(request.items)
            ready = self._advance()
        self._dispatch(ready)
        return request.future

    def _advance(self) -> list[_Item]:
        """Admit every waiting call the bounded queues allow, last stage first, each with its
        stage job (under the lock)."""
        ready: list[_Item] = []
        for index in range(len(self.stages) - 1, -1, -1):
            waiting = self._waiting[index]
            while waiting and self._occupancy[index] < self.depth:
                item = waiting.popleft()
                if index:
                    self._occupancy[index - 1] -= 1
                self._occupancy[index] += 1
                stage = self.stages[index]
                # the call's clock, not the job's: waiting to enter the stage was waiting
                item.job = Job(stage.model, (item,), stage.cores, ExecutionFuture(), True, submitted=item.since)
                ready.append(item)
        return ready

    def _dispatch(self, items: list[_Item]) -> None:
        """Start each admitted call's stage job (outside the lock); calls this thread runs itself
        go last, so the others are queued on their cores before it gets busy."""
        if len(items) > 1:
            items.sort(key=self._runs_here)
        for item in items:
            self._start(item)

    def _runs_here(self, item: _Item) -> bool:
        request = item.request
        return request.synchronous and request.thread == threading.get_ident()

    def _start(self, item: _Item) -> None:
        job = item.job  # cleared only by the callback registered here, so set
        stage = self.stages[item.stage]
        job.future.add_done_callback(lambda future: self._stage_done(stage, item, future))
        executor = stage.executor
        request = item.request
        if request.synchronous and self._start_on_callers_side(executor, job, request):
            return
        executor.submit(job)

    def _start_on_callers_side(self, executor: CoreExecutor, job: Job, request: _Request) -> bool:
        """Run ``job`` in the caller's thread (no timeout) or on the caller's runner, if its core is idle."""
        if self.timeout <= 0:
            return request.thread == threading.get_ident() and executor.try_inline(job)
        if request.runner is None:  # stage 0, from the caller's own thread
            if request.thread != threading.get_ident():
                return False
            request.runner = caller_runner()
            if executor.try_runner(job, request.runner):
                return True
            request.runner = None
            return False
        return current_runner() is request.runner and executor.try_runner(job, request.runner)

    # -- running a stage (in its core's worker thread, or on the caller's side) ---------

    def _runner(self, index: int) -> Runner:
        def run_stage(stage_model: Model, item: _Item, core: LocalCore) -> Any:
            if item.request.failed:
                return None  # its request failed or timed out meanwhile: nothing to compute
            stage = self.stages[index]
            item.started = True
            start = time.monotonic()
            try:
                return stage.spec.runner(stage_model, item.value, core)
            except Exception as error:  # noqa: BLE001 - re-raised, naming the stage
                stage.counters.errors += 1
                raise self._stage_error(stage, error) from error
            finally:
                stage.counters.executions += 1
                stage.counters.busy_seconds += time.monotonic() - start

        return run_stage

    def _stage_error(self, stage: _Stage, error: Exception) -> ExecutionError:
        if isinstance(error, ExecutionError):
            return error
        return ExecutionError(f"{stage.where(len(self.stages), self.model.name)} failed: "
                              f"{type(error).__name__}: {error}", core=stage.core.index)

    def _stage_done(self, stage: _Stage, item: _Item, future: ExecutionFuture) -> None:
        """A stage job was settled: pass the call on, or finish (or fail) its request."""
        error = future.exception()
        value = future.result() if error is None else None
        request, index = item.request, stage.index
        outcome: tuple[Any, BaseException | None] | None = None
        with self._lock:
            item.job = None
            if error is None:
                stage.finished_at = time.monotonic()
            if not request.failed and error is None and index < len(self.stages) - 1:
                # passed on; the call counts against this stage until the next one has room
                item.value, item.stage, item.since = value, index + 1, stage.finished_at
                self._waiting[index + 1].append(item)
            else:
                self._occupancy[index] -= 1
                if request.failed:
                    pass  # dropped: its request already has its outcome
                elif error is not None:
                    outcome = (None, self._failure(stage, error))
                    self._fail(request)
                else:
                    outcome = self._finish_call(request, item, value)
            ready = self._advance()
        self._dispatch(ready)
        if outcome is not None:
            self._settle(request, *outcome)

    def _finish_call(self, request: _Request, item: _Item, value: Any) -> tuple[Any, None] | None:
        """Keep a call's output; the request's outcome once its last call is done (under the lock)."""
        item.done = True
        request.outputs[item.position] = value
        request.remaining -= 1
        if request.remaining:
            return None
        self._requests.pop(request, None)
        return (request.outputs[0] if request.single else request.outputs), None

    def _failure(self, stage: _Stage, error: BaseException) -> BaseException:
        """The error a request gets for its stage's error (a timeout names the stage)."""
        if isinstance(error, ExecTimeoutError) and not str(error).startswith("stage "):
            return ExecTimeoutError(f"stage {stage.index} of {len(self.stages)}: {error}", core=stage.core.index)
        return error

    def _fail(self, request: _Request) -> None:
        """Mark ``request`` failed; drop its calls waiting between stages (under the lock)."""
        request.failed = True
        self._requests.pop(request, None)
        for index, waiting in enumerate(self._waiting):
            kept = [item for item in waiting if item.request is not request]
            if len(kept) != len(waiting):
                if index:
                    self._occupancy[index - 1] -= len(waiting) - len(kept)
                waiting.clear()
                waiting.extend(kept)

    def _settle(self, request: _Request, value: Any, error: BaseException | None) -> None:
        request.release()  # first: a caller woken by the result may submit again at once
        request.future.settle(value, error)

    # -- timeouts ------------------------------------------------------------------------

    def _call_deadline(self, item: _Item) -> float:
        """When ``item`` times out (under the lock): its stage job's deadline on its core, or,
        waiting to enter stage ``k``, T after the later of its clock and the last call a
        stage from ``k`` on finished."""
        if item.job is not None:
            return self.stages[item.stage].executor.deadline(item.job)
        moved = max(stage.finished_at for stage in self.stages[item.stage :])
        return max(item.since, moved) + self.timeout

    def deadline_of(self, request: _Request) -> float:
        """When ``request`` times out now: the earliest deadline of its unfinished calls."""
        with self._lock:
            pending = [self._call_deadline(item) for item in request.items if not item.done]
        return min(pending) if pending and not request.failed else request.submitted + self.timeout

    def overdue(self, now: float) -> list[_Request]:
        """The requests in flight past their deadline (for the runtime's watchdog)."""
        with self._lock:
            requests = list(self._requests)
        return [request for request in requests if now >= self.deadline_of(request)]

    def abandon(self, request: _Request) -> None:
        """Give up on ``request`` past its deadline: its overdue stage jobs are abandoned (their
        cores reset and serve others at once), its other calls dropped, its caller failed."""
        now = time.monotonic()
        with self._lock:
            if request.failed or request not in self._requests:
                return  # it finished, failed or was abandoned meanwhile
            overdue = [item for item in request.items if not item.done and self._call_deadline(item) <= now]
            if not overdue:
                return  # it made progress since its waiter looked: a later deadline now
            jobs = [(self.stages[item.stage], item.job) for item in overdue if item.job is not None]
            error = self._timeout_error(overdue[0])
            self._fail(request)
            ready = self._advance()
        for stage, job in jobs:
            stage.executor.abandon(job)
        self._dispatch(ready)
        self._settle(request, None, error)

    def _timeout_error(self, item: _Item) -> ExecTimeoutError:
        stage = self.stages[item.stage]
        timeout = f"NEURON_RT_EXEC_TIMEOUT={self.timeout:g} s"
        core = f"NeuronCore NC{stage.core.index}"
        what = f"stage {stage.index} of {len(self.stages)} of model {self.model.name!r}"
        if item.started:
            problem = (f"{what} did not finish on {core} within {timeout}; the core was reset and stays "
                       "usable, the late result (if any) is discarded")
        elif item.job is not None:
            problem = f"{what} waited {timeout} for {core}, busy with other work that made no progress, and never started"
        else:
            problem = (f"{what} waited {timeout} to enter its stage on {core}, behind stages that made no "
                       "progress, and never started")
        return ExecTimeoutError(problem, core=stage.core.index)

    # -- description ---------------------------------------------------------------------

    def describe(self, replica: int) -> list[dict[str, Any]]:
        return [
            {"replica": replica, "stage": stage.index, "core": stage.core.index,
             "global_core": stage.core.global_index, "cores": [core.index for core in stage.cores],
             "global_cores": [core.global_index for core in stage.cores],
             "label": stage.spec.label, **stage.counters.snapshot(), "fused_executions": self.fused_executions}
            for stage in self.stages
        ]


def _stage_model(model: Model, spec: StageSpec, runner: Runner, width: int) -> Model:
    """The Model a stage job runs: the pipelined model's name and uid (model switches, tools), the
    stage's payload, and a manifest whose ``pipeline_cores`` is the cores the stage holds."""
    from .model import Model

    manifest = dataclasses.replace(model.manifest, pipeline_cores=width)
    stage = Model(model.name, model.framework, manifest, spec.payload, runner=runner, inline=model.inline)
    stage.uid = model.uid
    return stage


def _fused_model(pipeline: StagePipeline) -> Model:
    """The Model a fused run's job runs: the pipelined model's name, uid and payload, a runner
    that hands the model's :data:`FusedRunner` the replica's stage models and cores."""
    from .model import Model

    model = pipeline.model
    fused, stage_models = model.fused, [stage.model for stage in pipeline.stages]
    cores = [stage.core for stage in pipeline.stages]

    def run_fused(fused_model: Model, inputs: Any, core: LocalCore) -> Any:
        pipeline.fused_executions += 1  # the job holds every core of the replica: one at a time
        return fused(fused_model, stage_models, inputs, cores)

    whole = Model(model.name, model.framework, model.manifest, model.payload, runner=run_fused, inline=model.inline)
    whole.uid = model.uid
    return whole


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
