"""Two Ray nodes on one machine, each emulating its own inf1.xlarge.

``ray.cluster_utils.Cluster`` starts two nodes; each gets its own environment
(``NCRT_INSTANCE_TYPE=inf1.xlarge`` and a state directory of its own, as each real
instance has its own Neuron devices) and advertises its 4 NeuronCores as ``neuron_cores``.
Eight actors asking for one ``neuron_cores`` each spread over both nodes: every node's
cores 0-3 are held, each by one actor, and each actor runs a small model on its core.
Killing an actor frees its core on its node at once, and the next actor gets it. An actor
asking for more cores than a node emulates, or for an instance type no node has, is
refused before Ray would leave it pending.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import ray
from ray.cluster_utils import Cluster

import ncrt
from ncrt.errors import CoresUnavailableError
from ncrt.reservation import probe_holders
from ncrt.plugins import ray as neuron_ray

INSTANCE = "inf1.xlarge"


@ray.remote(num_cpus=0)
class CoreWorker:
    """An application process holding the NeuronCores Ray gave it, with a model on them."""

    def __init__(self) -> None:
        weights = np.random.default_rng(0).standard_normal((64, 64)).astype("float32")
        self.model = ncrt.load(lambda x: np.tanh(x @ weights), name="dense")

    def info(self) -> dict:
        return neuron_ray.describe_worker()

    def infer(self) -> float:
        return float(self.model(np.ones((8, 64), dtype="float32")).sum())


def start_cluster() -> tuple[Cluster, dict[str, str]]:
    """Two nodes, each emulating INSTANCE with a state directory of its own."""
    cluster = Cluster()
    state_dirs = {}
    for _ in range(2):
        state_dir = tempfile.mkdtemp(prefix="ncrt-ray-node-")
        node = neuron_ray.add_node(cluster, INSTANCE, state_dir, num_cpus=1, include_dashboard=False)
        state_dirs[node.node_id] = state_dir
    ray.init(address=cluster.address)
    cluster.wait_for_nodes()
    return cluster, state_dirs


def holders_by_node(state_dirs: dict[str, str]) -> dict[str, dict[int, int | None]]:
    """For each node: which pid holds each of its cores (probed from its core locks)."""
    topology = neuron_ray.emulated_topology(INSTANCE)
    return {node: {core: holder.pid if holder else None for core, holder in
                   probe_holders(topology, Path(state_dir)).items()} for node, state_dir in state_dirs.items()}


def show(state_dirs: dict[str, str], infos: list[dict]) -> None:
    by_pid = {info["pid"]: info for info in infos}
    for number, (node, cores) in enumerate(holders_by_node(state_dirs).items()):
        held = ", ".join(f"nc{core}: pid {pid}" if pid else f"nc{core}: free" for core, pid in cores.items())
        print(f"node {number} ({INSTANCE}, {node[:8]}): {held}")
        assert all(by_pid[pid]["node_id"] == node for pid in cores.values() if pid in by_pid)


def wait_until_free(state_dir: str, core: int, timeout: float = 30.0) -> float:
    topology = neuron_ray.emulated_topology(INSTANCE)
    started = time.monotonic()
    while probe_holders(topology, Path(state_dir))[core] is not None:
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"nc{core} of {state_dir} still held after {timeout} s")
        time.sleep(0.05)
    return time.monotonic() - started


def main() -> None:
    cluster, state_dirs = start_cluster()
    try:
        print("nodes:", neuron_ray.describe_nodes(neuron_ray.neuron_nodes()))
        workers = [CoreWorker.options(**neuron_ray.actor_options(1, INSTANCE)).remote() for _ in range(8)]
        infos = ray.get([worker.info.remote() for worker in workers], timeout=120)
        print(f"8 actors on {len({info['node_id'] for info in infos})} nodes, results "
              f"{sorted(set(round(r, 3) for r in ray.get([w.infer.remote() for w in workers], timeout=60)))}")
        show(state_dirs, infos)
        victim, info = workers[0], infos[0]
        ray.kill(victim)
        freed = wait_until_free(state_dirs[info["node_id"]], info["global_cores"][0])
        print(f"killed pid {info['pid']}: nc{info['global_cores'][0]} of node {info['node_id'][:8]} "
              f"free after {freed:.2f} s")
        successor = CoreWorker.options(**neuron_ray.actor_options(1, INSTANCE)).remote()
        after = ray.get(successor.info.remote(), timeout=60)
        print(f"the next actor, pid {after['pid']}, holds nc{after['global_cores'][0]} "
              f"of node {after['node_id'][:8]}")
        for cores, instance in ((5, None), (1, "inf2.xlarge")):
            try:
                neuron_ray.actor_options(cores, instance)
            except CoresUnavailableError as error:
                print(f"refused: {error}")
    finally:
        ray.shutdown()
        cluster.shutdown()


if __name__ == "__main__":
    main()
