"""The PyTorch adapter: ``torch.Tensor`` is the tensor; TorchScript files are the artifacts.

Importing this module imports no framework: every method imports ``torch`` when it
runs. Besides the tensor contract of :class:`ncrt.adapters.base.Adapter`, it knows the
ncrt layout of a compiled TorchScript model: a TorchScript zip archive whose extra files
hold the ncrt manifest (``extra/ncrt-manifest.json``), readable without torch.
"""

from __future__ import annotations

import hashlib
import io
import sys
import zipfile
import zlib
from pathlib import Path
from typing import IO, Any, Sequence, Union

from .base import Adapter

__all__ = [
    "ADAPTER",
    "MANIFEST_EXTRA",
    "TorchAdapter",
    "manifest_text_in_archive",
    "payload_sha256",
]

MANIFEST_EXTRA = "ncrt-manifest.json"

FileLike = Union[str, Path, IO[bytes], bytes]


def _torch() -> Any:
    try:
        import torch
    except ImportError:
        from ncrt.errors import FrameworkMissingError

        raise FrameworkMissingError("torch", "torch") from None
    return torch


class TorchAdapter(Adapter):
    """Tensor operations on ``torch.Tensor`` (views where torch gives them)."""

    name = "torch"
    pip_extra = "torch"

    _tensor_class: type | None = None

    def is_tensor(self, value: Any) -> bool:
        tensor_class = self._tensor_class
        if tensor_class is None:
            torch = sys.modules.get("torch")  # no torch imported: nothing can be a torch tensor
            tensor_class = getattr(torch, "Tensor", None)
            if not isinstance(tensor_class, type):
                return False
            type(self)._tensor_class = tensor_class  # on every request's path: looked up once
        return isinstance(value, tensor_class)

    def size(self, tensor: Any, dim: int) -> int:
        self._check_dim(tuple(tensor.shape), dim)
        return int(tensor.shape[dim])

    def narrow(self, tensor: Any, dim: int, start: int, length: int) -> Any:
        return tensor.narrow(dim, start, length)

    def concat(self, tensors: Sequence[Any], dim: int) -> Any:
        return _torch().cat(list(tensors), dim=dim)

    def pad(self, tensor: Any, dim: int, length: int) -> Any:
        missing = length - int(tensor.shape[dim])
        if missing <= 0:
            return tensor
        last = tensor.narrow(dim, int(tensor.shape[dim]) - 1, 1)
        sizes = [-1] * tensor.dim()
        sizes[dim] = missing
        return _torch().cat([tensor, last.expand(*sizes)], dim=dim)

    def to_numpy(self, tensor: Any) -> Any:
        return tensor.detach().cpu().numpy()

    def from_numpy(self, array: Any) -> Any:
        import numpy as np

        return _torch().from_numpy(np.ascontiguousarray(array))


def _open_archive(source: FileLike) -> zipfile.ZipFile | None:
    try:
        if isinstance(source, bytes):
            return zipfile.ZipFile(io.BytesIO(source))
        if isinstance(source, (str, Path)):
            return zipfile.ZipFile(source) if Path(source).is_file() else None
        position = source.tell()
        data = source.read()
        source.seek(position)
        return zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError, AttributeError, UnicodeDecodeError):  # entry names that are not UTF-8
        return None


def manifest_text_in_archive(source: FileLike) -> str | None:
    """The ncrt manifest JSON stored in a TorchScript archive, or None (no torch needed)."""
    archive = _open_archive(source)
    if archive is None:
        return None
    with archive:
        for name in archive.namelist():
            if name.endswith("/extra/" + MANIFEST_EXTRA):
                return _text_of(_entry(archive, name, source), source, name)
    return None


def _entry(archive: zipfile.ZipFile, name: str, source: FileLike) -> bytes:
    """The bytes of one archive entry; a damaged entry (bad CRC, bad deflate data) is a ModelLoadError."""
    try:
        return archive.read(name)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as error:
        from ncrt.errors import ModelLoadError

        where = source if isinstance(source, (str, Path)) else "a TorchScript archive"
        raise ModelLoadError(f"the ncrt manifest of {where} ({name}) is damaged: {error}; accepted: a file "
                             "written by torch.jit.save of an ncrt-traced model; trace and save it again") from None


def _text_of(data: bytes, source: FileLike, name: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        from ncrt.errors import ModelLoadError

        where = source if isinstance(source, (str, Path)) else "a TorchScript archive"
        raise ModelLoadError(f"the ncrt manifest of {where} ({name}) is not readable: it is not UTF-8 text "
                             f"({error.reason} at byte {error.start})") from None


def payload_sha256(source: FileLike) -> str | None:
    """The sha256 of a TorchScript archive's entries, ``extra/`` and ``.data/`` left out.

    The manifest lives among the extra files, so it can carry this digest of the rest.
    """
    archive = _open_archive(source)
    if archive is None:
        return None
    digest = hashlib.sha256()
    with archive:
        for name in sorted(archive.namelist()):
            if "/extra/" in name or "/.data/" in name:
                continue  # the manifest itself, and a per-save random id
            digest.update(name.split("/", 1)[-1].encode() + b"\0")
            try:
                digest.update(archive.read(name))
            except zipfile.BadZipFile:
                return "unreadable (an archive entry fails its CRC check)"
    return digest.hexdigest()


ADAPTER = TorchAdapter()
