"""The MXNet adapter: NDArrays are the tensors; checkpoints are the artifacts.

MXNet 1.9.1 is the last MXNet release and still refers to ``numpy.bool``, which NumPy
1.24 removed. :func:`import_mxnet` is the one way ncrt imports MXNet: it supplies that
alias (``numpy.bool = bool``) only when it is missing, silently, and changes nothing
else. Importing this module imports no framework.
"""

from __future__ import annotations

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

    def size(self, tensor: Any, dim: int) -> int:
        shape = tensor.shape  # a C call each time
        self._check_dim(shape, dim)
        return int(shape[dim])

    def narrow(self, tensor: Any, dim: int, start: int, length: int) -> Any:
        """Rows ``start..start+length`` of ``dim``: on the batch axis a view (``tensor[a:b]``,
        no operator: 9 us against 46 us for ``slice_axis`` on the test host), else a copy."""
        if dim == 0 and length > 0:
            return tensor[start : start + length]
        self._check_dim(tensor.shape, dim)
        return import_mxnet().nd.slice_axis(tensor, axis=dim, begin=start, end=start + length)

    def concat(self, tensors: Sequence[Any], dim: int) -> Any:
        return import_mxnet().nd.concat(*tensors, dim=dim)

    def pad(self, tensor: Any, dim: int, length: int) -> Any:
        missing = length - tensor.shape[dim]
        if missing <= 0:
            return tensor
        last = self.narrow(tensor, dim, tensor.shape[dim] - 1, 1)
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
