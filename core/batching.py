"""Splitting a batch into chunks and joining the outputs, for any nested structure.

Inputs and outputs may be a tensor or tuples, lists, dicts and namedtuples of tensors,
nested; anything that is not a tensor is passed unchanged to every chunk. The tensor
operations come from a framework adapter (``ncrt.adapters.*``), passed in as ``ops``.
"""

from __future__ import annotations

from itertools import islice
from typing import Any, Callable, Iterator, Protocol, Sequence

from .errors import BadInputError

__all__ = [
    "Layout",
    "TensorOps",
    "flatten",
    "join_flat",
    "map_structure",
    "tensors_in",
    "batch_size_of",
    "common_size",
    "chunk_bounds",
    "even_bounds",
    "scatter",
    "gather",
]


class TensorOps(Protocol):
    """The part of a framework adapter that batching needs."""

    def is_tensor(self, value: Any) -> bool: ...
    def shape(self, tensor: Any) -> tuple[int, ...]: ...
    def dtype(self, tensor: Any) -> Any: ...
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


class _Same:
    """A non-tensor value in a nest, equal only to the same value (identical, or equal and of one type)."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, _Same):
            return NotImplemented
        mine, theirs = self.value, other.value
        if mine is theirs:
            return True
        if type(mine) is not type(theirs):
            return False
        try:
            return bool(mine == theirs)
        except Exception:  # noqa: BLE001 - an array-like or odd __eq__: not provably the same
            return False

    __hash__ = None  # type: ignore[assignment]


_TENSOR = None  # a tensor's place in a layout's key


class Layout:
    """Where the tensors of a nest sit: the nest rebuilt around any list of as many tensors.

    What :func:`flatten` returns next to the tensors, so a nest is walked once and its
    pieces are cut, padded or joined tensor by tensor. ``key`` compares two layouts:
    the same containers (types, lengths, dict keys) and the same non-tensor values.
    """

    __slots__ = ("key", "count", "_build")

    def __init__(self, key: Any, count: int, build: Callable[[Iterator[Any]], Any]) -> None:
        self.key = key
        self.count = count
        self._build = build

    def build(self, tensors: Sequence[Any]) -> Any:
        """The nest with ``tensors`` in place of its tensors, in order."""
        if len(tensors) != self.count:
            raise BadInputError(f"a nest of {self.count} tensor(s) cannot hold {len(tensors)}")
        return self._build(iter(tensors))


def flatten(structure: Any, ops: TensorOps) -> tuple[list[Any], Layout]:
    """The tensors of ``structure`` in order, and its :class:`Layout`."""
    if ops.is_tensor(structure):
        return [structure], _ONE_TENSOR
    tensors: list[Any] = []
    key = _key(structure, ops, tensors)
    try:
        layout = _LAYOUTS.get(key)
    except TypeError:  # the nest holds non-tensor values: its layout is made for it alone
        return tensors, Layout(key, len(tensors), _builder(key) or next)
    if layout is None:
        layout = Layout(key, len(tensors), _builder(key) or next)
        if len(_LAYOUTS) < 4096:  # bounded: nests with ever new dict keys are not all kept
            _LAYOUTS[key] = layout
    return tensors, layout


_ONE_TENSOR = Layout(_TENSOR, 1, next)
_LAYOUTS: dict[Any, Layout] = {}  # the layouts of nests of tensors only, by key: made once each


def _key(value: Any, ops: TensorOps, tensors: list[Any]) -> Any:
    """The key of one node of a nest; its tensors are appended to ``tensors`` in order."""
    if ops.is_tensor(value):
        tensors.append(value)
        return _TENSOR
    if isinstance(value, (list, tuple)):
        return (type(value), tuple([_key(item, ops, tensors) for item in value]))
    if isinstance(value, dict):
        return (type(value), tuple([(name, type(name), _key(item, ops, tensors))  # True and 1: two keys
                                    for name, item in value.items()]))
    return _Same(value)


def _builder(key: Any) -> Callable[[Iterator[Any]], Any] | None:
    """What rebuilds the node of ``key`` from an iterator of tensors; None for a tensor (``next``)."""
    if key is _TENSOR:
        return None
    if type(key) is _Same:
        value = key.value
        return lambda items: value
    kind, children = key
    if issubclass(kind, dict):
        names = [name for name, _, _ in children]
        builds = [_builder(child) for _, _, child in children]
        if not any(builds):
            return lambda items: kind(zip(names, items))
        return lambda items: kind(zip(names, [next(items) if build is None else build(items) for build in builds]))
    make = kind._make if issubclass(kind, tuple) and hasattr(kind, "_fields") else kind  # namedtuples
    builds = [_builder(child) for child in children]
    if not any(builds):
        count = len(builds)
        return lambda items: make(islice(items, count))
    return lambda items: make([next(items) if build is None else build(items) for build in builds])


def tensors_in(structure: Any, ops: TensorOps) -> list[Any]:
    return flatten(structure, ops)[0]


def batch_size_of(structure: Any, ops: TensorOps, dim: int) -> int:
    """The common size along ``dim`` of every tensor in ``structure``."""
    return common_size(tensors_in(structure, ops), ops, dim)


def common_size(tensors: Sequence[Any], ops: TensorOps, dim: int) -> int:
    """The common size along ``dim`` of ``tensors`` (a nest's, already found)."""
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
    tensors, layout = flatten(structure, ops)
    pieces = []
    for start, length in bounds:
        cut = [ops.narrow(tensor, dim, start, length) for tensor in tensors]
        if pad_to and length < pad_to:
            cut = [ops.pad(part, dim, pad_to) for part in cut]
        pieces.append(layout.build(cut))
    return pieces


def gather(parts: Sequence[Any], ops: TensorOps, dim: int, lengths: Sequence[int] | None = None) -> Any:
    """Join per-chunk outputs in order; ``lengths`` trims padded chunks back first."""
    flat = [flatten(part, ops) for part in parts]
    layout = flat[0][1]
    columns: list[list[Any]] = [[] for _ in range(layout.count)]
    for index, (tensors, other) in enumerate(flat):
        if other.count != layout.count:
            raise BadInputError(f"chunk {index} gave {other.count} tensor(s), chunk 0 gave {layout.count}; "
                                "every chunk's outputs must have the same structure")
        if lengths is not None and tensors and ops.size(tensors[0], dim) > lengths[index]:
            tensors = [ops.narrow(tensor, dim, 0, lengths[index]) for tensor in tensors]
        for column, tensor in zip(columns, tensors):
            column.append(tensor)
    return join_flat(columns, layout, ops, dim)


def join_flat(columns: Sequence[Sequence[Any]], layout: Layout, ops: TensorOps, dim: int) -> Any:
    """The nest of ``layout`` whose i-th tensor joins ``columns[i]`` along ``dim``."""
    return layout.build([ops.concat(list(column), dim) if len(column) > 1 else column[0] for column in columns])
