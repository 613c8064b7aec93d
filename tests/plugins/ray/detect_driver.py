"""Started inside a namespace where Ray finds ncrt's neuron-ls: Ray counts the cores itself.

Starts a one-node Ray cluster without any hand-written resource, starts as many one-core
actors as Ray counted, and prints one JSON line: the cluster's resources and each actor's
view (``describe_worker``).
"""

from __future__ import annotations

import json

import ray

from ray_helpers import CoreWorker

ray.init(address="local", num_cpus=1, include_dashboard=False)
try:
    resources = ray.cluster_resources()
    Worker = ray.remote(num_cpus=0, resources={"neuron_cores": 1})(CoreWorker)
    workers = [Worker.remote() for _ in range(int(resources.get("neuron_cores", 0)))]
    infos = ray.get([worker.info.remote() for worker in workers], timeout=120)
    print(json.dumps({"resources": resources, "workers": infos}), flush=True)
finally:
    ray.shutdown()
