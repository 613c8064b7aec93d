"""The NumPy adapter: arrays are the tensors."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .base import Adapter

__all__ = ["NumpyAdapter", "ADAPTER"]


class NumpyAdapter(Adapter):
    name = "numpy"
    pip_extra = ""

    def is_tensor(self, value: Any) -> bool:
        return isinstance(value, np.ndarray)

    def size(self, tensor: np.ndarray, dim: int) -> int:
        self._check_dim(tensor.shape, dim)
        return int(tensor.shape[dim])

    def narrow(self, tensor: np.ndarray, dim: int, start: int, length: int) -> np.ndarray:
        index = [slice(None)] * tensor.ndim
        index[dim] = slice(start, start + length)
        return tensor[tuple(index)]

    def concat(self, tensors: Sequence[np.ndarray], dim: int) -> np.ndarray:
        return np.concatenate(tensors, axis=dim)

    def pad(self, tensor: np.ndarray, dim: int, length: int) -> np.ndarray:
        missing = length - tensor.shape[dim]
        last = self.narrow(tensor, dim, tensor.shape[dim] - 1, 1)
        return np.concatenate([tensor] + [last] * missing, axis=dim)

    def to_numpy(self, tensor: np.ndarray) -> np.ndarray:
        return tensor

    def from_numpy(self, array: Any) -> np.ndarray:
        return np.asarray(array)


ADAPTER = NumpyAdapter()
