"""Two real Ray nodes on this machine, each emulating its own inf1.xlarge.

One cluster for the whole module (Ray starts slowly on 2 CPUs): two nodes made with
``ncrt.plugins.ray.add_node`` (each its own ``NCRT_INSTANCE_TYPE`` and ``NCRT_STATE_DIR``),
and eight actors of one ``neuron_cores`` each, which fill both nodes. Every wait is bounded.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from ncrt.errors import CoresUnavailableError
from ncrt.plugins import ray as neuron_ray
from ncrt.reservation import Reservation, probe_holders

from ray_helpers import CoreWorker, node_environment

pytestmark = pytest.mark.slow

INSTANCE = "inf1.xlarge"
TOPOLOGY = neuron_ray.emulated_topology(INSTANCE)


RemoteWorker = ray.remote(num_cpus=0)(CoreWorker)


@dataclass
class TwoNodes:
    ray_cluster: object
    state_dirs: dict[str, Path]
    workers: list = field(default_factory=list)
    infos: list[dict] = field(default_factory=list)

    def holders(self, node_id: str) -> dict[int, int | None]:
        found = probe_holders(TOPOLOGY, self.state_dirs[node_id])
        return {core: holder.pid if holder else None for core, holder in found.items()}


def wait_until_free(state_dir: Path, core: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while probe_holders(TOPOLOGY, state_dir)[core] is not None:
        assert time.monotonic() < deadline, f"nc{core} of {state_dir} still held after {timeout} s"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A two-node cluster, connected; shut down when the module ends."""
    from ray.cluster_utils import Cluster

    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(node_environment())  # what the nodes' raylets inherit
    cluster = Cluster()
    try:
        state_dirs = {}
        for name in ("a", "b"):
            state_dir = tmp_path_factory.mktemp(f"node-{name}")
            node = neuron_ray.add_node(cluster, INSTANCE, state_dir, num_cpus=1, include_dashboard=False)
            state_dirs[node.node_id] = state_dir
        ray.init(address=cluster.address)
        cluster.wait_for_nodes(timeout=120)
    except BaseException:
        cluster.shutdown()
        raise
    finally:
        os.environ.clear()
        os.environ.update(saved)
    yield TwoNodes(cluster, state_dirs)
    ray.shutdown()
    cluster.shutdown()


@pytest.fixture(scope="module")
def filled(cluster):
    """Eight one-core actors: both nodes full."""
    options = neuron_ray.actor_options(1, INSTANCE)
    cluster.workers = [RemoteWorker.options(**options).remote() for _ in range(8)]
    cluster.infos = ray.get([worker.info.remote() for worker in cluster.workers], timeout=180)
    return cluster


def test_each_node_advertises_the_cores_it_emulates(cluster):
    nodes = neuron_ray.neuron_nodes()
    assert sorted(node.node_id for node in nodes) == sorted(cluster.state_dirs)
    assert all(node.neuron_cores == 4 and node.instance_type == INSTANCE for node in nodes)
    assert ray.cluster_resources()["neuron_cores"] == 8


def test_actors_spread_over_both_nodes_and_hold_exactly_rays_cores(filled):
    by_node: dict[str, list[dict]] = {}
    for info in filled.infos:
        by_node.setdefault(info["node_id"], []).append(info)
        assert info["ray_core_ids"] == info["global_cores"] and info["visible_cores"] == str(info["global_cores"][0])
        assert info["instance_type"] == INSTANCE and Path(info["state_dir"]) == filled.state_dirs[info["node_id"]]
    assert sorted(by_node) == sorted(filled.state_dirs)
    for node_id, infos in by_node.items():
        assert sorted(info["global_cores"][0] for info in infos) == [0, 1, 2, 3]
        assert filled.holders(node_id) == {info["global_cores"][0]: info["pid"] for info in infos}
    results = ray.get([worker.infer.remote() for worker in filled.workers], timeout=60)
    assert all(result == [[24.0, 28.0, 32.0, 36.0]] * 2 for result in results)


def test_a_nodes_cores_are_exclusive_to_its_actors(filled):
    node_a, node_b = sorted(filled.state_dirs)
    holder_a, holder_b = filled.holders(node_a)[2], filled.holders(node_b)[2]
    assert holder_a != holder_b  # core 2 of each instance: two processes, two instances
    with pytest.raises(CoresUnavailableError) as refused:
        Reservation.acquire(TOPOLOGY, visible=(2,), state_dir=filled.state_dirs[node_a])
    assert f"nc2 held by pid {holder_a}" in str(refused.value)


def test_killing_an_actor_frees_its_core_on_its_node_for_the_next_actor(filled):
    victim, info = filled.workers[0], filled.infos[0]
    node_id, core = info["node_id"], info["global_cores"][0]
    other = next(node for node in filled.state_dirs if node != node_id)
    before = filled.holders(other)
    ray.kill(victim)
    wait_until_free(filled.state_dirs[node_id], core)
    assert filled.holders(other) == before
    strategy = NodeAffinitySchedulingStrategy(node_id, soft=False)
    successor = RemoteWorker.options(**neuron_ray.actor_options(1, INSTANCE), scheduling_strategy=strategy).remote()
    after = ray.get(successor.info.remote(), timeout=120)
    assert (after["node_id"], after["global_cores"]) == (node_id, [core])
    assert filled.holders(node_id)[core] == after["pid"] != info["pid"]
    filled.workers[0], filled.infos[0] = successor, after


def test_impossible_requests_are_refused_with_the_nodes_named(cluster):
    assert neuron_ray.actor_options(4, INSTANCE)["resources"]["neuron_cores"] == 4
    with pytest.raises(CoresUnavailableError, match="asking for 5 neuron_cores cannot be placed: the largest "
                                                    "node emulates 4") as too_many:
        neuron_ray.actor_options(5)
    assert str(too_many.value).count("inf1.xlarge node") == 2
    with pytest.raises(CoresUnavailableError, match="no node of the Ray cluster emulates inf2.xlarge"):
        neuron_ray.actor_options(1, "inf2.xlarge")


def test_a_node_advertising_more_cores_than_it_emulates_fails_its_actor_clearly(cluster, tmp_path):
    """Hand-written resources past the instance: the actor's runtime refuses Ray's ids (last test: adds a node)."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(node_environment())
    try:
        node = cluster.ray_cluster.add_node(env_vars=neuron_ray.node_env(INSTANCE, tmp_path), num_cpus=1,
                                            resources={"neuron_cores": 8})
    finally:
        os.environ.clear()
        os.environ.update(saved)
    try:
        strategy = NodeAffinitySchedulingStrategy(node.node_id, soft=False)
        actor = RemoteWorker.options(resources={"neuron_cores": 6}, scheduling_strategy=strategy).remote()
        with pytest.raises(ray.exceptions.RayActorError) as failed:
            ray.get(actor.info.remote(), timeout=120)
        message = str(failed.value)
        assert "NEURON_RT_VISIBLE_CORES='0-5' is not valid (core 4 does not exist; the last core is 3)" in message
        assert "Failed to deserialize" not in message  # ncrt errors pickle (ncrt.errors.NcrtError.__reduce__)
    finally:
        cluster.ray_cluster.remove_node(node)
