"""Actor options asking Ray for NeuronCores, checked against what the cluster emulates.

Ray leaves an actor that no node can hold pending for ever (an "infeasible" request,
reported only in the logs). :func:`actor_options` refuses such a request at once, with
the nodes and what they offer: more ``neuron_cores`` than any node emulates, or an
instance type no node emulates. The dict it returns goes to ``Actor.options(**...)``,
``@ray.remote(**...)`` or a Serve deployment's ``ray_actor_options``.
"""

from __future__ import annotations

from typing import Any

from ncrt.errors import ConfigError, CoresUnavailableError
from ncrt.topology import PRESETS

from .nodes import NeuronNode, describe_nodes, neuron_nodes
from .resources import RESOURCE_NAME, instance_resource

__all__ = ["INSTANCE_REQUEST", "actor_options", "check_request"]

# How much of a node's instance-type resource (1 unit) an actor asks for, as Ray's
# ``accelerator_type:`` resources are asked for: any number of actors fit.
INSTANCE_REQUEST = 0.001


def _check_count(neuron_cores: Any) -> int:
    whole = isinstance(neuron_cores, int) or (isinstance(neuron_cores, float) and neuron_cores.is_integer())
    if isinstance(neuron_cores, bool) or not whole or neuron_cores < 1:
        raise ConfigError(RESOURCE_NAME, neuron_cores, "a whole number >= 1 (Ray's neuron_cores are whole cores)")
    return int(neuron_cores)


def _check_instance_name(instance_type: str | None) -> None:
    if instance_type is not None and instance_type not in PRESETS:
        raise ConfigError("instance_type", instance_type, "one of " + ", ".join(PRESETS) + " or None (any node)")


def check_request(neuron_cores: int, instance_type: str | None, nodes: list[NeuronNode]) -> list[NeuronNode]:
    """The nodes that can hold an actor asking for ``neuron_cores`` (on ``instance_type``); raise if none."""
    candidates = [node for node in nodes if instance_type is None or node.instance_type == instance_type]
    if not candidates:
        raise CoresUnavailableError(
            f"no node of the Ray cluster emulates {instance_type} - nodes: {describe_nodes(nodes)}; start one "
            f"with NCRT_INSTANCE_TYPE={instance_type} and the resources of "
            f"ncrt.plugins.ray.node_resources({instance_type!r}) (ncrt ray resources --instance-type {instance_type})"
        )
    holding = [node for node in candidates if node.neuron_cores >= neuron_cores]
    if not holding:
        largest = max(node.neuron_cores for node in candidates)
        where = f"{instance_type} node" if instance_type else "node"
        raise CoresUnavailableError(
            f"an actor asking for {neuron_cores} {RESOURCE_NAME} cannot be placed: the largest {where} emulates "
            f"{largest} - nodes: {describe_nodes(nodes)}; accepted: 1 to {largest} {RESOURCE_NAME}, "
            "or a node of a larger instance type"
        )
    return holding


def actor_options(neuron_cores: int, instance_type: str | None = None, *, check: bool = True,
                  **options: Any) -> dict[str, Any]:
    """``{"resources": {"neuron_cores": n, ...}, **options}`` for an actor holding ``neuron_cores`` cores.

    ``instance_type`` also asks for a node emulating that instance. With ``check`` (the
    default; needs ``ray.init``) the request is checked against the live nodes and an
    impossible one raises :class:`~ncrt.errors.CoresUnavailableError` instead of pending
    for ever. ``options`` (``num_cpus``, ``resources``, ...) are merged in.
    """
    count = _check_count(neuron_cores)
    _check_instance_name(instance_type)
    if check:
        check_request(count, instance_type, neuron_nodes())
    resources = {**options.pop("resources", {}), RESOURCE_NAME: count}
    if instance_type is not None:
        resources[instance_resource(instance_type)] = INSTANCE_REQUEST
    return {**options, "resources": resources}
