"""Request coalescing: concurrent small requests for one model joined into compiled-size executions.

Seed 003's serving pattern is many host threads each sending small requests. A model
compiled at batch 8 with dynamic batching would pad every batch-1 request to 8 rows and
run it alone, while other requests wait for the same cores. The model's
:class:`Coalescer` joins them instead:

- A request smaller than the model's coalescing limit (the compiled batch size, or
  ``NCRT_COALESCE_MAX_BATCH`` / :func:`configure`'s ``max_batch`` rows if larger) goes
  through the coalescer; larger ones run as before (cut into chunks, spread over replicas).
- If a replica has no coalesced execution in flight and nothing is waiting, the request
  runs at once, on that replica, exactly as it would without coalescing (with no delay,
  nothing else is waiting to be joined).
- Otherwise it waits, in arrival order. When a replica frees up, the requests waiting are
  joined into one execution of up to the limit: their rows side by side along the batch
  dimension (the padding slots of the compiled batch filled with other callers' rows
  instead of copies), padded to whole compiled batches, run as one job on that replica,
  and each request gets exactly its own rows of the outputs back.
- With a maximum queue delay (``NCRT_COALESCE_MAX_DELAY_US``, per model
  :func:`configure`'s ``max_delay_us``; Triton's ``max_queue_delay_microseconds``), a
  partly filled execution waits up to that long after its oldest request arrived for more
  requests, unless it fills up first. The default, 0, joins only what is already waiting.

Guarantees:

- **Order**: requests are taken in arrival order; a request that cannot join an
  execution (other shapes, dtypes or non-tensor arguments, or too many rows) holds back
  every later request of the same calling thread, so no caller's requests are reordered.
- **Errors** reach only the requests they concern: requests that cannot be joined run
  apart; an execution that fails is run again request by request, so the error goes to
  the request that causes it and the others get their outputs.
- **Timeouts**: ``NEURON_RT_EXEC_TIMEOUT`` holds for each request as for a call of its
  own: T after the later of its submission and its cores' last progress. A coalesced job
  counts from its oldest request's submission; a request still waiting to be joined when
  its deadline passes fails alone ("never started"), and the requests of an execution that
  times out fail with it.
- **Limits**: each execution is one inference for ``NEURON_MAX_NUM_INFERS``; requests
  waiting to be joined are bounded by the rows that many executions hold (beyond that a
  caller waits, or gets ``QueueFullError`` with ``NCRT_QUEUE_FULL=error``).
"""

from __future__ import annotations

import contextlib
import contextvars
import heapq
import os
import threading
import time
from collections import deque
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Callable, Iterator

from .batching import Layout, TensorOps, flatten, join_flat, scatter
from .errors import BadInputError, ExecTimeoutError, QueueFullError
from .executor import ExecutionFuture
from .logs import get_logger

if TYPE_CHECKING:
    from .config import Config
    from .model import LoadedModel
    from .parallel import DataParallelRunner

__all__ = [
    "CoalesceSettings",
    "Coalescer",
    "RequestFuture",
    "configure",
    "max_batch",
    "settings_of",
]

log = get_logger("NRT")
_monotonic = time.monotonic
_limit_override: contextvars.ContextVar[int | None] = contextvars.ContextVar("ncrt_coalesce_max_batch",
                                                                            default=None)


@dataclass(frozen=True)
class CoalesceSettings:
    """How a model's requests are joined: on or off, the most rows, the delay (seconds)."""

    enabled: bool = True
    max_batch: int | None = None  # None: the compiled batch size
    max_delay: float = 0.0

    @classmethod
    def from_config(cls, config: Config) -> CoalesceSettings:
        return cls(config.coalesce, config.coalesce_max_batch, config.coalesce_max_delay_us / 1e6)

    def limit(self, compiled_batch: int) -> int:
        """The most rows one execution holds: never fewer than the compiled batch."""
        override = _limit_override.get()
        wanted = override if override is not None else self.max_batch
        return max(compiled_batch, wanted or compiled_batch)


def settings_of(loaded: LoadedModel) -> CoalesceSettings:
    """The model's own settings (:func:`configure`), else the runtime's (``NCRT_COALESCE*``)."""
    return loaded.coalescing or loaded.runtime.coalescing


def _loaded_of(model: Any) -> LoadedModel:
    from .model import LoadedModel

    if isinstance(model, LoadedModel):
        return model
    placed = getattr(model, "placed", None)  # a framework model that places itself on first use
    loaded = placed() if callable(placed) else getattr(model, "loaded", None)
    if not isinstance(loaded, LoadedModel):
        raise BadInputError(
            f"cannot configure coalescing for a {type(model).__name__}; accepted: a LoadedModel or a "
            "framework model placed by ncrt (NeuronModule, DataParallel, NeuronModel, NeuronExecutor)"
        )
    return loaded


def configure(model: Any, *, enabled: bool | None = None, max_batch: int | None = None,
              max_delay_us: float | None = None) -> CoalesceSettings:
    """Set how ``model``'s concurrent requests are joined; unnamed settings are kept.

    ``model``: a :class:`~ncrt.LoadedModel` or a framework model placed by ncrt (its
    current placement). ``max_batch``: the most rows of one execution (at least the
    compiled batch size is always joined); ``max_delay_us``: how long a partly filled
    execution waits for more requests. Returns the settings now in force.
    """
    loaded = _loaded_of(model)
    settings = settings_of(loaded)
    if enabled is not None:
        settings = replace(settings, enabled=bool(enabled))
    if max_batch is not None:
        if isinstance(max_batch, bool) or not isinstance(max_batch, int) or max_batch < 1:
            raise BadInputError(f"max_batch={max_batch!r} is not valid; accepted: a whole number of rows >= 1")
        settings = replace(settings, max_batch=max_batch)
    if max_delay_us is not None:
        if isinstance(max_delay_us, bool) or not isinstance(max_delay_us, (int, float)) or not 0 <= max_delay_us < 1e9:
            raise BadInputError(f"max_delay_us={max_delay_us!r} is not valid; accepted: microseconds from 0 "
                                "to 10^9")
        settings = replace(settings, max_delay=max_delay_us / 1e6)
    loaded.coalescing = settings
    return settings


@contextlib.contextmanager
def max_batch(rows: int | None) -> Iterator[None]:
    """Within this block (this thread or task), coalesced executions hold up to ``rows`` rows.

    What ``tensorflow.neuron``'s ``feed(max_batch=N)`` uses: it overrides the model's
    setting for the requests made inside the block. ``None`` changes nothing.
    """
    token = _limit_override.set(rows) if rows is not None else None
    try:
        yield
    finally:
        if token is not None:
            _limit_override.reset(token)


# --------------------------------------------------------------------------- signatures


_DTYPE_NAMES: dict[Any, str] = {}


def _dtype_name(dtype: Any) -> str:
    """``str(dtype)``, remembered per dtype (it costs microseconds on every request's path)."""
    try:
        return _DTYPE_NAMES[dtype]
    except KeyError:
        name = _DTYPE_NAMES[dtype] = str(dtype)
        return name
    except TypeError:  # an unhashable dtype
        return str(dtype)


def _signature(tensors: list[Any], layout: Layout, ops: TensorOps, dim: int) -> Any:
    """What two requests must share to be joined: their layout (containers and every
    non-tensor argument, compared with ``==``), every tensor's shape except along ``dim``
    and its dtype."""
    shapes = []
    for tensor in tensors:
        shape = ops.shape(tensor)
        shapes.append((shape[:dim] + shape[dim + 1:], _dtype_name(ops.dtype(tensor))))
    return (layout.key, tuple(shapes))


# --------------------------------------------------------------------------- requests


class Request:
    """One caller's inputs waiting to be joined, and the future its caller waits on."""

    __slots__ = ("inputs", "tensors", "layout", "rows", "key", "caller", "submitted", "limit", "alone", "future")

    def __init__(self, inputs: Any, rows: int, limit: int, coalescer: Coalescer) -> None:
        runner = coalescer.runner
        self.inputs = inputs
        self.tensors, self.layout = flatten(inputs, runner.ops)  # walked once: joined tensor by tensor
        self.rows = rows
        self.key = _signature(self.tensors, self.layout, runner.ops, runner.dim)
        self.caller = threading.get_ident()
        self.submitted = _monotonic()
        self.limit = limit
        self.alone = False  # run on its own (after an execution it was part of failed)
        self.future = RequestFuture(self, coalescer)


class RequestFuture(ExecutionFuture):
    """The future of one request: its own rows of a coalesced execution's outputs.

    While the request waits to be joined it has no job: its waiter enforces the
    request's own deadline. Once joined, it waits like any job's future, on the coalesced
    job's deadline (whoever abandons that job fails every request in it). It sleeps
    rather than yielding its CPU (many such waiters share a few CPUs with the job), and
    never runs the coalesced job itself (that job belongs on its replica's own CPUs).
    """

    __slots__ = ("_request", "_coalescer")
    _yields = 0
    _steals = False

    def __init__(self, request: Request, coalescer: Coalescer) -> None:
        super().__init__()
        self._request = request
        self._coalescer = coalescer

    def _wait(self, timeout: float | None) -> None:
        until = None if timeout is None else _monotonic() + timeout
        coalescer = self._coalescer
        while self._job is None and not self._finished:
            deadline = coalescer.pending_deadline(self._request)
            now = _monotonic()
            if now >= deadline:
                coalescer.expire(self._request)
                continue
            if until is not None and now >= until:
                raise TimeoutError(f"no result within {timeout} s")
            step = min(deadline, until if until is not None else deadline, now + 1.0) - now
            if self._acquire(max(step, 0.0005)):
                return
        if not self._finished:
            super()._wait(None if until is None else max(0.0, until - _monotonic()))

    def _resolve(self, value: Any = None, error: BaseException | None = None) -> None:
        if self._take():
            self._settle(value, error)


# --------------------------------------------------------------------------- the coalescer


class Coalescer:
    """Joins concurrent small requests for one placed model (one per :class:`LoadedModel`).

    ``runner`` says how an execution of some rows runs on one replica (the chunking,
    padding and joining of :class:`~ncrt.parallel.DataParallelRunner`). At most one
    coalesced execution is in flight per replica; the next one is formed from what waits
    when one ends.
    """

    def __init__(self, loaded: LoadedModel, runner: DataParallelRunner) -> None:
        self.loaded = loaded
        self.runner = runner
        self._lock = threading.Lock()
        self._room = threading.Condition(self._lock)  # callers waiting for room in the queue
        self._pending: deque[Request] = deque()
        self._pending_rows = 0
        self._busy = [False] * len(loaded.replicas)  # a coalesced execution in flight on the replica
        self._armed: float | None = None  # when the delay timer fires next for this coalescer
        self.executions = 0  # jobs run by the coalescer (joined ones and requests run at once)
        self.joined = 0  # requests that ran as part of a joined execution
        self.largest = 0  # the most rows one execution held

    # -- the caller's side ---------------------------------------------------------------

    def run(self, inputs: Any, rows: int, limit: int) -> Any:
        """The outputs of one request of ``rows`` rows (``rows < limit``), waiting for them."""
        replica = self._claim_idle()
        if replica is not None:
            return self._run_at_once(inputs, rows, replica)
        return self.submit(inputs, rows, limit).result()

    def submit(self, inputs: Any, rows: int, limit: int) -> RequestFuture:
        """Queue one request; its future gives its own rows of the outputs."""
        request = Request(inputs, rows, limit, self)
        with self._lock:
            self._wait_for_room(rows, limit)
            self._pending.append(request)
            self._pending_rows += rows
        self._dispatch()
        return request.future

    def _claim_idle(self) -> int | None:
        """An idle replica, marked busy, if nothing waits and no delay applies (else None)."""
        if self._pending or settings_of(self.loaded).max_delay > 0:
            return None
        with self._lock:
            if self._pending:
                return None
            return self._mark_busy()

    def _run_at_once(self, inputs: Any, rows: int, replica: int) -> Any:
        """A request that found its model idle: run as without coalescing, on ``replica``."""
        self.executions += 1
        try:
            return self.runner.run_on(inputs, rows, replica)
        finally:
            with self._lock:
                self._busy[replica] = False
            self._dispatch()

    def _wait_for_room(self, rows: int, limit: int) -> None:
        """Bound the rows waiting to be joined (called holding the lock)."""
        runtime = self.loaded.runtime
        room = runtime.inflight_limit * limit
        if self._pending_rows + rows <= room or not self._pending:
            return
        if runtime.config.queue_full != "block":
            raise QueueFullError(
                f"{self._pending_rows} rows already wait to be joined for model {self.loaded.name!r} "
                f"({runtime.inflight_limit} executions of up to {limit} rows, NEURON_MAX_NUM_INFERS); wait "
                "for results, raise the limit, or set NCRT_QUEUE_FULL=block to wait instead of failing"
            )
        while self._pending and self._pending_rows + rows > room:
            self._room.wait(0.05)

    # -- deadlines -----------------------------------------------------------------------

    def pending_deadline(self, request: Request) -> float:
        """When a request still waiting to be joined times out: T after the later of its
        submission and the last progress of any of the model's cores (inf without a timeout)."""
        runtime = self.loaded.runtime
        timeout = runtime.config.exec_timeout
        if timeout <= 0:
            return float("inf")
        progress = runtime._progress
        base = request.submitted
        for index in self.loaded.cores:
            if progress[index] > base:
                base = progress[index]
        return base + timeout

    def expire(self, request: Request) -> None:
        """Fail a request whose deadline passed while it waited to be joined."""
        with self._lock:
            try:
                self._pending.remove(request)
            except ValueError:
                return  # joined meanwhile: its job's deadline applies now
            self._pending_rows -= request.rows
            self._room.notify_all()
        timeout = self.loaded.runtime.config.exec_timeout
        core = self.loaded.replicas[0][0].index
        request.future._resolve(error=ExecTimeoutError(
            f"model {self.loaded.name!r} waited NEURON_RT_EXEC_TIMEOUT={timeout:g} s to be joined into an "
            f"execution on NeuronCore NC{core}, busy with other work that made no progress, and never "
            "started; the cores stay usable",
            core=core,
        ))

    # -- forming executions --------------------------------------------------------------

    def _mark_busy(self) -> int | None:
        """The least-loaded replica without a coalesced execution, marked busy (lock held)."""
        outstanding = self.loaded.outstanding
        free = [index for index, busy in enumerate(self._busy) if not busy]
        if not free:
            return None
        replica = min(free, key=outstanding.__getitem__)
        self._busy[replica] = True
        return replica

    def _dispatch(self) -> None:
        """Start executions on free replicas from what waits, while any is ready."""
        while True:
            with self._lock:
                if not self._pending or all(self._busy):
                    return
                batch = self._take_ready()
                if batch is None:
                    return
                replica = self._mark_busy()
            self._launch(batch, replica)

    def _take_ready(self) -> list[Request] | None:
        """The requests of the next execution, taken from the queue (lock held); None when
        the head is still within its delay and the execution is not full (a timer is armed)."""
        head = self._pending[0]
        if head.alone:
            return self._take([head])
        batch, rows, blocked, kept = [], 0, set(), []
        for request in self._pending:
            if rows == head.limit:
                break
            if (request.caller in blocked or request.alone or rows + request.rows > head.limit
                    or request.key != head.key):
                blocked.add(request.caller)
                kept.append(request)
                continue
            batch.append(request)
            rows += request.rows
        delay = settings_of(self.loaded).max_delay
        if rows < head.limit and delay > 0:
            due = head.submitted + delay
            if _monotonic() < due:
                self._arm(due)
                return None
        return self._take(batch)

    def _take(self, batch: list[Request]) -> list[Request]:
        chosen = {id(request) for request in batch}
        self._pending = deque(request for request in self._pending if id(request) not in chosen)
        self._pending_rows -= sum(request.rows for request in batch)
        self._room.notify_all()
        return batch

    def _arm(self, due: float) -> None:
        if self._armed is None or due < self._armed:
            self._armed = due
            _TIMER.schedule(due, self._on_timer)

    def _on_timer(self) -> None:
        with self._lock:
            self._armed = None
        self._dispatch()

    def _launch(self, batch: list[Request], replica: int) -> None:
        """Queue ``batch`` as one job on ``replica``; its callback hands every request its rows."""
        rows = sum(request.rows for request in batch)
        inputs = batch[0].inputs if len(batch) == 1 else join_flat(
            list(zip(*(request.tensors for request in batch))), batch[0].layout, self.runner.ops, self.runner.dim)
        try:
            future, lengths = self.runner.launch(inputs, rows, replica)
        except QueueFullError:  # in-flight limit reached by other work: retry shortly, never block here
            self._put_back(batch, replica)
            self._arm(_monotonic() + 0.001)
            return
        except BaseException as error:  # noqa: BLE001 - e.g. the model was unloaded: tell its requests
            self._finish(batch, replica, error)
            return
        self.executions += 1
        if len(batch) > 1:
            self.joined += len(batch)
        self.largest = max(self.largest, rows)
        job = future._job
        if job is not None:
            job.submitted = min(request.submitted for request in batch)  # each request's clock counts
            for request in batch:
                waiting = request.future
                waiting._job = job
                if waiting._finished:  # settled meanwhile (a fast job): a settled future holds no job
                    waiting._job = None
        future.add_done_callback(lambda done: self._on_done(batch, replica, lengths, done))

    def _put_back(self, batch: list[Request], replica: int) -> None:
        with self._lock:
            self._pending.extendleft(reversed(batch))
            self._pending_rows += sum(request.rows for request in batch)
            self._busy[replica] = False

    def _on_done(self, batch: list[Request], replica: int, lengths: list[int], done: ExecutionFuture) -> None:
        error = done._error
        if error is None:
            try:
                outputs = self.runner.join(done._value, rows=sum(r.rows for r in batch), lengths=lengths)
                parts = [outputs] if len(batch) == 1 else self._split(outputs, batch)
            except BaseException as join_error:  # noqa: BLE001 - outputs that cannot be cut per request
                error = join_error
            else:
                self._finish(batch, replica, None)  # the next execution queued before the callers wake
                for request, part in zip(batch, parts):
                    self._deliver(request, part)
                return
        if len(batch) > 1 and not isinstance(error, ExecTimeoutError):
            for request in batch:  # which request is at fault? each runs on its own next
                request.alone = True
                request.future._job = None
            self._put_back(batch, replica)
            self._dispatch()
            return
        self._finish(batch, replica, error)

    def _deliver(self, request: Request, part: Any) -> None:
        """Hand a request its rows, as the runner's ``deliver`` makes them (if it has one)."""
        deliver = self.runner.deliver
        if deliver is not None:
            try:
                part = deliver(part)
            except BaseException as error:  # noqa: BLE001 - reaches the request it concerns
                request.future._resolve(error=error)
                return
        request.future._resolve(part)

    def _split(self, outputs: Any, batch: list[Request]) -> list[Any]:
        bounds, start = [], 0
        for request in batch:
            bounds.append((start, request.rows))
            start += request.rows
        return scatter(outputs, self.runner.ops, self.runner.dim, bounds)

    def _finish(self, batch: list[Request], replica: int, error: BaseException | None) -> None:
        if error is not None:
            for request in batch:
                request.future._resolve(error=error)
        with self._lock:
            self._busy[replica] = False
        self._dispatch()


# --------------------------------------------------------------------------- the delay timer


class _DelayTimer:
    """One daemon thread for every coalescer's delays: calls each callback once at its time."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._serial = 0
        self._thread: threading.Thread | None = None

    def schedule(self, when: float, callback: Callable[[], None]) -> None:
        with self._condition:
            self._serial += 1
            heapq.heappush(self._heap, (when, self._serial, callback))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="ncrt-coalesce-timer", daemon=True)
                self._thread.start()
            self._condition.notify()

    def _run(self) -> None:
        while True:
            with self._condition:
                while not self._heap or self._heap[0][0] > _monotonic():
                    wait = None if not self._heap else self._heap[0][0] - _monotonic()
                    self._condition.wait(wait)
                _, _, callback = heapq.heappop(self._heap)
            try:
                callback()
            except Exception:  # noqa: BLE001 - one coalescer's failure must not stop the others' timers
                log.exception("a coalescing timer callback failed")

    def _after_fork_in_child(self) -> None:
        self._condition = threading.Condition()
        self._heap = []
        self._thread = None


_TIMER = _DelayTimer()
os.register_at_fork(after_in_child=_TIMER._after_fork_in_child)
