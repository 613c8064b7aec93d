"""Splitting a batch into chunks and joining the outputs, for any nested structure.

Inputs and outputs may be a tensor or tuples, lists, dicts and namedtuples of tensors,
nested; anything that is not a tensor is passed unchanged to every chunk. The tensor
operations come from a framework adapter (``ncrt.adapters.*``), passed in as ``ops``.
"""

from __future__ import annotations

from typing import Any, Callable, Protocol, Sequence

from .errors import BadInputError

__all__ = [
    "TensorOps",
    "map_structure",
    "tensors_in",
    "batch_size_of",
    "chunk_bounds",
    "even_bounds",
    "scatter",
    "gather",
]


class TensorOps(Protocol):
    """The part of a framework adapter that batching needs."""

    def is_tensor(self, value: Any) -> bool: ...
    def size(self, tensor: Any, dim: int) -> int: ...
    def narrow(self, tensor: Any, dim: int, start: int, length: int) -> Any: ...
    def concat(self, tensors: Sequence[Any], dim: int) -> Any: ...
    def pad(self, tensor: Any, dim: int, length: int) -> Any: ...


def _is_namedtuple(value: Any) -> bool:
    return isinstance(value, tuple) and hasattr(type(value), "_fields")


def map_structure(fn: Callable[[Any], Any], structure: Any, ops: TensorOps) -> Any:
    """Apply ``fn`` to every tensor, keeping containers (every dict key included)."""
    if ops.is_tensor(structure):
        return fn(structure)
    if _is_namedtuple(structure):
        return type(structure)._make(map_structure(fn, item, ops) for item in structure)
    if isinstance(structure, (list, tuple)):
        return type(structure)(map_structure(fn, item, ops) for item in structure)
    if isinstance(structure, dict):
        return type(structure)((key, map_structure(fn, item, ops)) for key, item in structure.items())
    return structure


def tensors_in(structure: Any, ops: TensorOps) -> list[Any]:
    found: list[Any] = []
    map_structure(found.append, structure, ops)
    return found


def batch_size_of(structure: Any, ops: TensorOps, dim: int) -> int:
    """The common size along ``dim`` of every tensor in ``structure``."""
    tensors = tensors_in(structure, ops)
    if not tensors:
        raise BadInputError("the inputs hold no tensor to split; accepted: a tensor or a nest of tensors")
    sizes = {ops.size(tensor, dim) for tensor in tensors}
    if len(sizes) != 1:
        raise BadInputError(
            f"the input tensors disagree on their size along dim {dim}: {sorted(sizes)}; "
            "every tensor must have the same batch size"
        )
    return sizes.pop()


def chunk_bounds(total: int, chunk: int) -> list[tuple[int, int]]:
    """``(start, length)`` of consecutive chunks of ``chunk`` items; the last may be short."""
    return [(start, min(chunk, total - start)) for start in range(0, total, chunk)]


def even_bounds(total: int, parts: int) -> list[tuple[int, int]]:
    """``(start, length)`` of ``parts`` near-equal consecutive slices (none empty)."""
    parts = max(1, min(parts, total))
    share, extra = divmod(total, parts)
    bounds, start = [], 0
    for index in range(parts):
        length = share + (1 if index < extra else 0)
        bounds.append((start, length))
        start += length
    return bounds


def scatter(structure: Any, ops: TensorOps, dim: int, bounds: Sequence[tuple[int, int]],
            pad_to: int | None = None) -> list[Any]:
    """One structure per ``(start, length)``; short chunks padded to ``pad_to`` if given."""
    def piece(start: int, length: int) -> Any:
        def cut(tensor: Any) -> Any:
            part = ops.narrow(tensor, dim, start, length)
            return ops.pad(part, dim, pad_to) if pad_to and length < pad_to else part
        return map_structure(cut, structure, ops)
    return [piece(start, length) for start, length in bounds]


def _trim(structure: Any, ops: TensorOps, dim: int, length: int) -> Any:
    return map_structure(lambda tensor: ops.narrow(tensor, dim, 0, length), structure, ops)


def gather(parts: Sequence[Any], ops: TensorOps, dim: int, lengths: Sequence[int] | None = None) -> Any:
    """Join per-chunk outputs in order; ``lengths`` trims padded chunks back first."""
    if lengths is not None:
        parts = [
            _trim(part, ops, dim, length) if _longer(part, ops, dim, length) else part
            for part, length in zip(parts, lengths)
        ]
    return _join(parts, ops, dim)


def _longer(part: Any, ops: TensorOps, dim: int, length: int) -> bool:
    tensors = tensors_in(part, ops)
    return bool(tensors) and ops.size(tensors[0], dim) > length


def _join(parts: Sequence[Any], ops: TensorOps, dim: int) -> Any:
    first = parts[0]
    if ops.is_tensor(first):
        return ops.concat(parts, dim) if len(parts) > 1 else first
    if _is_namedtuple(first):
        return type(first)._make(_join([p[i] for p in parts], ops, dim) for i in range(len(first)))
    if isinstance(first, (list, tuple)):
        return type(first)(_join([p[i] for p in parts], ops, dim) for i in range(len(first)))
    if isinstance(first, dict):
        return type(first)((key, _join([p[key] for p in parts], ops, dim)) for key in first)
    return first
