"""The nodes of a Ray cluster as emulated Neuron instances, and adding such nodes.

A node emulates its own instance through its environment (``NCRT_INSTANCE_TYPE`` and
``NCRT_STATE_DIR``, :func:`~ncrt.plugins.ray.resources.node_env`): the raylet has it, and
so does every worker it starts. :func:`add_node` starts such a node in a
``ray.cluster_utils.Cluster``; :func:`neuron_nodes` reads back what every node advertises.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ncrt.errors import ConfigError

from .resources import INSTANCE_RESOURCE_PREFIX, RESOURCE_NAME, import_ray, node_env, node_resources

if TYPE_CHECKING:
    from ray.cluster_utils import Cluster

__all__ = ["NeuronNode", "add_node", "describe_nodes", "neuron_nodes"]


@dataclass(frozen=True)
class NeuronNode:
    """A live Ray node: its id and address, the ``neuron_cores`` it has, its instance type if advertised."""

    node_id: str
    address: str
    neuron_cores: int
    instance_type: str | None

    @property
    def label(self) -> str:
        """``inf1.xlarge node 1a2b3c4d (4 neuron_cores)``."""
        kind = self.instance_type or "unknown-instance"
        return f"{kind} node {self.node_id[:8]} ({self.neuron_cores} {RESOURCE_NAME})"


def _instance_of(resources: dict[str, float]) -> str | None:
    names = [name[len(INSTANCE_RESOURCE_PREFIX):] for name in resources if name.startswith(INSTANCE_RESOURCE_PREFIX)]
    return names[0] if names else None


def neuron_nodes() -> list[NeuronNode]:
    """Every live node of the connected Ray cluster (``ray.init`` first), with its total ``neuron_cores``."""
    ray = import_ray()
    if not ray.is_initialized():
        raise ConfigError("ray", "not initialized", "a connected Ray cluster: call ray.init() first")
    found = []
    for node in ray.nodes():
        if not node.get("Alive"):
            continue
        resources = node.get("Resources", {})
        found.append(NeuronNode(node["NodeID"], node.get("NodeManagerAddress", ""),
                                int(resources.get(RESOURCE_NAME, 0)), _instance_of(resources)))
    return found


def describe_nodes(nodes: list[NeuronNode]) -> str:
    """``inf1.xlarge node 1a2b3c4d (4 neuron_cores), ...`` for error messages."""
    return ", ".join(node.label for node in nodes) or "no live node"


def add_node(cluster: Cluster, instance_type: str | None, state_dir: str | os.PathLike[str] | None = None,
             *, neuron_cores: int | None = None, **node_args: Any) -> Any:
    """Add a node to ``cluster`` that emulates ``instance_type`` with its own state directory.

    The node's raylet (and every worker on it) gets :func:`node_env`; the node advertises
    :func:`node_resources` (its ``neuron_cores`` and instance type) merged with
    ``node_args["resources"]``. ``state_dir`` defaults to a new temporary directory.
    Other ``node_args`` go to ``Cluster.add_node`` (``num_cpus``, ``wait``, ...).
    """
    state_dir = state_dir if state_dir is not None else tempfile.mkdtemp(prefix="ncrt-ray-node-")
    env = {**node_args.pop("env_vars", {}), **node_env(instance_type, state_dir)}
    resources = {**node_args.pop("resources", {}), **node_resources(instance_type, neuron_cores)}
    return cluster.add_node(env_vars=env, resources=resources, **node_args)
