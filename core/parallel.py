"""Data-parallel execution of one loaded model over its replicas: the one dynamic-batching runner.

With dynamic batching, a batch of any size is cut into chunks of the compiled batch size
(the last one padded), the chunks are dealt out to the replicas as contiguous runs, each
replica runs its run as one job on its core, and the outputs are joined in order. Without
it, the batch must be exactly ``replicas x compiled batch`` along ``dim`` and each replica
gets one equal slice (seed 001).

Every framework uses this runner; its options say how the models take a batch and get their outputs:

- ``fused``: the model accepts any multiple of the compiled batch in one call (TensorFlow's
  signatures leave the batch dimension open), so a replica's run of k chunks is one call
  of k x batch rows instead of k calls;
- ``idle_only``: chunks are spread only over replicas with nothing outstanding; when fewer
  than two are idle the whole batch goes, as one run, to the least-loaded replica (so a
  stream from many threads is not split into tiny jobs that queue behind each other);
- ``deliver``: what each coalesced request's outputs become before its caller is woken,
  done by the thread that ran the execution (TensorFlow: its tensors, made there in one
  thread rather than by every caller at once).

With dynamic batching, a request smaller than the model's coalescing limit (the compiled
batch, or more rows if configured) goes to the model's :class:`~ncrt.coalesce.Coalescer`,
which joins it with the other callers' requests waiting for the same replicas; this
runner then runs each joined execution on one replica (:meth:`run_on`, :meth:`launch`).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Callable

from .batching import TensorOps, batch_size_of, chunk_bounds, even_bounds, gather, scatter
from .coalesce import Coalescer, settings_of
from .errors import BadInputError

if TYPE_CHECKING:
    from .executor import ExecutionFuture
    from .model import LoadedModel

__all__ = ["DataParallelRunner"]


class DataParallelRunner:
    """Split ``inputs`` along ``dim`` over the replicas of ``loaded`` and gather the outputs."""

    def __init__(self, loaded: LoadedModel, ops: TensorOps, *, dim: int = 0,
                 compiled_batch: int | None = None, dynamic: bool = True, pad: bool = True,
                 fused: bool = False, idle_only: bool = False,
                 deliver: Callable[[Any], Any] | None = None) -> None:
        self.loaded = loaded
        self.ops = ops
        self.dim = dim
        self.compiled_batch = compiled_batch or loaded.manifest.batch_size or 1
        self.dynamic = dynamic
        self.pad = pad
        self.fused = fused
        self.idle_only = idle_only
        self.deliver = deliver

    @property
    def replica_count(self) -> int:
        return len(self.loaded.replicas)

    def __call__(self, inputs: Any, rows: int | None = None) -> Any:
        """The outputs of ``inputs``; ``rows``: their batch size, if the caller has already
        checked it with :func:`~ncrt.batching.batch_size_of` (each walk costs on every call)."""
        total = batch_size_of(inputs, self.ops, self.dim) if rows is None else rows
        if not self.dynamic:
            return self._run_static(inputs, total)
        limit = self.coalescing_limit(total)
        if limit:
            return self._coalescer().run(inputs, total, limit)
        return self._run_dynamic(inputs, total)

    def submit(self, inputs: Any) -> ExecutionFuture:
        """Run ``inputs`` without waiting: joined with other callers' requests when small
        enough (a :class:`~ncrt.coalesce.RequestFuture`), else as queued jobs, one per
        replica run, whose outputs the returned future joins in order."""
        total = batch_size_of(inputs, self.ops, self.dim)
        if not self.dynamic:
            return _joined([self.loaded.submit(chunk, replica=index)
                            for index, chunk in enumerate(self._static_chunks(inputs, total))],
                           lambda outputs: gather(outputs, self.ops, self.dim))
        limit = self.coalescing_limit(total)
        if limit:
            return self._coalescer().submit(inputs, total, limit)
        bounds = chunk_bounds(total, self.compiled_batch)
        targets = self._targets(len(bounds))
        runs = even_bounds(len(bounds), len(targets))
        futures, lengths = [], []
        for (start, length), replica in zip(runs, targets):
            first, rows = start * self.compiled_batch, min(total, (start + length) * self.compiled_batch)
            piece = scatter(inputs, self.ops, self.dim, [(first, rows - first)])[0]
            calls, kept = self._one_run(piece, rows - first)
            futures.append(self.loaded.run_many(calls, replica=replica))
            lengths.append(kept)
        return _joined(futures, lambda outputs: self._join_runs(outputs, lengths))

    def _join_runs(self, outputs: list[list[Any]], lengths: list[list[int]]) -> Any:
        flat = [output for run in outputs for output in run]
        return gather(flat, self.ops, self.dim, [length for kept in lengths for length in kept])

    # -- coalescing ----------------------------------------------------------------------

    def coalescing_limit(self, total: int) -> int:
        """The rows of a coalesced execution a request of ``total`` rows may join; 0: it runs on its own."""
        settings = settings_of(self.loaded)
        if not settings.enabled:
            return 0
        limit = settings.limit(self.compiled_batch)
        return limit if total < limit else 0

    def _coalescer(self) -> Coalescer:
        coalescer = self.loaded.coalescer
        if coalescer is None:
            with self.loaded._lock:
                coalescer = self.loaded.coalescer
                if coalescer is None:
                    coalescer = self.loaded.coalescer = Coalescer(self.loaded, self)
        return coalescer

    def _one_run(self, inputs: Any, total: int) -> tuple[list[Any], list[int]]:
        """The calls that run ``total`` rows on one replica, and the rows each call keeps."""
        batch = self.compiled_batch
        bounds = chunk_bounds(total, batch)
        if self.fused:
            call = scatter(inputs, self.ops, self.dim, [(0, total)], len(bounds) * batch if self.pad else None)[0]
            return [call], [total]
        return (scatter(inputs, self.ops, self.dim, bounds, batch if self.pad else None),
                [length for _, length in bounds])

    def run_on(self, inputs: Any, total: int, replica: int) -> Any:
        """``total`` rows on ``replica``, synchronously (on the caller's runner when it is idle)."""
        calls, lengths = self._one_run(inputs, total)
        if len(calls) == 1:
            return self.join([self.loaded.run(calls[0], replica=replica)], total, lengths)
        return self.join(self.loaded.run_many(calls, replica=replica, asynchronous=False).result(), total, lengths)

    def launch(self, inputs: Any, total: int, replica: int) -> tuple[ExecutionFuture, list[int]]:
        """Queue ``total`` rows as one job on ``replica``'s worker, never waiting for room under
        the in-flight limit (QueueFullError instead); the future gives the calls' outputs."""
        calls, lengths = self._one_run(inputs, total)
        runtime = self.loaded.runtime
        return runtime.submit(self.loaded, calls, replica, single=False, queued=True, wait_for_room=False), lengths

    def join(self, outputs: list[Any], rows: int, lengths: list[int]) -> Any:
        """The outputs of one run's calls joined, padding dropped (``rows`` rows)."""
        return gather(outputs, self.ops, self.dim, lengths)

    def _run_dynamic(self, inputs: Any, total: int) -> Any:
        bounds = chunk_bounds(total, self.compiled_batch)
        targets = self._targets(len(bounds))
        runs = even_bounds(len(bounds), len(targets))
        if self.fused:
            return self._run_fused(inputs, total, runs, targets)
        chunks = scatter(inputs, self.ops, self.dim, bounds, self.compiled_batch if self.pad else None)
        outputs = self._run_calls([chunks[start : start + length] for start, length in runs], targets)
        return gather(outputs, self.ops, self.dim, [length for _, length in bounds])

    def _targets(self, chunk_count: int) -> list[int | None]:
        """The replicas to spread over, in order; ``[None]``: one run, the least-loaded replica."""
        if chunk_count == 1 or self.replica_count == 1:
            return [None]
        if not self.idle_only:
            return list(range(min(chunk_count, self.replica_count)))
        idle = [index for index, count in enumerate(self.loaded.outstanding) if count == 0]
        return idle[:chunk_count] if len(idle) > 1 else [None]

    def _run_fused(self, inputs: Any, total: int, runs: list[tuple[int, int]], targets: list[int | None]) -> Any:
        """One call per run, of the run's rows padded to whole chunks; trimmed when joined."""
        batch = self.compiled_batch
        rows = [(start * batch, min(total, (start + length) * batch) - start * batch) for start, length in runs]
        pieces = [scatter(inputs, self.ops, self.dim, [bound], length * batch if self.pad else None)[0]
                  for bound, (_, length) in zip(rows, runs)]
        outputs = self._run_calls([[piece] for piece in pieces], targets)
        return gather(outputs, self.ops, self.dim, [count for _, count in rows])

    def _run_static(self, inputs: Any, total: int) -> Any:
        chunks = self._static_chunks(inputs, total)
        return gather(self._run_calls([[chunk] for chunk in chunks], list(range(len(chunks)))), self.ops, self.dim)

    def _static_chunks(self, inputs: Any, total: int) -> list[Any]:
        expected = self.replica_count * self.compiled_batch
        if total != expected:
            raise BadInputError(
                f"dynamic batching is disabled, so input.shape[{self.dim}] / len(device_ids) must equal "
                f"the compiled batch size: got {total} / {self.replica_count} = "
                f"{total / self.replica_count:g}, compiled batch size is {self.compiled_batch} "
                f"(send a batch of {expected}, or enable dynamic batching with dim=0)"
            )
        return scatter(inputs, self.ops, self.dim, even_bounds(total, self.replica_count))

    def _run_calls(self, runs: list[list[Any]], targets: list[int | None]) -> list[Any]:
        """Each run (a list of calls) as one job on its target replica; outputs in order.

        Every run but the first is queued first, then the first runs in this thread when
        its replica is idle (``run_many(asynchronous=False)``), so no core waits for this
        thread to hand work out.
        """
        if len(runs) == 1 and len(runs[0]) == 1:
            return [self.loaded.run(runs[0][0], replica=targets[0])]
        queued = [self.loaded.run_many(calls, replica=replica) for calls, replica in zip(runs[1:], targets[1:])]
        futures = [self.loaded.run_many(runs[0], replica=targets[0], asynchronous=False), *queued]
        outputs: list[Any] = []
        for future in futures:
            outputs.extend(future.result())
        return outputs


def _joined(futures: list[ExecutionFuture], join: Any) -> ExecutionFuture:
    """A future settled once every one of ``futures`` is: ``join`` of their results in order,
    or the first error among them. Each job keeps its own deadline (the watchdog abandons
    a job nobody waits for), so this future is settled within the timeout too."""
    from .executor import ExecutionFuture

    joined = ExecutionFuture()
    remaining = [len(futures)]
    lock = threading.Lock()

    def one_done(_: ExecutionFuture) -> None:
        with lock:
            remaining[0] -= 1
            if remaining[0]:
                return
        if not joined._take():
            return
        error = next((future._error for future in futures if future._error is not None), None)
        if error is not None:
            joined._settle(error=error)
            return
        try:
            value = join([future._value for future in futures])
        except BaseException as join_error:  # noqa: BLE001 - delivered through the future
            joined._settle(error=join_error)
        else:
            joined._settle(value)

    for future in futures:
        future.add_done_callback(one_done)
    return joined
