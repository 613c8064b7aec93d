"""Small numpy models for the tools' tests and examples (imported as ``toolmodels``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import ncrt

__all__ = ["WEIGHTS", "dense", "failing", "pipelined", "reference_dense"]

WEIGHTS = np.random.default_rng(0).standard_normal((32, 16)).astype("float32")


def dense(x: np.ndarray) -> np.ndarray:
    """One dense layer with tanh: a 1-core model taking (batch, 32) float32."""
    return np.tanh(x @ WEIGHTS)


def reference_dense(x: np.ndarray) -> np.ndarray:
    """The same computation, for comparing outputs."""
    return np.tanh(x @ WEIGHTS)


def failing(x: np.ndarray) -> np.ndarray:
    """A model whose every call fails (for error counters)."""
    raise ValueError(f"bad batch of shape {x.shape}")


def pipelined() -> ncrt.Model:
    """``dense`` as a 2-stage NeuronCore Pipeline model: the matmul on one core, tanh on the next."""
    import ncrt
    from ncrt.pipeline import StageSpec

    stages = [StageSpec(WEIGHTS, lambda model, inputs, core: inputs[0] @ model.payload, "matmul"),
              StageSpec(np.tanh, lambda model, inputs, core: model.payload(inputs), "tanh")]
    return ncrt.Model("piped", "python", ncrt.Manifest("python", pipeline_cores=2), dense, stages=stages)
