"""The adapter contract, documented once here and implemented per framework."""

from __future__ import annotations

from typing import Any, Sequence

__all__ = ["Adapter"]


class Adapter:
    """How one framework's tensors look to ncrt.

    Every method is about tensors of that framework; the batching code of the core
    (``ncrt.batching``) and the data-parallel runner call these and nothing else.
    ``pip_extra`` names the extra that installs the framework.
    """

    name: str = "base"
    pip_extra: str = "all"

    def is_tensor(self, value: Any) -> bool:
        """Whether ``value`` is a tensor of this framework (and so is split and joined)."""
        raise NotImplementedError

    def shape(self, tensor: Any) -> tuple[int, ...]:
        """The tensor's shape as a tuple of ints."""
        return tuple(tensor.shape)

    def dtype(self, tensor: Any) -> Any:
        """The tensor's element type, as the framework names it."""
        return tensor.dtype

    def size(self, tensor: Any, dim: int) -> int:
        """The length of ``tensor`` along ``dim``; BadInputError if it has no such dim."""
        raise NotImplementedError

    def narrow(self, tensor: Any, dim: int, start: int, length: int) -> Any:
        """The slice ``start:start+length`` along ``dim`` (a view where the framework has them)."""
        raise NotImplementedError

    def concat(self, tensors: Sequence[Any], dim: int) -> Any:
        """Join ``tensors`` along ``dim``."""
        raise NotImplementedError

    def pad(self, tensor: Any, dim: int, length: int) -> Any:
        """Grow ``tensor`` to ``length`` along ``dim`` by repeating its last slice."""
        raise NotImplementedError

    def to_numpy(self, tensor: Any) -> Any:
        """A numpy array with the tensor's values."""
        raise NotImplementedError

    def from_numpy(self, array: Any) -> Any:
        """A tensor of this framework holding ``array``'s values."""
        raise NotImplementedError

    def _check_dim(self, shape: Sequence[int], dim: int) -> None:
        if not -len(shape) <= dim < len(shape):
            from ncrt.errors import BadInputError

            raise BadInputError(
                f"cannot split along dim {dim}: the tensor has shape {tuple(shape)}; "
                f"accepted: a dim from {-len(shape)} to {len(shape) - 1}"
            )
