"""One executor per core: a worker thread that runs one model at a time, FIFO.

A job is one or more calls of one model on one replica (a group of cores). Whichever
thread runs it holds every core of the replica while it does, so models sharing a core
never run at the same time on it, and a change of model on a core is counted as a model
switch.

``NEURON_RT_EXEC_TIMEOUT`` (T) is a promise to every caller: no call waits longer than T
without its cores making progress. A job's deadline is T after the later of its
submission and the last call its replica's cores completed, so a queue of calls that
each finish in time never times out, while a call stuck behind a runaway one fails at T
like the runaway itself. Whoever reaches the deadline first — the caller waiting in
``result()`` or the runtime's :class:`Watchdog` — abandons the job: its cores are freed
at once (a fresh worker thread takes over the core), its caller gets
:class:`~ncrt.errors.ExecTimeoutError`, and whatever the runaway call returns later is
discarded. To keep that promise a model never runs in its caller's thread while a
timeout applies, since nothing can take a thread back from a call that does not return.

Where a call runs:

- asynchronous calls, and calls that find their core busy, go to the core's worker
  thread (pinned to the core's host CPUs);
- a synchronous call on an idle core runs on its caller's :class:`Runner`, a companion
  thread of the calling thread kept on the caller's CPU; the caller yields the CPU to it
  a few times before sleeping on the result, and the runner looks for the next call a
  few times before sleeping, so back-to-back calls cost two thread switches on one CPU
  and no wake-up from sleep (not two cross-CPU wake-ups);
- with ``NEURON_RT_EXEC_TIMEOUT=0`` (no timeout, so nothing ever needs abandoning) a
  synchronous call on an idle core runs in the calling thread itself, as ``nrt_execute``.

Models that must only be touched by one thread (``Model.inline`` False) always run on
their core's worker.

Work that is not one job — a NeuronCore Pipeline request, whose calls pass through several
cores' jobs (:mod:`ncrt.pipeline`) — keeps the same promise through the same future: it
settles the future itself (:meth:`ExecutionFuture.settle`) and has ``result()`` enforce its
own deadline (:meth:`ExecutionFuture.enforce`, :class:`Deadline`); the :class:`Watchdog`
scans it when it is registered there (:meth:`Watchdog.watch`).
"""

from __future__ import annotations

import collections
import itertools
import os
import queue
import threading
import time
import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Protocol, Sequence

from .errors import ExecTimeoutError, ExecutionError, ForeignModelError

if TYPE_CHECKING:
    from .model import Model
    from .runtime import LocalCore

__all__ = [
    "CoreCounters",
    "CoreSlot",
    "Deadline",
    "ExecutionFuture",
    "Overdue",
    "Job",
    "CoreExecutor",
    "Runner",
    "Watchdog",
    "current_runner",
    "executor_core",
    "process_generation",
]

LATENCY_WINDOW = 2048
RUNNER_YIELDS = 10  # sched_yield()s a caller makes before it sleeps on its runner's result
WORKER_YIELDS = 16  # sched_yield()s a caller makes before it sleeps on a core worker's result
RUNNER_LINGER = 3  # sched_yield()s a runner makes, looking for its caller's next call, before it sleeps
WORKER_LINGER = 8  # sched_yield()s a core's worker makes, looking for its next job, before it sleeps
_sched_yield: Callable[[], None] = getattr(os, "sched_yield", lambda: time.sleep(0))
_monotonic = time.monotonic
_allocate_lock = threading.Lock
_count_from_zero = itertools.count
_thread_state = threading.local()
_callers = threading.local()
_generation = [0]  # bumped in a forked child: futures and runners of the parent are dead there
_callbacks_lock = threading.Lock()  # only done-callbacks take it: the per-call path does not


def process_generation() -> int:
    """A number that changes in every forked child (0 in a process that never forked)."""
    return _generation[0]


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
    from a thread that runs calls of whatever core its caller asks for (a caller's
    :class:`Runner`, or the caller itself).
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

    ``release(holder)`` does nothing unless ``holder`` holds the slot, so the thread of
    an abandoned job can never free a slot that another job has taken since.
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


class Deadline(Protocol):
    """What ``ExecutionFuture.result()`` enforces: work with a deadline that its waiter may abandon.

    A :class:`Job` is one; so is any work that settles a future itself and passes itself
    to :meth:`ExecutionFuture.enforce` (a NeuronCore Pipeline request).
    """

    submitted: float
    """When the work was submitted: no deadline is earlier than ``submitted + timeout``."""
    runner: Runner | None
    """The caller's runner, if the work's first call runs there (the waiter yields to it first)."""

    @property
    def timeout(self) -> float:
        """``NEURON_RT_EXEC_TIMEOUT`` in seconds (0: none; the waiter then just waits)."""

    def deadline(self) -> float:
        """When the work times out now (``time.monotonic()`` seconds); it may move later with progress."""

    def abandon(self) -> None:
        """Give up on the work past its deadline: settle its future with ExecTimeoutError, free its cores."""


class ExecutionFuture:
    """The result of a job; ``result()`` enforces the execution timeout.

    Completion is signalled by releasing a lock the future was created holding: the
    cheapest wake-up Python has, since this is on every call's path. Exactly one party
    settles a future (``_take``): the thread that ran the job, or whoever abandoned it.
    A caller waiting for a job that runs on another thread first yields its CPU a few
    times (the job's thread is usually on it, or lingering on another one), then sleeps.
    """

    __slots__ = ("_signal", "_claim", "_finished", "_value", "_error", "_callbacks", "_job", "_generation")
    _yields = WORKER_YIELDS  # sched_yield()s before sleeping on a job queued to a core's worker
    _steals = True  # whether a waiter may run a queued job nothing has started (try_steal)

    def __init__(self) -> None:
        signal = self._signal = _allocate_lock()
        signal.acquire()
        self._claim = _count_from_zero()
        self._finished = False
        self._value: Any = None
        self._error: BaseException | None = None
        self._callbacks: list[Callable[[ExecutionFuture], None]] | None = None
        self._job: Job | None = None
        self._generation = _generation[0]

    def done(self) -> bool:
        return self._finished

    def enforce(self, work: Deadline) -> None:
        """Have ``result()`` enforce ``work``'s deadline, abandoning it once it is past.

        A :class:`Job` does this for its own future; work that settles a future itself
        (see :meth:`settle`) passes itself. Only the waiter-side promise changes: the
        work must still settle the future, with its outputs or an error.
        """
        self._job = work

    def settle(self, value: Any = None, error: BaseException | None = None) -> bool:
        """Store the outcome and wake the waiters, unless the future was settled already.

        For work that is not one :class:`Job` (a job's own future is settled by whoever
        runs or abandons it). True if this call settled the future, False if another
        party (the work's end, its abandonment) was first.
        """
        if not self._take():
            return False
        self._settle(value, error)
        return True

    def _take(self) -> bool:
        """Claim the right to settle this future; True for the first claimant only."""
        return not next(self._claim)

    def _settle(self, value: Any = None, error: BaseException | None = None) -> None:
        """Store the outcome and wake the waiters (only after a successful ``_take``)."""
        self._value = value
        self._error = error
        self._finished = True
        self._job = None  # a settled future keeps its outputs, not its model
        self._signal.release()
        if self._callbacks is not None:
            with _callbacks_lock:
                callbacks, self._callbacks = self._callbacks, []
            for callback in callbacks:
                callback(self)

    def add_done_callback(self, callback: Callable[[ExecutionFuture], None]) -> None:
        """Call ``callback(future)`` once, when the job ends (at once if it has ended)."""
        with _callbacks_lock:
            if not self._finished:
                if self._callbacks is None:
                    self._callbacks = []
                self._callbacks.append(callback)
                if not self._finished:
                    return
                self._callbacks.remove(callback)  # settled meanwhile, maybe without seeing it
        callback(self)

    def _wait(self, timeout: float | None) -> None:
        if self._generation != _generation[0]:
            raise ForeignModelError(
                "this ExecutionFuture belongs to the process that forked this one; the job runs (or "
                "ran) there, on cores this process does not hold. Wait for results in that process, "
                "or load the model in this one"
            )
        job = self._job
        if job is not None:
            if (self._steals and job.runner is None and type(job) is Job and job.claim is not None
                    and not job.executor._linger):
                job.executor.try_steal(job)  # its worker is on another CPU, maybe asleep
            runner = job.runner
            yields = self._yield_to(RUNNER_YIELDS if runner is not None else self._yields)
            if runner is not None and not 0 <= yields <= 2:
                runner.recheck = True  # not on the caller's CPU, or a long call: look again next time
            if yields >= 0:
                return
        if job is None or job.timeout <= 0:
            if not self._acquire(timeout):
                raise TimeoutError(f"no result within {timeout} s")
            return
        if timeout is None:  # the usual wait: until the earliest possible deadline, in one call
            first = job.submitted + job.timeout - _monotonic()
            if first > 0 and self._acquire(first):
                return
        until = None if timeout is None else _monotonic() + timeout
        while True:
            now = _monotonic()
            deadline = job.deadline()
            if now >= deadline:
                job.abandon()
            if until is not None and now >= until and not self._finished:
                raise TimeoutError(f"no result within {timeout} s")
            step = deadline - now if until is None else min(deadline, until) - now
            if self._acquire(max(step, 0.0005)):
                return

    def _yield_to(self, times: int) -> int:
        """Give the CPU away up to ``times`` times before sleeping: a short call on the
        caller's runner (on this CPU) or on a lingering worker ends without a wake-up of
        this thread. The number of yields it took, or -1 if the job is still running."""
        for count in range(times):
            if self._finished:
                return count
            _sched_yield()
        return times if self._finished else -1

    def _acquire(self, timeout: float | None) -> bool:
        if self._signal.acquire(timeout=-1 if timeout is None else timeout):
            self._signal.release()  # let other waiters through
            return True
        return self._finished

    def result(self, timeout: float | None = None) -> Any:
        """The outputs; re-raises the job's error, or ExecTimeoutError past the exec timeout.

        ``timeout`` bounds this wait only (``TimeoutError``, the job goes on).
        """
        if not self._finished:
            self._wait(timeout)
        if self._error is not None:
            raise self._error
        return self._value

    def exception(self, timeout: float | None = None) -> BaseException | None:
        if not self._finished:
            self._wait(timeout)
        return self._error


class Job:
    """Calls of one model on one replica; ``single`` jobs return one output, not a list.

    ``submitted`` starts the timeout clock (now, unless the work waited elsewhere before
    becoming this job: a NeuronCore Pipeline call's clock runs from the end of its previous
    stage); ``token`` is what the runtime needs to give
    back (in-flight limits, replica counts) once the job is settled, whoever settles it.
    """

    __slots__ = ("model", "calls", "replica", "future", "single", "submitted", "executor", "runner", "token",
                 "claim", "seq")

    def __init__(self, model: Model, calls: Sequence[Any], replica: tuple[LocalCore, ...],
                 future: ExecutionFuture, single: bool = True, token: Any = None,
                 submitted: float | None = None) -> None:
        self.model = model
        self.calls = calls
        self.replica = replica
        self.future = future
        self.single = single
        self.token = token
        self.executor: CoreExecutor | None = None
        self.runner: Runner | None = None
        self.claim: Iterator[int] | None = None  # queued jobs: whoever starts it first (worker or waiter)
        self.seq = 0  # queued jobs: the job's number in its core's queue
        self.submitted = _monotonic() if submitted is None else submitted
        future._job = self

    # the Deadline protocol, for the waiter in ExecutionFuture.result()

    @property
    def timeout(self) -> float:
        executor = self.executor
        return executor.timeout if executor is not None else 0.0  # not placed yet: no deadline

    def deadline(self) -> float:
        return self.executor.deadline(self)

    def abandon(self) -> None:
        self.executor.abandon(self)


class CoreExecutor:
    """The worker thread of one core, with its queue, counters and timeout bookkeeping.

    ``progress`` (shared by the runtime's executors, by per-process core index) holds the
    time each core last completed a call; ``release(job)`` gives back what the runtime
    reserved for a job once the job is settled.
    """

    def __init__(self, core: LocalCore, slots: Sequence[CoreSlot], counters: Sequence[CoreCounters],
                 execute: Callable[[Model, Any, LocalCore], Any] | None = None, *, timeout: float = 0.0,
                 progress: list[float] | None = None, release: Callable[[Job], None] | None = None) -> None:
        self.core = core
        self.timeout = timeout
        self._slots = slots
        self._counters = counters
        self._execute = execute
        self._progress = progress if progress is not None else [0.0] * (core.index + 1)
        self._release = release or (lambda job: None)
        self._queue: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._generation = 0
        self._running: Job | None = None
        self._elsewhere: dict[Job, None] = {}  # jobs of this core running on runners or inline
        self._cpus = frozenset(core.cpus)
        self._linger = False  # whether the worker looks for its next job a while before sleeping
        self._sequence = _count_from_zero()  # queued jobs, numbered in submission order
        self._head = 0  # the number of the oldest queued job that nothing has started
        self._lock = threading.Lock()
        self._worker: threading.Thread | None = None
        self._start_worker()

    @property
    def counters(self) -> CoreCounters:
        return self._counters[self.core.index]

    def _start_worker(self) -> None:
        thread = threading.Thread(
            target=self._work, args=(self._generation,), name=f"ncrt-nc{self.core.index}", daemon=True
        )
        self._worker = thread  # the current one (a worker stuck past its deadline is replaced)
        thread.start()

    # -- placing jobs --------------------------------------------------------------------

    def submit(self, job: Job) -> None:
        """Queue ``job`` for this core's worker thread.

        The worker lingers after the job only when it was submitted from one of the core's
        CPUs: a caller elsewhere is better served by running the job itself if it ends up
        waiting for it before the worker has started (:meth:`try_steal`).
        """
        job.executor = self
        job.claim = _count_from_zero()
        job.seq = next(self._sequence)
        self._linger = _current_cpu() in self._cpus
        self._queue.put(job)

    def stop(self) -> None:
        self._queue.put(None)

    def try_runner(self, job: Job, runner: Runner | None = None) -> bool:
        """Hand ``job`` to the calling thread's :class:`Runner` if the core is idle.

        ``runner``: another runner to hand it to instead, idle or about to be; a runner's
        own thread (:func:`current_runner`) may hand itself the next call of the work it
        is finishing, which it then runs as soon as it returns to its loop (a NeuronCore
        Pipeline request's next stage). Returns False (and does nothing) when that runner
        is busy, jobs are queued, or a core of the replica is busy: the job must then be
        queued.
        """
        runner = runner or caller_runner()
        if not runner.idle or not self._queue.empty() or not self._take_slots(job):
            return False
        job.executor, job.runner = self, runner
        self._elsewhere[job] = None
        runner.hand(self, job)
        return True

    def try_steal(self, job: Job) -> bool:
        """Run a queued job that nothing has started on its waiting caller's runner.

        A caller that waits for its job anyway loses no overlap by running it, and saves
        the cross-CPU wake-ups of a worker on another CPU. Only a job at the head of the
        queue is taken (FIFO order holds), only on idle cores, and only a job that may run
        outside the core's worker (``Model.inline``).
        """
        claim = job.claim
        if claim is None or not job.model.inline or self._head != job.seq:
            return False  # not queued here, bound to the worker, or behind another queued job
        runner = caller_runner()
        if not runner.idle or not self._take_slots(job):
            return False
        if next(claim):  # the worker started it meanwhile
            self._free_slots(job)
            return False
        self._head = job.seq + 1
        job.runner = runner
        self._elsewhere[job] = None
        runner.hand(self, job)
        return True

    def try_inline(self, job: Job) -> bool:
        """Run ``job`` in the calling thread if the core is idle (only where no timeout applies)."""
        if not self._queue.empty() or not self._take_slots(job):
            return False
        job.executor = self
        self.run_taken(job)
        return True

    def _take_slots(self, job: Job) -> bool:
        replica = job.replica
        if len(replica) == 1:
            slot = self._slots[replica[0].index]
            if not slot._lock.acquire(False):
                return False
            slot.holder = job
            return True
        taken = []
        for core in job.replica:
            slot = self._slots[core.index]
            if not slot.try_acquire(job):
                for held in taken:
                    held.release(job)
                return False
            taken.append(slot)
        return True

    # -- running -------------------------------------------------------------------------

    def _work(self, generation: int) -> None:
        _thread_state.core = self.core.index
        pin_to_cpus(self.core.cpus)
        while generation == self._generation:
            job = self._next_job()
            if job is None:
                return
            if next(job.claim):
                continue  # run by its waiting caller (try_steal)
            self._head = job.seq + 1
            if job.future._finished:
                continue  # abandoned while it waited in the queue
            self._running = job
            for core in job.replica:
                self._slots[core.index].acquire(job)
            if job.future._finished:  # abandoned while it waited for a shared core
                self._free_slots(job)
                continue
            self.run_taken(job)
            if self._running is job:
                self._running = None
            del job  # hold no model while waiting for the next job

    def _next_job(self) -> Job | None:
        """The next queued job: looked for a few times, yielding the CPU in between, before
        sleeping, so a caller submitting job after job finds this thread awake."""
        queue_ = self._queue
        if self._linger:
            for _ in range(WORKER_LINGER):
                try:
                    return queue_.get_nowait()
                except queue.Empty:
                    _sched_yield()
        return queue_.get()

    def run_taken(self, job: Job) -> None:
        """Run every call of ``job`` in this thread; the job's slots are already held."""
        start = _monotonic()
        model, replica = job.model, job.replica
        if len(replica) > 1 or self._counters[replica[0].index].last_model != model.uid:
            self._count_switches(model, replica)
        execute, core = self._execute or model.runner, replica[0]
        try:
            if job.single:
                value = execute(model, job.calls[0], core)
            else:
                value = []
                for call in job.calls:
                    value.append(execute(model, call, core))
                    self._mark_progress(replica, _monotonic())
        except BaseException as error:  # noqa: BLE001 - re-raised to the caller
            self._complete(job, start, error=self._wrap(job, error))
        else:
            self._complete(job, start, value=value)

    def _complete(self, job: Job, start: float, value: Any = None, error: BaseException | None = None) -> None:
        """Settle a job that ran to its end, unless it was abandoned meanwhile."""
        future = job.future
        if next(future._claim):
            return  # abandoned after its deadline: the caller has had its error; drop the result
        now = _monotonic()
        elapsed = now - start
        if job.runner is not None:
            self._elsewhere.pop(job, None)
        counters = self._counters[self.core.index]
        counters.executions += len(job.calls)
        counters.latencies.append(elapsed)
        if error is not None:
            counters.errors += 1
        slots, progress, all_counters = self._slots, self._progress, self._counters
        for core in job.replica:  # one pass: free the slot, note the progress, add the busy time
            index = core.index
            slot = slots[index]
            if slot.holder is job:
                slot.holder = None
                slot._lock.release()
            progress[index] = now
            all_counters[index].busy_seconds += elapsed
        self._release(job)
        future._settle(value, error)

    def _free_slots(self, job: Job) -> None:
        for core in job.replica:
            self._slots[core.index].release(job)

    def _mark_progress(self, replica: tuple[LocalCore, ...], now: float) -> None:
        progress = self._progress
        for core in replica:
            progress[core.index] = now

    def _count_switches(self, model: Model, replica: tuple[LocalCore, ...]) -> None:
        uid = model.uid
        for core in replica:
            counters = self._counters[core.index]
            if counters.last_model != uid:
                if counters.last_model is not None:
                    counters.model_switches += 1
                counters.last_model = uid

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

    # -- timeouts ------------------------------------------------------------------------

    def deadline(self, job: Job) -> float:
        """When ``job`` times out: T after its submission or its cores' last progress."""
        base = job.submitted
        progress = self._progress
        for core in job.replica:
            if progress[core.index] > base:
                base = progress[core.index]
        return base + self.timeout

    def overdue(self, now: float) -> list[Job]:
        """The running jobs of this core that are past their deadline."""
        running = [self._running, *list(self._elsewhere)]
        return [job for job in running if job is not None and not job.future._finished
                and now >= self.deadline(job)]

    def abandon(self, job: Job) -> None:
        """Give up on ``job`` past its deadline: free its cores now and fail its caller.

        A job still queued is dropped from the queue; a job running on this core's worker
        leaves that thread to finish in the background while a fresh worker takes over;
        a job running on a caller's runner retires that runner.
        """
        future = job.future
        if not future._take():
            return  # it finished (or was abandoned) meanwhile
        started = self._retire_thread_of(job)
        self._free_slots(job)
        self._elsewhere.pop(job, None)
        self.counters.timeouts += 1
        self._release(job)
        future._settle(error=self._timeout_error(job, started))

    def _retire_thread_of(self, job: Job) -> bool:
        """Stop relying on the thread stuck in ``job``; False if the job never started."""
        if job.runner is not None:
            job.runner.retire()
            return True
        with self._lock:
            if self._running is not job:
                return False
            self._generation += 1
            self._running = None
            self._start_worker()
        return True

    def _timeout_error(self, job: Job, started: bool) -> ExecTimeoutError:
        timeout = f"NEURON_RT_EXEC_TIMEOUT={self.timeout:g} s"
        if started:
            problem = f"did not finish on NeuronCore NC{self.core.index} within {timeout}"
        else:
            problem = (f"waited {timeout} for NeuronCore NC{self.core.index}, busy with other work "
                       "that made no progress, and never started")
        return ExecTimeoutError(
            f"model {job.model.name!r} {problem}; the core was reset and stays usable, "
            "the late result (if any) is discarded",
            core=self.core.index,
        )


# --------------------------------------------------------------------------- runners

_sched_getcpu: Callable[[], int] | None | bool = False  # False: not looked up yet


def _current_cpu() -> int | None:
    """The CPU the calling thread runs on (``sched_getcpu``), or None where unknown.

    Called holding the GIL (``ctypes.PyDLL``): it is a read of a per-CPU value, and a
    release of the GIL for it would let every other thread of the process in first.
    """
    global _sched_getcpu
    if _sched_getcpu is False:
        try:
            import ctypes

            _sched_getcpu = ctypes.PyDLL(None, use_errno=True).sched_getcpu
        except (ImportError, OSError, AttributeError):
            _sched_getcpu = None
    if _sched_getcpu is None:
        return None
    cpu = _sched_getcpu()
    return cpu if cpu >= 0 else None


class Runner:
    """A companion thread of one caller thread: it runs that caller's synchronous calls.

    The caller waits for the result with its deadline, so a call that never returns
    costs the caller T, not its thread; the runner stuck in it is then retired and the
    caller gets a new one. The runner follows the caller's CPU (its affinity is set to
    the CPU the caller last ran on), as the call would have run there inline.

    The handoff is one attribute: the caller stores the call in ``_item`` and yields its
    CPU; the runner, lingering on the same CPU after its previous call, finds it there.
    Only a runner that has stopped lingering sleeps, on ``_wake``, and only then does the
    caller wake it.
    """

    __slots__ = ("_item", "_wake", "sleeping", "retired", "_thread", "_cpu", "_last", "recheck", "__weakref__")

    def __init__(self) -> None:
        self._item: tuple[CoreExecutor, Job] | None = None
        self._wake: queue.SimpleQueue[None] = queue.SimpleQueue()
        self.sleeping = False
        self.retired = False
        self._cpu: int | None = None
        self.recheck = True  # look up the caller's CPU at the next hand (a wait had to sleep)
        self._last: ExecutionFuture | None = None  # the future of the job handed last
        self._thread = threading.Thread(target=self._loop, name="ncrt-runner", daemon=True)
        self._thread.start()
        _LIVE_RUNNERS.add(self)

    @property
    def idle(self) -> bool:
        """Whether every call handed to this runner has ended (a caller may hand several
        jobs before waiting, as ``run_many(asynchronous=False)`` does; only the first of
        them goes to the runner)."""
        last = self._last
        return last is None or last._finished

    def hand(self, executor: CoreExecutor, job: Job) -> None:
        """Run ``job`` (whose slots the caller took) on this runner.

        The caller's CPU is looked up again only after a wait that had to sleep (the sign
        that the two threads are apart, or that the call was long enough not to matter).
        """
        if self.recheck:
            self.recheck = False
            cpu = _current_cpu()
            if cpu != self._cpu and cpu is not None:
                self._follow(cpu)
        self._last = job.future
        self._item = (executor, job)
        if self.sleeping:
            self._wake.put(None)

    def _follow(self, cpu: int) -> None:
        try:
            os.sched_setaffinity(self._thread.native_id, (cpu,))
        except (AttributeError, OSError, TypeError, ValueError):
            pass
        self._cpu = cpu

    def retire(self) -> None:
        """Stop taking calls (the runner is stuck in one, or its caller is gone)."""
        self.retired = True
        self._wake.put(None)

    def _loop(self) -> None:
        _thread_state.runner = self
        while True:
            item = self._next()
            if item is None:
                return
            executor, job = item
            executor.run_taken(job)
            del item, executor, job  # hold no model while waiting for the next call

    def _next(self) -> tuple[CoreExecutor, Job] | None:
        """The next call (None once retired): looked for a few times, yielding the CPU in
        between, before sleeping.

        A caller making calls back to back hands the next one over while this thread is
        still awake on its CPU, so neither thread pays a wake-up from sleep. Going to
        sleep, the runner says so before it looks a last time, and the caller looks at
        that flag after storing the call: one of the two always sees the other.
        """
        for _ in range(RUNNER_LINGER):
            item = self._item
            if item is not None:
                self._item = None
                return None if self.retired else item
            _sched_yield()
        self.sleeping = True
        while self._item is None and not self.retired:
            self._wake.get()
        self.sleeping = False
        item, self._item = self._item, None
        return None if self.retired else item


_LIVE_RUNNERS: weakref.WeakSet[Runner] = weakref.WeakSet()


def current_runner() -> Runner | None:
    """The :class:`Runner` whose thread this is (None in any other thread)."""
    return getattr(_thread_state, "runner", None)


class _CallerToken:
    """Lives in the caller thread's locals; when the thread ends, its runner stops."""

    __slots__ = ("__weakref__",)


def caller_runner() -> Runner:
    """The calling thread's :class:`Runner`, started on first use (and after a retirement)."""
    runner = getattr(_callers, "runner", None)
    if runner is None or runner.retired or _callers.generation != _generation[0]:
        runner = Runner()
        token = _CallerToken()
        weakref.finalize(token, runner.retire)
        _callers.runner, _callers.token, _callers.generation = runner, token, _generation[0]
    return runner


# --------------------------------------------------------------------------- watchdog


class Overdue(Protocol):
    """Work the :class:`Watchdog` scans besides the executors' jobs (see :meth:`Watchdog.watch`)."""

    def overdue(self, now: float) -> Iterable[Any]:
        """The pieces of work past their deadline at ``now``."""

    def abandon(self, work: Any) -> None:
        """Give one of them up (as :meth:`CoreExecutor.abandon` gives up a job)."""


class Watchdog:
    """Abandons running jobs past their deadline, whether or not anyone waits for them.

    Callers waiting in ``result()`` enforce their own deadline exactly; this thread frees
    cores held by jobs nobody waits for (fire-and-forget submissions, callbacks), so the
    core serves other models. One daemon thread per runtime, started on the first job,
    scanning every ``min(1 s, T/20)``; it costs the per-call path nothing. Work that waits
    outside any core's queue (requests between NeuronCore Pipeline stages) is scanned too
    once its owner registers with :meth:`watch`.
    """

    def __init__(self, executors: Callable[[], Sequence[CoreExecutor]], timeout: float) -> None:
        self._executors = executors
        self._timeout = timeout
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._watched: weakref.WeakSet[Overdue] = weakref.WeakSet()

    def watch(self, source: Overdue) -> None:
        """Scan ``source`` too: abandon what ``source.overdue(now)`` lists with ``source.abandon``.

        Held weakly: a source nobody else keeps (an unloaded model's pipeline) drops out.
        """
        with self._lock:
            self._watched.add(source)

    @property
    def period(self) -> float:
        return min(max(self._timeout / 20, 0.005), 1.0)

    def ensure_started(self) -> None:
        if self._thread is None and self._timeout > 0:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._scan, name="ncrt-watchdog", daemon=True)
                    self._thread.start()

    def _scan(self) -> None:
        while not self._stopped.wait(self.period):
            now = time.monotonic()
            for executor in self._executors():
                for job in executor.overdue(now):
                    executor.abandon(job)
            with self._lock:
                sources = list(self._watched)
            for source in sources:
                for work in source.overdue(now):
                    source.abandon(work)

    def stop(self) -> None:
        self._stopped.set()


# --------------------------------------------------------------------------- interpreter exit


def quiesce(executors: Iterable[CoreExecutor], watchdogs: Iterable[Watchdog], wait: float) -> list[str]:
    """Let ncrt's threads end before the interpreter finalizes; the names of those that did not.

    Called at interpreter exit, after the executors and watchdogs were stopped: every
    runner is retired too, and each thread gets until ``wait`` seconds from now to finish
    the call it is in and return. A daemon thread still running once finalization starts
    is ended by the interpreter the next time it takes the GIL, and if that happens inside
    a framework's C++ code (a torch tensor freed as the thread's last frame is cleared
    releases the GIL), the unwinding aborts the process ("terminate called without an
    active exception"). A thread stuck in a call that never returns is left behind, and
    threads already given up on (past their deadline) are not waited for.
    """
    runners = [runner for runner in list(_LIVE_RUNNERS) if not runner.retired]  # retired: ended, or stuck
    for runner in runners:
        runner.retire()
    threads = [executor._worker for executor in executors] + [watchdog._thread for watchdog in watchdogs]
    threads += [runner._thread for runner in runners]
    until = time.monotonic() + wait
    left = []
    for thread in threads:
        if thread is None or thread is threading.current_thread():
            continue
        thread.join(max(0.0, until - time.monotonic()))
        if thread.is_alive():
            left.append(thread.name)
    return left


def _after_fork_in_child() -> None:
    """A forked child has none of its parent's threads: mark everything of theirs dead."""
    _generation[0] += 1


os.register_at_fork(after_in_child=_after_fork_in_child)
