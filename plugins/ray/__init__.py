"""Emulated NeuronCores as Ray resources: detection, nodes, actor options, Serve.

Ray's ``neuron_cores`` resource writes ``NEURON_RT_VISIBLE_CORES`` into each actor's
environment and ncrt reserves exactly those cores, so Neuron code scales out with Ray
unchanged. This package adds what Ray needs to see the emulated cores and what makes a
bad request fail at once::

    import ray
    from ncrt.plugins import ray as neuron_ray

    ray.init(resources=neuron_ray.node_resources("inf1.xlarge"))   # or: ncrt ray link-neuron-ls
    Worker = ray.remote(Model).options(**neuron_ray.actor_options(2))
    # in the actor: neuron_ray.describe_worker()["global_cores"] == the cores Ray gave it

``import ncrt.plugins.ray`` does not import Ray; the functions that need it import it
and name the ``ncrt[ray]`` extra when it is missing. docs/ray.md has the whole story:
the one step that points Ray at ncrt's ``neuron-ls``, Ray Serve, and multi-node clusters.
"""

from __future__ import annotations

from .nodes import NeuronNode, add_node, describe_nodes, neuron_nodes
from .options import INSTANCE_REQUEST, actor_options, check_request
from .resources import (
    INSTANCE_RESOURCE_PREFIX,
    NEURON_BIN_DIR,
    RESOURCE_NAME,
    detected_neuron_cores,
    emulated_topology,
    import_ray,
    instance_resource,
    link_neuron_ls,
    neuron_ls_script,
    node_env,
    node_resources,
)
from .worker import describe_worker

__all__ = [
    "INSTANCE_REQUEST",
    "INSTANCE_RESOURCE_PREFIX",
    "NEURON_BIN_DIR",
    "NeuronNode",
    "RESOURCE_NAME",
    "actor_options",
    "add_node",
    "check_request",
    "describe_nodes",
    "describe_worker",
    "detected_neuron_cores",
    "emulated_topology",
    "import_ray",
    "instance_resource",
    "link_neuron_ls",
    "neuron_ls_script",
    "neuron_nodes",
    "node_env",
    "node_resources",
]
