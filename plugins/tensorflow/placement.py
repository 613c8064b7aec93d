"""How many replicas a TensorFlow model gets, and on how many cores it may be replicated.

A model compiled for N > 1 cores gets one group of N cores; a 1-core model is replicated
on up to 4 cores (seed 000: "available in TensorFlow-Neuron only").
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ncrt.errors import BadInputError, PlacementError
from ncrt.manifest import Manifest

if TYPE_CHECKING:
    from ncrt.runtime import Runtime

__all__ = [
    "AUTO_MULTICORE_KEY",
    "DEFAULT_REPLICAS",
    "check_fits",
    "check_single_core",
    "default_replicas",
    "replicas_asked",
]

DEFAULT_REPLICAS = 4
"""A 1-core model without explicit replication is replicated on up to this many cores (seed 000)."""

AUTO_MULTICORE_KEY = "auto_multicore_cores"
"""Manifest ``extra`` key written by ``ncrt tf-auto-multicore``: replicas made on load."""

def replicas_asked(manifest: Manifest, replicas: int | None) -> int | None:
    """The replicas a load names: given ones, 1 for a pipeline model, a tf-auto-multicore count.

    ``None`` asks for the framework's default replication (:func:`default_replicas`),
    which a legacy NeuronCore Group layout may override (``Nx1``: one per group).
    """
    if replicas:
        return replicas
    if manifest.pipeline_cores != 1:
        return 1
    if manifest.extra.get(AUTO_MULTICORE_KEY):
        return int(manifest.extra[AUTO_MULTICORE_KEY])
    return None


def default_replicas(runtime: Runtime) -> int:
    """A 1-core model named no replicas: ``min(4, cores of the process)`` (seed 000)."""
    return min(DEFAULT_REPLICAS, len(runtime.cores))


def check_fits(runtime: Runtime, replicas: int, what: str) -> None:
    if replicas > len(runtime.cores):
        raise PlacementError(
            f"{what} asks for {replicas} NeuronCores but this process has {len(runtime.cores)} "
            f"(NC0-{len(runtime.cores) - 1}); accepted: 1 to {len(runtime.cores)}, or raise NEURON_RT_NUM_CORES"
        )


def check_single_core(manifest: Manifest) -> None:
    if manifest.pipeline_cores != 1:
        raise BadInputError(
            f"auto multicore replication works only on models compiled with --neuroncore-pipeline-cores=1; "
            f"this model was compiled for {manifest.pipeline_cores} cores (recompile it for 1 core)"
        )
