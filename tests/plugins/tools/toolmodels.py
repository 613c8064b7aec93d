"""Small numpy models for the tools' tests and examples (imported as ``toolmodels``)."""

from __future__ import annotations

import numpy as np

__all__ = ["WEIGHTS", "dense", "failing", "reference_dense"]

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
