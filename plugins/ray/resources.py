"""What a Ray node advertises for the NeuronCores it emulates, and how Ray finds them.

Ray counts a node's ``neuron_cores`` by running ``/opt/aws/neuron/bin/neuron-ls
--json-output`` and summing ``nc_count`` (``ray/_private/accelerators/neuron.py``), in
the process that starts the node, with that process's environment. ncrt's ``neuron-ls``
console script prints that JSON for the instance named by ``NCRT_INSTANCE_TYPE``, so the
one step that makes Ray count emulated cores is to put it at that path
(:func:`link_neuron_ls`, ``ncrt ray link-neuron-ls``).

Where that path cannot be written, or where nodes are started from one process with
different environments (``ray.cluster_utils.Cluster``), :func:`node_resources` gives the
same count as a resources dict. Either way Ray treats ``neuron_cores`` as its Neuron
accelerator: it gives each actor core ids and writes them into ``NEURON_RT_VISIBLE_CORES``,
which ncrt reserves.

Each node also advertises ``neuron_instance_type:<type>`` (1 unit), so that actors can
ask for an instance type (:func:`ncrt.plugins.ray.actor_options` asks for 0.001 of it,
as Ray's own ``accelerator_type:`` resources are asked for).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from ncrt.config import parse_config
from ncrt.errors import ConfigError, FrameworkMissingError, NcrtError
from ncrt.neuron_ls import device_records
from ncrt.topology import Topology, build_topology

__all__ = [
    "INSTANCE_RESOURCE_PREFIX",
    "NEURON_BIN_DIR",
    "RESOURCE_NAME",
    "detected_neuron_cores",
    "emulated_topology",
    "import_ray",
    "instance_resource",
    "link_neuron_ls",
    "neuron_ls_script",
    "node_env",
    "node_resources",
]

RESOURCE_NAME = "neuron_cores"
INSTANCE_RESOURCE_PREFIX = "neuron_instance_type:"
# Where Ray (and Neuron users' scripts) look for neuron-ls.
NEURON_BIN_DIR = Path("/opt/aws/neuron/bin")


def import_ray():  # noqa: ANN201 - the ray module
    """``import ray``, or the error naming the ``ncrt[ray]`` extra."""
    try:
        import ray
    except ImportError:
        raise FrameworkMissingError("ray", "ray") from None
    return ray


def instance_resource(instance_type: str) -> str:
    """The custom resource naming a node's instance type: ``neuron_instance_type:inf1.xlarge``."""
    return f"{INSTANCE_RESOURCE_PREFIX}{instance_type}"


def emulated_topology(instance_type: str | None = None) -> Topology:
    """The topology a node emulates: ``instance_type``, else ``NCRT_INSTANCE_TYPE``, else the host."""
    return build_topology(instance_type or parse_config().instance_type)


def node_resources(instance_type: str | None = None, neuron_cores: int | None = None) -> dict[str, int]:
    """Ray resources of a node emulating ``instance_type``: ``{"neuron_cores": 4, "neuron_instance_type:inf1.xlarge": 1}``.

    The count is the sum of ``nc_count`` over the neuron-ls devices, as Ray computes it.
    ``neuron_cores`` may advertise fewer (never more) cores than the instance has.
    """
    topology = emulated_topology(instance_type)
    count = sum(device["nc_count"] for device in device_records(topology))
    if neuron_cores is not None:
        if isinstance(neuron_cores, bool) or not isinstance(neuron_cores, int) or not 1 <= neuron_cores <= count:
            raise ConfigError(RESOURCE_NAME, neuron_cores,
                              f"a whole number from 1 to {count} ({topology.name} emulates {count} NeuronCores)")
        count = neuron_cores
    return {RESOURCE_NAME: count, instance_resource(topology.name): 1}


def node_env(instance_type: str | None, state_dir: str | os.PathLike[str]) -> dict[str, str]:
    """The environment that makes a node emulate its own instance: ``NCRT_INSTANCE_TYPE``, ``NCRT_STATE_DIR``.

    Each node needs a state directory of its own (its cores' locks), as each real
    instance has its own devices. ``instance_type=None`` emulates the host.
    """
    topology = emulated_topology(instance_type)
    env = {"NCRT_STATE_DIR": os.fspath(state_dir)}
    if topology.name != "host":
        env["NCRT_INSTANCE_TYPE"] = topology.name
    return env


def neuron_ls_script() -> Path:
    """ncrt's ``neuron-ls`` console script: beside this interpreter, else on ``PATH``."""
    beside = Path(sys.executable).parent / "neuron-ls"
    if beside.is_file():
        return beside
    found = shutil.which("neuron-ls")
    if found is None:
        raise NcrtError("ncrt's neuron-ls console script is not installed; reinstall ncrt (pip install 'ncrt[ray]')")
    return Path(found)


def _is_ours(path: Path, script: Path) -> bool:
    return path.is_symlink() and Path(os.readlink(path)) == script


def link_neuron_ls(bin_dir: str | os.PathLike[str] = NEURON_BIN_DIR, *, force: bool = False) -> Path:
    """Make ``bin_dir/neuron-ls`` a link to ncrt's neuron-ls (the one step Ray needs); returns the link.

    Refuses to replace a file that is not already such a link unless ``force`` (a real
    Neuron host's own neuron-ls must not be clobbered by accident).
    """
    script = neuron_ls_script()
    link = Path(bin_dir) / "neuron-ls"
    if _is_ours(link, script):
        return link
    if os.path.lexists(link):
        if not force:
            raise NcrtError(f"{link} exists and is not a link to {script}; "
                            "pass force=True (ncrt ray link-neuron-ls --force) to replace it")
        link.unlink()
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(script)
    return link


def detected_neuron_cores() -> int:
    """The ``neuron_cores`` Ray itself detects on this machine, with this environment (needs ray)."""
    import_ray()
    from ray._private.accelerators.neuron import NeuronAcceleratorManager

    return int(NeuronAcceleratorManager.get_current_node_num_accelerators())
