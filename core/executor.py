"""One executor per core: a worker thread that runs one model at a time, FIFO.

A job is one or more calls of one model on one replica (a group of cores). The worker
of the replica's first core runs it while holding every core of the replica, so models
sharing a core never run at the same time on it, and a change of model on a core is
counted as a model switch. ``NEURON_RT_EXEC_TIMEOUT`` is enforced by whoever waits for
the result: a job that runs too long is abandoned (its thread finishes in the
background, its result dropped) and the core gets a fresh worker, so the runtime stays
usable.

Synchronous calls of models that allow it (``Model.inline``) run in the calling thread
when the core is idle, as ``nrt_execute`` does on real hardware: no thread handoff. A
:class:`Watchdog` frees the core of an inline call that overruns the timeout, and that
call's caller receives the timeout error when the call returns.
"""

from __future__ import annotations

import collections
import itertools
import os
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Sequence

from .errors import ExecTimeoutError, ExecutionError

if TYPE_CHECKING:
    from .model import Model
    from .runtime import LocalCore

__all__ = ["CoreCounters", "CoreSlot", "ExecutionFuture", "Job", "CoreExecutor", "Watchdog", "executor_core"]

LATENCY_WINDOW = 2048
_thread_state = threading.local()


def pin_to_cpus(cpus: Sequence[int]) -> None:
    """Bind the calling thread to the host CPUs backing its core (where the OS allows it).

    A NeuronCore is dedicated hardware; pinning keeps each core's work on its own CPUs
    instead of letting the scheduler pile two cores' threads onto one CPU.
    """
    try:
        os.sched_setaffinity(0, cpus)  # 0: the calling thread on Linux
    except (AttributeError, OSError, ValueError):
        pass


def executor_core() -> int | None:
    """The per-process core index whose executor thread this is, or None in any other thread.

    Plugins use it to tell a core's own thread (configured once for the core's CPUs)
    from a caller's thread running a synchronous call inline.
    """
    return getattr(_thread_state, "core", None)


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
    """Exclusive use of one core: a lock that records who holds it.

    The executor releases a slot exactly once per job, under its own lock, either when
    the job finishes or when the job is abandoned after a timeout.
    """

    __slots__ = ("_lock", "holder")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.holder: object | None = None

    def acquire(self, holder: object) -> None:
        self._lock.acquire()
        self.holder = holder

    def try_acquire(self, holder: object) -> bool:
        if not self._lock.acquire(blocking=False):
            return False
        self.holder = holder
        return True

    def release(self, holder: object) -> None:
        if self.holder is holder:
            self.holder = None
            self._lock.release()


class ExecutionFuture:
    """The result of a job; ``result()`` enforces the execution timeout.

    Completion is signalled by releasing a lock the future was created holding: the
    cheapest wake-up Python has, since this is on every call's path.
    """

    __slots__ = ("_signal", "_claim", "_finished", "_value", "_error", "_callbacks",
                 "started_at", "_timeout", "_on_timeout")

    def __init__(self, timeout: float, on_timeout: Callable[[], ExecTimeoutError]) -> None:
        self._signal = threading.Lock()
        self._signal.acquire()
        self._claim = itertools.count()
        self._finished = False
        self._value: Any = None
        self._error: BaseException | None = None
        self._callbacks: list[Callable[[ExecutionFuture], None]] = []
        self.started_at: float | None = None
        self._timeout = timeout
        self._on_timeout = on_timeout

    def done(self) -> bool:
        return self._finished

    def _finish(self, value: Any = None, error: BaseException | None = None) -> None:
        if next(self._claim):
            return  # someone else (the worker or a timed-out waiter) finished it first
        self._value, self._error = value, error
        self._finished = True
        for callback in self._callbacks:
            callback(self)
        self._signal.release()

    def add_done_callback(self, callback: Callable[[ExecutionFuture], None]) -> None:
        self._callbacks.append(callback)
        if self._finished:
            callback(self)

    def _wait_signal(self, timeout: float | None) -> bool:
        if self._finished and not self._signal.locked():
            return True
        if self._signal.acquire(timeout=-1 if timeout is None else max(timeout, 0.0)):
            self._signal.release()  # let other waiters through
            return True
        return False

    def _wait(self, timeout: float | None) -> None:
        if self._timeout <= 0:
            if not self._wait_signal(timeout):
                raise TimeoutError(f"no result within {timeout} s")
            return
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._wait_signal(self._wait_step(deadline)):
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


class Job:
    """Calls of one model on one replica; ``single`` jobs return one output, not a list."""

    __slots__ = ("model", "calls", "replica", "future", "single")

    def __init__(self, model: Model, calls: Sequence[Any], replica: tuple[LocalCore, ...],
                 future: ExecutionFuture, single: bool = True) -> None:
        self.model, self.calls, self.replica, self.future, self.single = model, calls, replica, future, single


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
        self._inline: dict[Job, float] = {}
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
        _thread_state.core = self.core.index
        pin_to_cpus(self.core.cpus)
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

    def try_inline(self, job: Job) -> bool:
        """Run ``job`` in the calling thread when the core is idle, as ``nrt_execute`` does.

        Returns False (and does nothing) when jobs are queued or a core of the replica is
        busy: the job must then be queued. A :class:`Watchdog` enforces the timeout.
        """
        if not self._queue.empty() or not self._take_slots(job):
            return False
        job.future.started_at = start = time.monotonic()
        self._inline[job] = start
        self._count_switches(job.model, [core.index for core in job.replica])
        try:
            outputs = [self._execute(job.model, call, job.replica[0]) for call in job.calls]
        except BaseException as error:  # noqa: BLE001 - re-raised to the caller
            self._finish_inline(job, start, error=self._wrap(job, error))
        else:
            self._finish_inline(job, start, value=outputs[0] if job.single else outputs)
        return True

    def _take_slots(self, job: Job) -> bool:
        taken = []
        for core in job.replica:
            slot = self._slots[core.index]
            if not slot.try_acquire(job):
                for held in taken:
                    held.release(job)
                return False
            taken.append(slot)
        return True

    def _finish_inline(self, job: Job, start: float, value: Any = None, error: BaseException | None = None) -> None:
        with self._lock:
            if self._inline.pop(job, None) is None:
                return  # the watchdog timed it out: the future holds the timeout error
            for core in job.replica:
                self._slots[core.index].release(job)
        self._count(job, time.monotonic() - start, error)
        job.future._finish(value, error)

    def overdue_inline(self, now: float, timeout: float) -> list[Job]:
        return [job for job, start in list(self._inline.items()) if now - start >= timeout]

    def abandon_inline(self, job: Job) -> None:
        """Time out an inline job: free its cores now; its caller gets the error on return."""
        with self._lock:
            if self._inline.pop(job, None) is None:
                return
            for core in job.replica:
                self._slots[core.index].release(job)
            self.counters.timeouts += 1
        job.future._finish(error=self._timeout_error(job))

    def _count(self, job: Job, elapsed: float, error: BaseException | None) -> None:
        """Executions, latency and errors on the replica's first core; busy time on all of them."""
        counters = self.counters
        counters.executions += len(job.calls)
        counters.latencies.append(elapsed)
        if error is not None:
            counters.errors += 1
        for core in job.replica:
            self._counters[core.index].busy_seconds += elapsed

    def _count_switches(self, model: Model, cores: list[int]) -> None:
        for core in cores:
            counters = self._counters[core]
            if counters.last_model is not None and counters.last_model != model.uid:
                counters.model_switches += 1
            counters.last_model = model.uid

    def _finish(self, job: Job, generation: int, start: float, value: Any = None,
                error: BaseException | None = None) -> None:
        elapsed = time.monotonic() - start
        with self._lock:
            if generation != self._generation:
                return  # abandoned after a timeout: the caller has had its error already
            for core in job.replica:
                self._slots[core.index].release(job)
            self._running = None
        self._count(job, elapsed, error)
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
        return self._timeout_error(job)

    def _timeout_error(self, job: Job) -> ExecTimeoutError:
        return ExecTimeoutError(
            f"model {job.model.name!r} did not finish on NeuronCore NC{self.core.index} within "
            f"NEURON_RT_EXEC_TIMEOUT={job.future._timeout:g} s; the core was reset and stays usable",
            core=self.core.index,
        )


class Watchdog:
    """Times out inline executions that run past ``NEURON_RT_EXEC_TIMEOUT``.

    One daemon thread per runtime, started on the first inline execution, scanning the
    executors a few times per timeout period; it costs the per-call path nothing.
    """

    def __init__(self, executors: Callable[[], Sequence[CoreExecutor]], timeout: float) -> None:
        self._executors = executors
        self._timeout = timeout
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def ensure_started(self) -> None:
        if self._thread is None and self._timeout > 0:
            self._thread = threading.Thread(target=self._scan, name="ncrt-watchdog", daemon=True)
            self._thread.start()

    def _scan(self) -> None:
        period = min(max(self._timeout / 4, 0.01), 1.0)
        while not self._stopped.wait(period):
            now = time.monotonic()
            for executor in self._executors():
                for job in executor.overdue_inline(now, self._timeout):
                    executor.abandon_inline(job)

    def stop(self) -> None:
        self._stopped.set()
