"""A test plugin: a "compiled model" directory of ``weights.npy`` plus ``ncrt-manifest.json``.

Registered with ``ncrt bench -p npzplugin`` / ``ncrt check-model -p npzplugin``; it shows
the tools working through the hooks for a format the core does not know.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

import ncrt
from ncrt.manifest import MANIFEST_NAME, Manifest, sha256_of, verify_payload

FRAMEWORK = "npz"


def compile_dense(weights: np.ndarray, directory: Path, batch: int = 4, pipeline_cores: int = 1) -> Path:
    """Write a compiled dense model (tanh(x @ weights)) with its manifest and sha256."""
    directory.mkdir(parents=True, exist_ok=True)
    np.save(directory / "weights.npy", weights)
    manifest = Manifest(
        framework=FRAMEWORK, batch_size=batch, batch_dim=0,
        inputs=[{"name": "x", "shape": [batch, weights.shape[0]], "dtype": "float32"}],
        outputs=[{"name": "y", "shape": [batch, weights.shape[1]], "dtype": "float32"}],
        pipeline_cores=pipeline_cores,
        compiler_args=["--neuroncore-pipeline-cores", str(pipeline_cores)],
    )
    manifest.sha256 = sha256_of(directory)
    manifest.write(directory)
    return directory


def _is_compiled(path: Any) -> bool:
    return isinstance(path, (str, Path)) and (Path(path) / "weights.npy").is_file() and \
        (Path(path) / MANIFEST_NAME).is_file()


@ncrt.hookimpl
def ncrt_read_manifest(path: str) -> Manifest | None:
    return Manifest.read(path) if _is_compiled(path) else None


@ncrt.hookimpl
def ncrt_load(artifact: Any, config: Any) -> ncrt.Model | None:
    if not _is_compiled(artifact):
        return None
    manifest = Manifest.read(artifact)
    verify_payload(manifest, artifact, config.validate_hash)
    weights = np.load(Path(artifact) / "weights.npy")
    return ncrt.Model(Path(artifact).name, FRAMEWORK, manifest, weights, runner=run_npz)


def run_npz(model: ncrt.Model, inputs: Any, core: Any) -> Any:
    (batch,) = inputs
    return np.tanh(batch @ model.payload)
