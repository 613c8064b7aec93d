"""Data-parallel execution of one loaded model over its replicas.

With dynamic batching, a batch of any size is cut into chunks of the compiled batch
size (the last one padded), the chunks are dealt out to the replicas as contiguous
runs, each replica runs its run as one job on its core, and the outputs are joined in
order. Without it, the batch must be exactly ``replicas x compiled batch`` along ``dim``
and each replica gets one equal slice (seed 001).
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
                 compiled_batch: int | None = None, dynamic: bool = True, pad: bool = True) -> None:
        self.loaded = loaded
        self.ops = ops
        self.dim = dim
        self.compiled_batch = compiled_batch or loaded.manifest.batch_size or 1
        self.dynamic = dynamic
        self.pad = pad

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
        chunks = scatter(inputs, self.ops, self.dim, bounds, self.compiled_batch if self.pad else None)
        outputs = self._run_chunks(chunks)
        return gather(outputs, self.ops, self.dim, [length for _, length in bounds])

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
        return gather(self._run_chunks(chunks), self.ops, self.dim)

    def _run_chunks(self, chunks: list[Any]) -> list[Any]:
        """Queue every replica's run but the first, then run the first in this thread."""
        if len(chunks) == 1:
            return [self.loaded.run(chunks[0])]
        runs = even_bounds(len(chunks), self.replica_count)
        queued = [
            self.loaded.run_many(chunks[start : start + length], replica=replica)
            for replica, (start, length) in enumerate(runs) if replica > 0
        ]
        start, length = runs[0]
        futures = [self.loaded.run_many(chunks[start : start + length], replica=0, asynchronous=False), *queued]
        outputs: list[Any] = []
        for future in futures:
            outputs.extend(future.result())
        return outputs
