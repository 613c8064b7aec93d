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

__all__ = ["AUTO_MULTICORE_KEY", "DEFAULT_REPLICAS", "check_fits", "check_single_core", "default_replicas"]

DEFAULT_REPLICAS = 4
"""A 1-core model without explicit replication is replicated on up to this many cores (seed 000)."""

AUTO_MULTICORE_KEY = "auto_multicore_cores"
"""Manifest ``extra`` key written by ``ncrt tf-auto-multicore``: replicas made on load."""

NCG_REPLICAS_KEY = "ncg_replicas"


def default_replicas(runtime: Runtime, manifest: Manifest) -> int:
    """How many replicas a model gets when the caller names none.

    - a model compiled for more than one core (``--neuroncore-pipeline-cores N``): 1;
    - a model written by ``ncrt tf-auto-multicore --num_cores N``: N;
    - legacy NCG auto replication: ``runtime.config.extra["ncg_replicas"]``, which the ncg
      plugin sets in its ``ncrt_configure`` hook from ``NEURONCORE_GROUP_SIZES=Nx1``;
    - otherwise ``min(4, cores of the process)`` ("replicate on up to 4 cores", seed 000).
    """
    if manifest.pipeline_cores != 1:
        return 1
    if manifest.extra.get(AUTO_MULTICORE_KEY):
        return int(manifest.extra[AUTO_MULTICORE_KEY])
    legacy = runtime.config.extra.get(NCG_REPLICAS_KEY)
    if legacy:
        return int(legacy)  # type: ignore[arg-type]
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
