"""One executor per core: a worker thread that runs one model at a time, FIFO.

A job is one or more calls of one model on one replica (a group of cores). The worker
of the replica's first core runs it while holding every core of the replica, so models
sharing a core never run at the same time on it, and a change of model on a core is
counted as a model switch. ``NEURON_RT_EXEC_TIMEOUT`` is enforced by whoever waits for
the result: a job that runs too long is abandoned (its thread finishes in the
background, its result dropped) and the core gets a fresh worker, so the runtime stays
usable.
"""

from __future__ import annotations

import collections
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Sequence

from .errors import ExecTimeoutError, ExecutionError

if TYPE_CHECKING:
    from .model import Model
    from .runtime import LocalCore

__all__ = ["CoreCounters", "CoreSlot", "ExecutionFuture", "Job", "CoreExecutor"]

LATENCY_WINDOW = 2048


@dataclass
class CoreCounters:
    """What a core has done: read by ``ncrt ls``, ``top``, ``monitor`` and reports."""

    executions: int = 0
    errors: int = 0
    timeouts: int = 0
    busy_seconds: float = 0.0
    model_switches: int = 0
    last_model: str | None = None
    latencies: collections.deque = field(default_factory=lambda: collections.deque(maxlen=LATENCY_WINDOW))

    def snapshot(self) -> dict[str, Any]:
        return {
            "executions": self.executions,
            "errors": self.errors,
            "timeouts": self.timeouts,
            "busy_seconds": round(self.busy_seconds, 6),
            "model_switches": self.model_switches,
            "last_model": self.last_model,
        }


class CoreSlot:
    """Exclusive use of one core; releasable by force when its holder is abandoned."""

    def __init__(self) -> None:
        self._free = threading.Condition(threading.Lock())
        self._holder: object | None = None

    def acquire(self, holder: object) -> None:
        with self._free:
            while self._holder is not None:
                self._free.wait()
            self._holder = holder

    def release(self, holder: object) -> None:
        with self._free:
            if self._holder is holder:
                self._holder = None
                self._free.notify()


class ExecutionFuture:
    """The result of a job; ``result()`` enforces the execution timeout."""

    __slots__ = ("_done", "_value", "_error", "_callbacks", "started_at", "_timeout", "_on_timeout")

    def __init__(self, timeout: float, on_timeout: Callable[[], ExecTimeoutError]) -> None:
        self._done = threading.Event()
        self._value: Any = None
        self._error: BaseException | None = None
        self._callbacks: list[Callable[[ExecutionFuture], None]] = []
        self.started_at: float | None = None
        self._timeout = timeout
        self._on_timeout = on_timeout

    def done(self) -> bool:
        return self._done.is_set()

    def _finish(self, value: Any = None, error: BaseException | None = None) -> None:
        if self._done.is_set():
            return
        self._value, self._error = value, error
        self._done.set()
        for callback in self._callbacks:
            callback(self)

    def add_done_callback(self, callback: Callable[[ExecutionFuture], None]) -> None:
        self._callbacks.append(callback)
        if self._done.is_set():
            callback(self)

    def _wait(self, timeout: float | None) -> None:
        if self._timeout <= 0:
            if not self._done.wait(timeout):
                raise TimeoutError(f"no result within {timeout} s")
            return
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._done.wait(self._wait_step(deadline)):
            started = self.started_at
            now = time.monotonic()
            if started is not None and now - started >= self._timeout:
                self._finish(error=self._on_timeout())
            elif deadline is not None and now >= deadline:
                raise TimeoutError(f"no result within {timeout} s")

    def _wait_step(self, deadline: float | None) -> float:
        started = self.started_at
        step = self._timeout if started is None else self._timeout - (time.monotonic() - started)
        if deadline is not None:
            step = min(step, deadline - time.monotonic())
        return max(step, 0.001)

    def result(self, timeout: float | None = None) -> Any:
        """The outputs; re-raises the job's error, or ExecTimeoutError past the exec timeout."""
        self._wait(timeout)
        if self._error is not None:
            raise self._error
        return self._value

    def exception(self, timeout: float | None = None) -> BaseException | None:
        self._wait(timeout)
        return self._error


@dataclass(eq=False)
class Job:
    """Calls of one model on one replica; ``single`` jobs return one output, not a list."""

    model: Model
    calls: Sequence[Any]
    replica: tuple[LocalCore, ...]
    future: ExecutionFuture
    single: bool = True


class CoreExecutor:
    """The worker thread of one core, with its queue and counters."""

    def __init__(self, core: LocalCore, slots: Sequence[CoreSlot], counters: Sequence[CoreCounters],
                 execute: Callable[[Model, Any, LocalCore], Any]) -> None:
        self.core = core
        self._slots = slots
        self._counters = counters
        self._execute = execute
        self._queue: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._generation = 0
        self._running: Job | None = None
        self._lock = threading.Lock()
        self._start_worker()

    @property
    def counters(self) -> CoreCounters:
        return self._counters[self.core.index]

    def _start_worker(self) -> None:
        thread = threading.Thread(
            target=self._work, args=(self._generation,), name=f"ncrt-nc{self.core.index}", daemon=True
        )
        thread.start()

    def submit(self, job: Job) -> None:
        self._queue.put(job)

    def stop(self) -> None:
        self._queue.put(None)

    def _work(self, generation: int) -> None:
        while generation == self._generation:
            job = self._queue.get()
            if job is None:
                return
            self._running = job
            self._run(job, generation)

    def _run(self, job: Job, generation: int) -> None:
        cores = [core.index for core in job.replica]
        for core in cores:
            self._slots[core].acquire(job)
        job.future.started_at = start = time.monotonic()
        self._count_switches(job.model, cores)
        try:
            outputs = [self._execute(job.model, call, job.replica[0]) for call in job.calls]
        except BaseException as error:  # noqa: BLE001 - re-raised to the caller
            self._finish(job, generation, start, error=self._wrap(job, error))
        else:
            self._finish(job, generation, start, value=outputs[0] if job.single else outputs)

    def _count_switches(self, model: Model, cores: list[int]) -> None:
        for core in cores:
            counters = self._counters[core]
            if counters.last_model is not None and counters.last_model != model.uid:
                counters.model_switches += 1
            counters.last_model = model.uid

    def _finish(self, job: Job, generation: int, start: float, value: Any = None,
                error: BaseException | None = None) -> None:
        if generation != self._generation:
            return  # abandoned after a timeout: the caller has had its error already
        elapsed = time.monotonic() - start
        counters = self.counters
        counters.executions += len(job.calls)
        counters.busy_seconds += elapsed
        counters.latencies.append(elapsed)
        if error is not None:
            counters.errors += 1
        for core in job.replica:
            self._slots[core.index].release(job)
        self._running = None
        job.future._finish(value, error)

    def _wrap(self, job: Job, error: BaseException) -> BaseException:
        if isinstance(error, ExecutionError):
            return error
        core = self.core
        wrapped = ExecutionError(
            f"model {job.model.name!r} failed on NeuronCore NC{core.index} (global nc{core.global_index}): "
            f"{type(error).__name__}: {error}",
            core=core.index,
        )
        wrapped.__cause__ = error
        return wrapped

    def abandon(self, job: Job) -> ExecTimeoutError:
        """Give up on a job past its timeout: free its cores and start a fresh worker."""
        with self._lock:
            if self._running is job:
                self._generation += 1
                self._running = None
                for core in job.replica:
                    self._slots[core.index].release(job)
                self.counters.timeouts += 1
                self._start_worker()
        return ExecTimeoutError(
            f"model {job.model.name!r} did not finish on NeuronCore NC{self.core.index} within "
            f"NEURON_RT_EXEC_TIMEOUT={job.future._timeout:g} s; the core was reset and stays usable",
            core=self.core.index,
        )
