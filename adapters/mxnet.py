"""The MXNet adapter: NDArrays are the tensors; checkpoints are the artifacts.

MXNet 1.9.1 is the last MXNet release and still refers to ``numpy.bool``, which NumPy
1.24 removed. :func:`import_mxnet` is the one way ncrt imports MXNet: it supplies that
alias (``numpy.bool = bool``) only when it is missing, silently, and changes nothing
else. Importing this module imports no framework.

Reading an NDArray's shape or dtype, or slicing it along the batch axis, is a C call
that MXNet's Python makes through ``ctypes`` with the GIL released. These calls only read
the array's header or make a view, so releasing the GIL buys nothing, and with many
threads each release is a wait to take it back (tens of microseconds of CPU under 16
callers; a coalesced request makes about ten). The adapter makes the same three C calls
holding the GIL (:class:`_HeaderCalls`, through ``ctypes.PyDLL`` on MXNet's own library),
and falls back to MXNet's Python where that library cannot be opened so.
"""

from __future__ import annotations

import ctypes
import hashlib
import sys
import warnings
from types import ModuleType
from typing import Any, Mapping, Sequence

import numpy as np

from .base import Adapter

__all__ = ["MxnetAdapter", "ADAPTER", "import_mxnet", "params_digest", "export_block"]


def _supply_numpy_bool() -> None:
    """Set ``numpy.bool = bool`` when NumPy lacks it (NumPy >= 1.24), without warnings."""
    if "bool" in vars(np):
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        present = hasattr(np, "bool")
    if not present:
        np.bool = bool  # type: ignore[attr-defined]


def import_mxnet() -> ModuleType:
    """Import and return ``mxnet``; FrameworkMissingError naming ``ncrt[mxnet]`` if absent."""
    _supply_numpy_bool()
    try:
        import mxnet
    except ImportError as error:
        from ncrt.errors import FrameworkMissingError

        raise FrameworkMissingError("MXNet", "mxnet") from error
    return mxnet


class _HeaderCalls:
    """MXNet's C functions that read an NDArray's header or make a view of it, called
    without releasing the GIL (the same functions ``NDArray.shape``, ``.dtype`` and
    ``x[a:b]`` call; errors raise MXNet's own ``MXNetError``)."""

    def __init__(self) -> None:
        import_mxnet()
        from mxnet import base
        from mxnet.ndarray import ndarray as nd_module

        library = ctypes.PyDLL(base._LIB._name)  # the library MXNet loaded: dlopen returns its handle
        self._check = base.check_call
        self._int = base.mx_int
        self._uint = base.mx_uint
        self._handle = base.NDArrayHandle
        self._dtypes = nd_module._DTYPE_MX_TO_NP
        wide = nd_module._int64_enabled()
        self._get_shape = library.MXNDArrayGetShapeEx64 if wide else library.MXNDArrayGetShapeEx
        self._dim_pointer = ctypes.POINTER(base.mx_int64 if wide else base.mx_int)
        self._get_dtype = library.MXNDArrayGetDType
        self._slice = library.MXNDArraySlice

    def shape(self, array: Any) -> tuple[int, ...]:
        ndim, dims = self._int(), self._dim_pointer()
        self._check(self._get_shape(array.handle, ctypes.byref(ndim), ctypes.byref(dims)))
        count = ndim.value
        return () if count < 0 else tuple(dims[:count])  # -1: shape unknown (MXNet's None)

    def dtype(self, array: Any) -> Any:
        code = ctypes.c_int()
        self._check(self._get_dtype(array.handle, ctypes.byref(code)))
        return self._dtypes[code.value]

    def rows(self, array: Any, start: int, stop: int) -> Any:
        """``array[start:stop]``: a view of rows of the first axis (bounds checked by MXNet)."""
        handle = self._handle()
        self._check(self._slice(array.handle, self._uint(start), self._uint(stop), ctypes.byref(handle)))
        return array.__class__(handle=handle, writable=array.writable)


_header_calls: _HeaderCalls | None | bool = False  # False: not made yet; None: unavailable here


def header_calls() -> _HeaderCalls | None:
    """The GIL-holding header calls, made once (None where MXNet's library cannot be opened so)."""
    global _header_calls
    if _header_calls is False:
        try:
            _header_calls = _HeaderCalls()
        except (AttributeError, ImportError, OSError, TypeError):
            _header_calls = None
    return _header_calls  # type: ignore[return-value]


class MxnetAdapter(Adapter):
    """MXNet NDArrays (``mx.nd.NDArray``) seen through the adapter contract."""

    name = "mxnet"
    pip_extra = "mxnet"

    _ndarray_class: type | None = None

    def is_tensor(self, value: Any) -> bool:
        ndarray_class = self._ndarray_class
        if ndarray_class is None:  # no NDArray can exist before MXNet is imported
            ndarray_class = getattr(getattr(sys.modules.get("mxnet"), "nd", None), "NDArray", None)
            if not isinstance(ndarray_class, type):
                return False
            type(self)._ndarray_class = ndarray_class  # on every request's path: looked up once
        return isinstance(value, ndarray_class)

    def shape(self, tensor: Any) -> tuple[int, ...]:
        calls = _header_calls or header_calls()
        return calls.shape(tensor) if calls is not None else tuple(tensor.shape)

    def dtype(self, tensor: Any) -> Any:
        calls = _header_calls or header_calls()
        return calls.dtype(tensor) if calls is not None else tensor.dtype

    def size(self, tensor: Any, dim: int) -> int:
        shape = self.shape(tensor)
        self._check_dim(shape, dim)
        return int(shape[dim])

    def narrow(self, tensor: Any, dim: int, start: int, length: int) -> Any:
        """Rows ``start..start+length`` of ``dim``: on the batch axis a view (``tensor[a:b]``,
        no operator: 9 us against 46 us for ``slice_axis`` on the test host), else a copy."""
        if dim == 0 and length > 0:
            calls = _header_calls or header_calls()
            if calls is None:
                return tensor[start : start + length]
            return calls.rows(tensor, start, start + length)
        self._check_dim(self.shape(tensor), dim)
        return import_mxnet().nd.slice_axis(tensor, axis=dim, begin=start, end=start + length)

    def concat(self, tensors: Sequence[Any], dim: int) -> Any:
        return import_mxnet().nd.concat(*tensors, dim=dim)

    def pad(self, tensor: Any, dim: int, length: int) -> Any:
        size = self.size(tensor, dim)
        missing = length - size
        if missing <= 0:
            return tensor
        last = self.narrow(tensor, dim, size - 1, 1)
        return self.concat([tensor] + [last] * missing, dim)

    def to_numpy(self, tensor: Any) -> np.ndarray:
        return tensor.asnumpy()

    def from_numpy(self, array: Any) -> Any:
        array = np.asarray(array)
        return import_mxnet().nd.array(array, dtype=array.dtype)


def params_digest(args: Mapping[str, Any], aux: Mapping[str, Any]) -> bytes:
    """Bytes that identify a model's parameters: names, dtypes, shapes and values, sorted.

    The sha256 of these bytes is what ``mx.contrib.neuron.compile`` records in the
    manifest and what binding checks when ``NEURON_RT_VALIDATE_HASH`` is true.
    """
    digest = hashlib.sha256()
    for kind, params in (("arg", args), ("aux", aux)):
        for name in sorted(params):
            array = ADAPTER.to_numpy(params[name]) if not isinstance(params[name], np.ndarray) else params[name]
            header = f"{kind}:{name}:{array.dtype.str}:{array.shape}\0".encode()
            digest.update(header)
            digest.update(np.ascontiguousarray(array).tobytes())
    return digest.digest()


def export_block(block: Any, prefix: str, example: Any, epoch: int = 0) -> tuple[Any, dict, dict]:
    """Hybridize a Gluon ``block``, run it on ``example``, export ``prefix``; return the checkpoint.

    The result is ``mx.model.load_checkpoint(prefix, epoch)``: ``(symbol, args, aux)``.
    """
    mx = import_mxnet()
    block.hybridize()
    block(example if isinstance(example, mx.nd.NDArray) else ADAPTER.from_numpy(example))
    block.export(prefix, epoch=epoch)
    return mx.model.load_checkpoint(prefix, epoch)


ADAPTER = MxnetAdapter()
