"""The per-process runtime: configuration, cores, reservation, placement, executors.

One :class:`Runtime` per process, created on first use by :func:`get_runtime`. It parses
the ``NEURON_RT_*`` configuration once, lets plugins adjust it, discovers the host's
cores, reserves this process's cores across processes, places models, and runs them on
one executor per core.
"""

from __future__ import annotations

import atexit
import os
import queue
import threading
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import pluggy

from .coalesce import CoalesceSettings
from .config import Config, blocked_plugins, check_against_topology, parse_config
from .errors import ForeignModelError, ModelLoadError, PlacementError, QueueFullError
from .executor import CoreCounters, CoreExecutor, CoreSlot, ExecutionFuture, Job, Overdue, Watchdog, quiesce
from .logs import configure_logging, get_logger
from .manager import plugin_manager, variable_table
from .model import LoadedModel, Model
from .placement import Placement, PlacementRequest, PlacementTable, warn_shared
from .reservation import Reservation, command_line, default_state_dir
from .stash import Stash
from .topology import Core, Topology

if TYPE_CHECKING:
    from .pipeline import StagePipeline

__all__ = ["LocalCore", "Runtime", "Tokens", "get_runtime", "reset_runtime", "current_runtime"]

log = get_logger("NRT")

# Every runtime of this process, so a forked child can mark its parent's as foreign.
_LIVE_RUNTIMES: weakref.WeakSet[Runtime] = weakref.WeakSet()


@dataclass(frozen=True)
class LocalCore:
    """A reserved core as this process sees it: ``index`` counts from 0 (seed 001)."""

    index: int
    core: Core

    @property
    def global_index(self) -> int:
        return self.core.index

    @property
    def chip(self) -> int:
        return self.core.chip

    @property
    def cpus(self) -> tuple[int, ...]:
        return self.core.cpus

    @property
    def label(self) -> str:
        return f"NC{self.index}"


class Runtime:
    """The cores this process holds and the models placed on them."""

    def __init__(self, environ: Mapping[str, str] | None = None, pm: pluggy.PluginManager | None = None) -> None:
        environ = os.environ if environ is None else environ
        self.pm = pm or plugin_manager(blocked_plugins(environ))
        self.variables = variable_table(self.pm)
        self.config: Config = parse_config(environ, self.variables)
        self.pm.hook.ncrt_configure(config=self.config)
        configure_logging(self.config)
        self.topology: Topology = self.pm.hook.ncrt_discover_cores(config=self.config)
        check_against_topology(self.config, len(self.topology))
        self.state_dir = Path(self.config.state_dir) if self.config.state_dir else default_state_dir()
        self.reservation = Reservation.acquire(
            self.topology, visible=self.config.visible_cores, num=self.config.num_cores, state_dir=self.state_dir
        )
        self.cores = tuple(LocalCore(i, self.topology.cores[g]) for i, g in enumerate(self.reservation.cores))
        self.table = PlacementTable(len(self.cores))
        self.counters = [CoreCounters() for _ in self.cores]
        self._slots = [CoreSlot() for _ in self.cores]
        self._progress = [0.0] * len(self.cores)  # when each core last completed a call
        self._executors: dict[int, CoreExecutor] = {}
        self._executors_lock = threading.Lock()
        self._watchdog = Watchdog(lambda: list(self._executors.values()), self.config.exec_timeout)
        self.inflight_limit = self.config.max_inflight(len(self.cores))
        self._block_when_full = self.config.queue_full == "block"
        self._inflight = Tokens(self.inflight_limit)
        self._inflight_queue = self._inflight._queue
        self._timed = self.config.exec_timeout > 0
        self.coalescing = CoalesceSettings.from_config(self.config)  # models without settings of their own
        async_limit = self.config.async_exec_max_inflight_requests
        self._async_slots = [Tokens(async_limit) for _ in self.cores] if async_limit else None
        self._models: list[LoadedModel] = []
        self._freed: queue.SimpleQueue[LoadedModel] = queue.SimpleQueue()
        self._draining = threading.RLock()  # re-entered when an unload hook asks for the models
        self.closed = False
        self.pid = os.getpid()
        self.command = command_line()
        self.stash = Stash()  # plugins' per-runtime state, under their own StashKeys
        self.forked = False  # True in a forked child: these cores are the parent's
        _LIVE_RUNTIMES.add(self)
        log.info("reserved %s of %s", [c.global_index for c in self.cores], self.topology.fingerprint())
        self.pm.hook.ncrt_runtime_started(runtime=self)

    # -- loading and placement ---------------------------------------------------------

    def load(self, artifact: Any, *, name: str | None = None, start: int | None = None,
             device_ids: Sequence[int] | None = None, device_index: int | None = None,
             replicas: int = 1) -> LoadedModel:
        """Load ``artifact`` through the plugins and place it (see :meth:`place`)."""
        model = self.pm.hook.ncrt_load(artifact=artifact, config=self.config)
        if model is None:
            shown = f"{artifact!r}" if isinstance(artifact, (str, os.PathLike)) else f"{artifact!r:.80}"
            raise ModelLoadError(
                f"no ncrt plugin can load {type(artifact).__name__} {shown}; accepted: a "
                "callable, an ncrt-compiled model directory, or a framework model of an installed plugin"
            )
        if name:
            model.name = name
        request = PlacementRequest(
            cores_per_replica=model.manifest.pipeline_cores, replicas=replicas, start=start,
            device_ids=tuple(device_ids) if device_ids is not None else None, device_index=device_index,
        )
        return self.place(model, request)

    def place(self, model: Model, request: PlacementRequest) -> LoadedModel:
        """Ask the placement hook for cores, record them, warn when cores are shared."""
        self.unload_freed(wait=True)  # every model freed so far is off its cores first
        placement: Placement | None = self.pm.hook.ncrt_placement(model=model, request=request, runtime=self)
        if placement is None:
            raise PlacementError(f"no placement plugin answered for {model!r} with {request}")
        loaded = LoadedModel(self, model, placement)
        shared = self.table.add(model.uid, placement.cores)
        warn_shared(model.name, placement.cores, [self._name_of(uid) for uid in shared])
        self._models.append(loaded)
        log.info("loaded %s on %s", model.uid, placement.label)
        self.pm.hook.ncrt_model_loaded(loaded=loaded)
        return loaded

    def _name_of(self, uid: str) -> str:
        return next((m.name for m in self._models if m.model.uid == uid), uid)

    @property
    def models(self) -> list[LoadedModel]:
        """The models placed now, in load order (models freed by their framework left out)."""
        self.unload_freed()
        return list(self._models)

    def unload(self, loaded: LoadedModel) -> None:
        """Take ``loaded`` off its cores now; its cores count as free for the next placement."""
        if loaded.unloaded:
            return
        loaded.unloaded = True
        self.table.remove(loaded.model.uid)
        if loaded in self._models:
            self._models.remove(loaded)
        log.info("unloaded %s from %s", loaded.model.uid, loaded.placement.label)
        self.pm.hook.ncrt_model_unloaded(loaded=loaded)

    def unload_later(self, loaded: LoadedModel) -> None:
        """Queue ``loaded`` for unloading (safe in a garbage-collector callback: no lock, no hook)."""
        self._freed.put(loaded)

    def unload_freed(self, wait: bool = False) -> None:
        """Unload the models queued by :meth:`unload_later` (done before every placement).

        ``wait``: if another thread is unloading them (the stats thread describing the
        process), wait until it is done; a placement must see every freed core free.
        Otherwise return at once and leave them to that thread.
        """
        if self._freed.empty() or not self._draining.acquire(blocking=wait):
            return  # nothing queued, or another thread is already unloading them
        try:
            while not self._freed.empty():
                self.unload(self._freed.get_nowait())
        finally:
            self._draining.release()

    # -- execution ---------------------------------------------------------------------

    def executor(self, index: int) -> CoreExecutor:
        executor = self._executors.get(index)
        if executor is None:
            with self._executors_lock:
                executor = self._executors.get(index)
                if executor is None:
                    executor = CoreExecutor(
                        self.cores[index], self._slots, self.counters, None,
                        timeout=self.config.exec_timeout, progress=self._progress, release=self._release,
                    )
                    self._executors[index] = executor
                    self._watchdog.ensure_started()
        return executor

    def watch(self, source: Overdue) -> None:
        """Have the runtime's watchdog abandon ``source``'s overdue work too (:meth:`Watchdog.watch`):
        how NeuronCore Pipeline requests waiting between stages keep ``NEURON_RT_EXEC_TIMEOUT``
        when nobody waits for them."""
        self._watchdog.watch(source)

    def _admit(self, tokens: Tokens, what: str, limit: int, block: bool | None = None) -> None:
        if tokens.take(block=self._block_when_full if block is None else block):
            return
        raise QueueFullError(
            f"{limit} {what} are already in flight; wait for results, raise the limit, or set "
            "NCRT_QUEUE_FULL=block to wait instead of failing"
        )

    def submit(self, loaded: LoadedModel, calls: Sequence[Any], replica: int | None = None,
               single: bool = True, is_async: bool = False, *, queued: bool = False,
               wait_for_room: bool | None = None) -> ExecutionFuture:
        """Run ``calls`` of ``loaded`` as one job on one replica; return the future.

        A synchronous job on an idle replica runs on the caller's runner (or, with no
        timeout, in the caller's thread); any other job is queued to the replica's first
        core. ``queued``: queue it to the core's worker, not as an asynchronous request of
        the application (the asynchronous in-flight limit does not apply). ``wait_for_room``:
        whether to wait when ``NEURON_MAX_NUM_INFERS`` jobs are in flight (default: as
        ``NCRT_QUEUE_FULL`` says) or raise QueueFullError at once.
        """
        if loaded.unloaded or self.forked:
            raise self._unusable(loaded)
        try:
            self._inflight_queue.get_nowait()  # Tokens.take's fast path, inline: every call passes here
        except queue.Empty:
            block = self._block_when_full if wait_for_room is None else wait_for_room
            if not self._inflight.take(block):
                self._admit(self._inflight, "inferences (NEURON_MAX_NUM_INFERS)", self.inflight_limit,
                            block)
        index = loaded.acquire_replica(replica) if replica is not None or len(loaded.replicas) > 1 else 0
        cores = loaded.replicas[index]
        executor = self._executors.get(cores[0].index) or self.executor(cores[0].index)
        async_slot = None
        if is_async and self._async_slots is not None:
            try:
                async_slot = self._async_slot(cores[0].index)
            except QueueFullError:
                loaded.release_replica(index)
                raise
        token = (loaded, index, async_slot)
        if loaded.pipelines:  # NeuronCore Pipeline: the calls stream through the replica's stages
            return self._submit_pipelined(loaded.pipelines[index], executor, calls, cores, single, token,
                                          not (is_async or queued))
        future = ExecutionFuture()
        job = Job(loaded.model, calls, cores, future, single, token)
        if not (is_async or queued) and loaded.model.inline:
            if self._timed:
                if executor.try_runner(job):
                    return future
            elif executor.try_inline(job):
                return future
        executor.submit(job)
        return future

    def _submit_pipelined(self, pipeline: StagePipeline, executor: CoreExecutor, calls: Sequence[Any],
                          cores: tuple[LocalCore, ...], single: bool, token: Any,
                          synchronous: bool) -> ExecutionFuture:
        """Stream the calls through the stages; a lone synchronous call that finds the pipeline
        and its cores idle runs fused instead, when the model can (:mod:`ncrt.pipeline`)."""
        fused = pipeline.fused_model
        if fused is not None and synchronous and fused.inline and pipeline.idle:
            future = ExecutionFuture()
            job = Job(fused, calls, cores, future, single, token)
            if executor.try_runner(job) if self._timed else executor.try_inline(job):
                return future
        return pipeline.submit(calls, single, lambda: self._give_back(token), synchronous=synchronous)

    def _unusable(self, loaded: LoadedModel) -> Exception:
        if not self.forked:
            return ModelLoadError(f"model {loaded.name!r} was unloaded")
        return ForeignModelError(
            f"model {loaded.name!r} was loaded by process {self.pid}, but this is process {os.getpid()}, "
            "forked from it: a forked child holds none of its parent's NeuronCores and cannot run its "
            "models. Load the model in the child, after the fork (or start children with "
            "multiprocessing's 'spawn' method and load it there)"
        )

    def _async_slot(self, core: int) -> Tokens | None:
        if self._async_slots is None:
            return None
        slot = self._async_slots[core]
        limit = self.config.async_exec_max_inflight_requests
        try:
            self._admit(slot, f"asynchronous requests on NC{core} (NEURON_RT_ASYNC_EXEC_MAX_INFLIGHT_REQUESTS)", limit)
        except QueueFullError:
            self._inflight.give()
            raise
        return slot

    def _release(self, job: Job) -> None:
        """Give back what :meth:`submit` reserved for ``job`` (called once it is settled).

        The stage jobs of a NeuronCore Pipeline request carry no token: the request holds
        it and gives it back when it is settled.
        """
        if job.token is not None:
            self._give_back(job.token)

    def _give_back(self, token: tuple[LoadedModel, int, Tokens | None]) -> None:
        loaded, index, async_slot = token
        if len(loaded.replicas) > 1:
            loaded.release_replica(index)
        tokens = self._inflight_queue
        if tokens.qsize() < Tokens.QUEUED:  # Tokens.give's fast path, inline
            tokens.put(None)
        else:
            self._inflight.give()
        if async_slot is not None:
            async_slot.give()

    # -- description and shutdown ----------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        """Cores, counters and models of this process, as ``ncrt ls --json`` prints them."""
        self.unload_freed()
        return {
            "pid": self.pid,
            "topology": self.topology.fingerprint(),
            "cores": [
                {"index": c.index, "global_index": c.global_index, "chip": c.chip, "cpus": list(c.cpus),
                 "models": [self._name_of(uid) for uid in self.table.models_on(c.index)],
                 **self.counters[c.index].snapshot()}
                for c in self.cores
            ],
            "models": [loaded.describe() for loaded in self._models],
        }

    def close(self) -> None:
        """Stop the executors and release the cores (also done at interpreter exit, which
        then lets their threads end: :data:`EXIT_WAIT`)."""
        if self.closed:
            return
        self.closed = True
        if self.pid == os.getpid():
            self.pm.hook.ncrt_runtime_stopping(runtime=self)
        self._watchdog.stop()
        for executor in self._executors.values():
            executor.stop()
        self.reservation.release()
        self._models.clear()  # a closed runtime holds no model: what the application keeps is its own


class Tokens:
    """A counting limit on the per-call path, O(1) in memory whatever the count.

    Up to :attr:`QUEUED` tokens live in a C-level queue (cheaper than a
    ``threading.Semaphore``, which is written in Python); the rest of a large count is
    a plain number, drawn from only when the queue runs dry. A blocked taker waits on
    the queue, and a token given back goes to the queue whenever it is short.
    """

    QUEUED = 256

    __slots__ = ("_queue", "_spare", "_lock")

    def __init__(self, count: int) -> None:
        self._queue: queue.SimpleQueue[None] = queue.SimpleQueue()
        queued = min(count, self.QUEUED)
        for _ in range(queued):
            self._queue.put(None)
        self._spare = count - queued
        self._lock = threading.Lock()

    def take(self, block: bool) -> bool:
        try:
            self._queue.get(block=False)
            return True
        except queue.Empty:
            pass
        if self._spare:
            with self._lock:
                if self._spare:
                    self._spare -= 1
                    return True
        try:
            self._queue.get(block=block)
        except queue.Empty:
            return False
        return True

    def give(self) -> None:
        if self._queue.qsize() >= self.QUEUED:
            with self._lock:
                self._spare += 1
            return
        self._queue.put(None)


_runtime: Runtime | None = None
_runtime_lock = threading.Lock()


def get_runtime() -> Runtime:
    """The process's runtime, created (and its cores reserved) on first use."""
    global _runtime
    if _runtime is None:
        with _runtime_lock:
            if _runtime is None:
                _runtime = Runtime()
    return _runtime


def current_runtime() -> Runtime | None:
    """The runtime if one was created, without creating it."""
    return _runtime


def reset_runtime() -> None:
    """Close the process's runtime; the next :func:`get_runtime` builds a new one."""
    global _runtime
    with _runtime_lock:
        if _runtime is not None:
            _runtime.close()
        _runtime = None


EXIT_WAIT = 2.0
"""Seconds the interpreter's exit waits for ncrt's threads to finish the calls they are in."""


def _close_at_exit() -> None:
    """Close every runtime of this process, then let the threads of all of them (closed
    earlier or now) end first (see :func:`ncrt.executor.quiesce`)."""
    mine = [runtime for runtime in list(_LIVE_RUNTIMES) if runtime.pid == os.getpid()]  # held from here on
    reset_runtime()
    for runtime in mine:
        runtime.close()
    left = quiesce([executor for runtime in mine for executor in list(runtime._executors.values())],
                   [runtime._watchdog for runtime in mine], EXIT_WAIT)
    if left:
        log.warning("at exit, %s still ran after %g s (stuck in a call); the process exits without them",
                    ", ".join(left), EXIT_WAIT)


def _forget_in_child() -> None:
    """A forked child holds none of its parent's cores: it starts with no runtime, and
    the runtimes it inherited refuse to run (their models name the parent's pid)."""
    global _runtime, _runtime_lock
    for runtime in list(_LIVE_RUNTIMES):
        runtime.forked = True
        runtime.closed = True
    _runtime = None
    _runtime_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_in_child)
atexit.register(_close_at_exit)
