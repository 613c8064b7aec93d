"""The manifest of a compiled model: what the "compiler" recorded about it.

A compiled model is a framework artifact plus this JSON manifest: framework, compiled
batch size and batch dimension, input/output signature, the cores it needs
(``--neuroncore-pipeline-cores``), whether dynamic batching is allowed, the target
architecture and the sha256 of the payload, checked on load when
``NEURON_RT_VALIDATE_HASH`` is true. A model compiled for NeuronCore Pipeline also
records its stage partition (``partition``, see :func:`ncrt.pipeline.partition_record`);
manifests written before it existed read as having none.
"""

from __future__ import annotations

import hashlib
import json
import shlex
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from .errors import BadInputError, HashMismatchError, ModelLoadError

__all__ = [
    "MANIFEST_NAME",
    "Manifest",
    "parse_compiler_args",
    "check_digest",
    "sha256_of",
    "verify_payload",
]

MANIFEST_NAME = "ncrt-manifest.json"
FORMAT_VERSION = 1


@dataclass
class Manifest:
    """What ncrt knows about a compiled model.

    ``partition``: how a model compiled with ``--neuroncore-pipeline-cores N`` was cut into
    stages (``{"requested": N, "stages": [...], "cost_basis": ..., "note": ...}``); empty
    for a model that runs whole.
    """

    framework: str
    batch_size: int | None = None
    batch_dim: int = 0
    inputs: list[dict[str, Any]] = field(default_factory=list)
    outputs: list[dict[str, Any]] = field(default_factory=list)
    pipeline_cores: int = 1
    dynamic_batching: bool = True
    target: str = "inf1"
    sha256: str | None = None
    compiler_args: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION
    partition: dict[str, Any] = field(default_factory=dict)

    @property
    def stage_count(self) -> int:
        """Pipeline stages the model was cut into (1: it runs whole)."""
        return max(1, len(self.partition.get("stages", [])))

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> Manifest:
        try:
            data = json.loads(text)
            return cls(**data)
        except (ValueError, TypeError) as error:
            raise ModelLoadError(f"unreadable ncrt manifest: {error}") from None

    def write(self, directory: str | Path) -> Path:
        path = Path(directory) / MANIFEST_NAME
        path.write_text(self.to_json())
        return path

    @classmethod
    def read(cls, directory: str | Path) -> Manifest:
        path = Path(directory) / MANIFEST_NAME
        if not path.is_file():
            raise ModelLoadError(f"{directory} has no {MANIFEST_NAME}: not an ncrt-compiled model")
        return cls.from_json(path.read_text())


def _pipeline_value(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise BadInputError(
            f"--neuroncore-pipeline-cores={text!r} is not valid; accepted: a whole number >= 1"
        )
    return int(text)


def parse_compiler_args(compiler_args: str | Sequence[str] | None) -> dict[str, Any]:
    """Read the options ncrt honours from neuron-cc style arguments.

    Returns ``{"pipeline_cores": N, "args": [...]}``; both ``--neuroncore-pipeline-cores N``
    and ``--neuroncore-pipeline-cores=N`` are accepted, as a list or one string.
    """
    if compiler_args is None:
        args: list[str] = []
    elif isinstance(compiler_args, str):
        args = shlex.split(compiler_args)
    else:
        args = [str(arg) for arg in compiler_args]
    pipeline = 1
    for position, arg in enumerate(args):
        if arg == "--neuroncore-pipeline-cores":
            if position + 1 >= len(args):
                raise BadInputError("--neuroncore-pipeline-cores needs a value; accepted: a whole number >= 1")
            pipeline = _pipeline_value(args[position + 1])
        elif arg.startswith("--neuroncore-pipeline-cores="):
            pipeline = _pipeline_value(arg.split("=", 1)[1])
    return {"pipeline_cores": pipeline, "args": args}


def _payload_paths(payload: str | Path | Iterable[str | Path]) -> list[Path]:
    if isinstance(payload, (str, Path)):
        root = Path(payload)
        if root.is_dir():
            return sorted(p for p in root.rglob("*") if p.is_file() and p.name != MANIFEST_NAME)
        return [root]
    return sorted(Path(p) for p in payload)


def sha256_of(payload: bytes | str | Path | Iterable[str | Path]) -> str:
    """The sha256 of bytes, of a file, or of a directory's files (by relative name and content)."""
    digest = hashlib.sha256()
    if isinstance(payload, bytes):
        digest.update(payload)
        return digest.hexdigest()
    paths = _payload_paths(payload)
    base = Path(payload) if isinstance(payload, (str, Path)) and Path(payload).is_dir() else None
    for path in paths:
        name = path.relative_to(base).as_posix() if base else path.name
        digest.update(name.encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()


def verify_payload(manifest: Manifest, payload: bytes | str | Path | Iterable[str | Path], enabled: bool) -> None:
    """Raise HashMismatchError when validation is ``enabled`` and the payload's sha256 differs."""
    if enabled:
        check_digest(manifest, lambda: sha256_of(payload))


def check_digest(manifest: Manifest, digest: Callable[[], str],
                 fix: str = "recompile it with ncrt") -> None:
    """Compare the manifest's sha256 with ``digest()`` (a plugin's own way of hashing its payload).

    Raise HashMismatchError when the manifest has no sha256 (``fix`` says how to get one)
    or when they differ.
    """
    if not manifest.sha256:
        raise HashMismatchError(
            f"NEURON_RT_VALIDATE_HASH=true but the model's manifest carries no sha256; "
            f"{fix}, or set NEURON_RT_VALIDATE_HASH=false"
        )
    actual = digest()
    if actual != manifest.sha256:
        raise HashMismatchError(
            f"compiled model payload is corrupted: sha256 {actual[:16]}... does not match "
            f"the manifest's {manifest.sha256[:16]}... (NEURON_RT_VALIDATE_HASH=true)"
        )
