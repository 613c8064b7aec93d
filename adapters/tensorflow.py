"""The TensorFlow adapter: ``tf.Tensor`` (eager) and NumPy arrays are the tensors.

TensorFlow is never imported here: a value can only be a TF tensor if TensorFlow is
already imported, so ``is_tensor`` looks it up in ``sys.modules``. Slicing, joining and
padding keep NumPy arrays as NumPy and TF tensors as TF tensors.
"""

from __future__ import annotations

import sys
from typing import Any, Sequence

import numpy as np

from .base import Adapter

__all__ = ["TensorFlowAdapter", "ADAPTER", "is_tf_tensor"]


def _tf() -> Any:
    tf = sys.modules.get("tensorflow")
    if tf is None:
        from ncrt.errors import FrameworkMissingError

        try:
            import tensorflow as tf
        except ImportError:
            raise FrameworkMissingError("tensorflow", "tensorflow") from None
    return tf


_TENSOR_TYPES: dict[type, bool] = {np.ndarray: False}
"""Whether values of a type are TF tensors, asked once per type: ``tf.is_tensor`` checks a
runtime protocol, which costs tens of microseconds a call on every request's path."""


def is_tf_tensor(value: Any) -> bool:
    """Whether ``value`` is a TensorFlow tensor (``tf.is_tensor``, answered once per type)."""
    kind = type(value)
    known = _TENSOR_TYPES.get(kind)
    if known is not None:
        return known
    tf = sys.modules.get("tensorflow")
    if tf is None or not hasattr(tf, "is_tensor"):
        return False  # not remembered: TensorFlow may be imported later
    known = _TENSOR_TYPES[kind] = bool(tf.is_tensor(value))
    return known


class TensorFlowAdapter(Adapter):
    name = "tensorflow"
    pip_extra = "tensorflow"

    def is_tensor(self, value: Any) -> bool:
        return isinstance(value, np.ndarray) or is_tf_tensor(value)

    def size(self, tensor: Any, dim: int) -> int:
        shape = tuple(tensor.shape)
        self._check_dim(shape, dim)
        return int(shape[dim])

    def narrow(self, tensor: Any, dim: int, start: int, length: int) -> Any:
        index = [slice(None)] * len(tensor.shape)
        index[dim] = slice(start, start + length)
        return tensor[tuple(index)]

    def concat(self, tensors: Sequence[Any], dim: int) -> Any:
        if any(is_tf_tensor(t) for t in tensors):
            return _tf().concat(list(tensors), axis=dim)
        return np.concatenate(tensors, axis=dim)

    def pad(self, tensor: Any, dim: int, length: int) -> Any:
        missing = length - int(tensor.shape[dim])
        if missing <= 0:
            return tensor
        last = self.narrow(tensor, dim, int(tensor.shape[dim]) - 1, 1)
        return self.concat([tensor] + [last] * missing, dim)

    def to_numpy(self, tensor: Any) -> np.ndarray:
        return tensor.numpy() if is_tf_tensor(tensor) else np.asarray(tensor)

    def from_numpy(self, array: Any) -> Any:
        return _tf().convert_to_tensor(np.asarray(array))


ADAPTER = TensorFlowAdapter()
