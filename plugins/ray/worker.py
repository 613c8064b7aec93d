"""Inside a Ray actor: the NeuronCores Ray gave it and the ones ncrt reserved for it.

Ray writes the ids of an actor's ``neuron_cores`` into ``NEURON_RT_VISIBLE_CORES`` before
the actor's code runs; the actor's ncrt runtime (created on first use) reserves exactly
those cores of its node's emulated instance, exclusive across the node's processes until
the actor's process exits (a killed actor frees them at once). Hold cores in actors (one
process each, for their lifetime), not in tasks: a task worker is reused for later tasks
while its runtime keeps the cores of the first one.
"""

from __future__ import annotations

import os
from typing import Any

from ncrt.runtime import get_runtime

from .resources import RESOURCE_NAME, import_ray

__all__ = ["describe_worker"]


def describe_worker() -> dict[str, Any]:
    """This Ray worker as ncrt sees it: pid, node, instance, state dir, Ray's core ids, reserved cores.

    Creates the process's runtime (reserving its cores) if it does not exist yet.
    """
    ray = import_ray()
    runtime = get_runtime()
    context = ray.get_runtime_context()
    return {
        "pid": os.getpid(),
        "node_id": context.get_node_id(),
        "instance_type": runtime.topology.name,
        "state_dir": str(runtime.state_dir),
        "visible_cores": os.environ.get("NEURON_RT_VISIBLE_CORES"),
        "ray_core_ids": [int(core) for core in context.get_accelerator_ids().get(RESOURCE_NAME, [])],
        "global_cores": list(runtime.reservation.cores),
    }
