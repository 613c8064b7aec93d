"""The manifest of a compiled model: what the "compiler" recorded about it.

A compiled model is a framework artifact plus this JSON manifest: framework, compiled
batch size and batch dimension, input/output signature, the cores it needs
(``--neuroncore-pipeline-cores``), whether dynamic batching is allowed, the target
architecture and the sha256 of the payload.

A manifest read from anywhere is checked against its schema
(:mod:`ncrt.manifest_schema`) before it is used: a damaged or edited one raises
:class:`~ncrt.errors.ModelLoadError` naming where it came from and what is wrong.
Format 2 manifests are *sealed*: ``seal`` is the sha256 of the manifest's own content,
so that with ``NEURON_RT_VALIDATE_HASH=true`` the check covers the manifest as well as
the payload (``sha256``). Format 1 manifests (no seal) are still read; their check
covers the payload only.

A model compiled for NeuronCore Pipeline also records its stage partition
(``partition``, see :func:`ncrt.pipeline.partition_record`); manifests written before it
existed read as having none.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterable

from .errors import BadInputError, HashMismatchError, ModelLoadError
from .manifest_schema import manifest_problem

__all__ = [
    "FORMAT_VERSION",
    "MANIFEST_NAME",
    "Manifest",
    "check_digest",
    "sha256_of",
    "verify_payload",
]

MANIFEST_NAME = "ncrt-manifest.json"
FORMAT_VERSION = 2


@dataclass
class Manifest:
    """What ncrt knows about a compiled model.

    ``seal`` is set on manifests read back from JSON (``to_json`` computes it); ``origin``
    says where a manifest was read from, for error messages.

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
    seal: str | None = field(default=None, compare=False, repr=False)
    origin: ClassVar[str | None] = None

    def content(self) -> dict[str, Any]:
        """The fields the seal covers: every field but the seal itself (and no empty
        ``partition``, so manifests sealed before partitions existed keep their seal)."""
        data = asdict(self)
        data.pop("seal")
        if not data["partition"]:
            del data["partition"]
        return data

    def content_digest(self) -> str:
        """The sha256 of :meth:`content` in canonical JSON: what ``seal`` must be."""
        canonical = json.dumps(self.content(), sort_keys=True, separators=(",", ":"), ensure_ascii=True)
        return hashlib.sha256(canonical.encode()).hexdigest()

    @property
    def stage_count(self) -> int:
        """Pipeline stages the model was cut into (1: it runs whole)."""
        return max(1, len(self.partition.get("stages", [])))

    def to_json(self) -> str:
        """The manifest as format 2 JSON, sealed over its content."""
        data = self.content()
        data["format_version"] = FORMAT_VERSION
        canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
        data["seal"] = hashlib.sha256(canonical.encode()).hexdigest()
        return json.dumps(data, indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes, source: str | Path | None = None) -> Manifest:
        """Parse and check a manifest; ``source`` (a path, an archive entry) names it in errors."""
        where = f"the ncrt manifest of {source}" if source is not None else "an ncrt manifest"
        try:
            data = json.loads(text)
        except RecursionError:
            raise ModelLoadError(f"{where} is not readable: JSON nested too deeply") from None
        except ValueError as error:
            raise ModelLoadError(f"{where} is not readable: {error}") from None
        problem = manifest_problem(data)
        if problem:
            raise ModelLoadError(f"{where} is not valid: {problem}; recompile the model with ncrt")
        manifest = cls(**data)
        manifest.origin = str(source) if source is not None else None
        return manifest

    def write(self, directory: str | Path) -> Path:
        path = Path(directory) / MANIFEST_NAME
        path.write_text(self.to_json())
        return path

    @classmethod
    def read(cls, directory: str | Path) -> Manifest:
        path = Path(directory) / MANIFEST_NAME
        if not path.is_file():
            raise ModelLoadError(f"{directory} has no {MANIFEST_NAME}: not an ncrt-compiled model")
        try:
            text = path.read_bytes()
        except OSError as error:
            raise ModelLoadError(f"the ncrt manifest {path} is not readable: {error}") from None
        return cls.from_json(text, source=path)


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
    """Check a manifest's seal, then compare its sha256 with ``digest()`` (a plugin's own
    way of hashing its payload).

    Raise HashMismatchError when the manifest has no sha256 (``fix`` says how to get one),
    when its content does not match its seal (it was edited or damaged), or when the
    payload's digest differs.
    """
    where = f" ({manifest.origin})" if manifest.origin else ""
    if not manifest.sha256:
        raise HashMismatchError(
            f"NEURON_RT_VALIDATE_HASH=true but the model's manifest{where} carries no sha256; "
            f"{fix}, or set NEURON_RT_VALIDATE_HASH=false"
        )
    if manifest.seal is not None and manifest.seal != manifest.content_digest():
        raise HashMismatchError(
            f"the compiled model's manifest{where} was changed after it was written: its content does "
            f"not match its seal {manifest.seal[:16]}... (NEURON_RT_VALIDATE_HASH=true); {fix}"
        )
    actual = digest()
    if actual != manifest.sha256:
        raise HashMismatchError(
            f"compiled model payload is corrupted: sha256 {actual[:16]}... does not match "
            f"the manifest's {manifest.sha256[:16]}...{where} (NEURON_RT_VALIDATE_HASH=true)"
        )
