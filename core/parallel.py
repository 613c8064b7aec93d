"""Data-parallel execution of one loaded model over its replicas: the one dynamic-batching runner.

With dynamic batching, a batch of any size is cut into chunks of the compiled batch size
(the last one padded), the chunks are dealt out to the replicas as contiguous runs, each
replica runs its run as one job on its core, and the outputs are joined in order. Without
it, the batch must be exactly ``replicas x compiled batch`` along ``dim`` and each replica
gets one equal slice (seed 001).

Every framework uses this runner; two options say how its models take a batch:

- ``fused``: the model accepts any multiple of the compiled batch in one call (TensorFlow's
  signatures leave the batch dimension open), so a replica's run of k chunks is one call
  of k x batch rows instead of k calls;
- ``idle_only``: chunks are spread only over replicas with nothing outstanding; when fewer
  than two are idle the whole batch goes, as one run, to the least-loaded replica (so a
  stream from many threads is not split into tiny jobs that queue behind each other).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .batching import TensorOps, batch_size_of, chunk_bounds, even_bounds, gather, scatter
from .errors import BadInputError

if TYPE_CHECKING:
    from .model import LoadedModel

__all__ = ["DataParallelRunner"]


class DataParallelRunner:
    """Split ``inputs`` along ``dim`` over the replicas of ``loaded`` and gather the outputs."""

    def __init__(self, loaded: LoadedModel, ops: TensorOps, *, dim: int = 0,
                 compiled_batch: int | None = None, dynamic: bool = True, pad: bool = True,
                 fused: bool = False, idle_only: bool = False) -> None:
        self.loaded = loaded
        self.ops = ops
        self.dim = dim
        self.compiled_batch = compiled_batch or loaded.manifest.batch_size or 1
        self.dynamic = dynamic
        self.pad = pad
        self.fused = fused
        self.idle_only = idle_only

    @property
    def replica_count(self) -> int:
        return len(self.loaded.replicas)

    def __call__(self, inputs: Any) -> Any:
        total = batch_size_of(inputs, self.ops, self.dim)
        if self.dynamic:
            return self._run_dynamic(inputs, total)
        return self._run_static(inputs, total)

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
        expected = self.replica_count * self.compiled_batch
        if total != expected:
            raise BadInputError(
                f"dynamic batching is disabled, so input.shape[{self.dim}] / len(device_ids) must equal "
                f"the compiled batch size: got {total} / {self.replica_count} = "
                f"{total / self.replica_count:g}, compiled batch size is {self.compiled_batch} "
                f"(send a batch of {expected}, or enable dynamic batching with dim=0)"
            )
        chunks = scatter(inputs, self.ops, self.dim, even_bounds(total, self.replica_count))
        return gather(self._run_calls([[chunk] for chunk in chunks], list(range(len(chunks)))), self.ops, self.dim)

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
