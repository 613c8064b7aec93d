"""Ray Serve: two replicas of a torch-neuron DataParallel model, two NeuronCores each.

One Ray node emulates an inf1.xlarge (4 NeuronCores): its environment names the instance
and a state directory of its own, and it advertises the cores as Ray's ``neuron_cores``
(on a host where ``ncrt ray link-neuron-ls`` was run, Ray counts them itself). The
deployment asks for ``{"neuron_cores": 2}`` per replica with ``num_replicas=2``; Ray writes
each replica's core ids into ``NEURON_RT_VISIBLE_CORES`` and ncrt reserves exactly those.
Each replica runs the model with ``torch.neuron.DataParallel`` over its two cores, and
``@serve.batch`` joins concurrent HTTP requests into one call. A client on 127.0.0.1
checks every response against the model's own output; ``ncrt ls`` and ``ncrt top`` show
each replica's process and cores. Last, two requests Ray could never place are refused.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import ray
import torch
from ray import serve

import ncrt.compat  # noqa: F401  (torch.neuron)
from ncrt.errors import CoresUnavailableError
from ncrt.ls import render, survey
from ncrt.plugins import ray as neuron_ray

INSTANCE = "inf1.xlarge"
REQUESTS = 32
CLIENT_THREADS = 8


class Classifier(torch.nn.Module):
    """A small image classifier (the examples have no torchvision)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.features = torch.nn.Sequential(
            torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1))
        self.head = torch.nn.Linear(8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).flatten(1))


@serve.deployment
class NeuronClassifier:
    """One replica: the compiled model on every NeuronCore Ray gave this process."""

    def __init__(self, model_path: str) -> None:
        import ncrt.compat  # noqa: F401  (in the replica's process too)

        self.model = torch.neuron.DataParallel(torch.jit.load(model_path))
        self.worker = neuron_ray.describe_worker()

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.02)
    async def classify(self, images: list[list]) -> list[dict]:
        with torch.no_grad():
            outputs = self.model(torch.tensor(images))
        return [{"output": row, "batch": len(images)} for row in outputs.tolist()]

    async def __call__(self, request) -> dict:  # noqa: ANN001 - a starlette Request
        result = await self.classify((await request.json())["image"])
        return {**result, "pid": self.worker["pid"], "cores": self.worker["global_cores"],
                "visible": self.worker["visible_cores"]}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def compile_model(directory: str) -> tuple[Path, Classifier]:
    model = Classifier().eval()
    path = Path(directory) / "classifier.pt"
    torch.jit.save(torch.neuron.trace(model, torch.rand([1, 3, 16, 16])), path)
    return path, model


def post(url: str, image: torch.Tensor) -> dict:
    body = json.dumps({"image": image.tolist()}).encode()
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def query(url: str, model: Classifier) -> list[dict]:
    """REQUESTS concurrent requests of one image each; every output checked against the model."""
    images = torch.rand([REQUESTS, 3, 16, 16], generator=torch.Generator().manual_seed(1))
    with ThreadPoolExecutor(CLIENT_THREADS) as pool:
        replies = list(pool.map(lambda image: post(url, image), images))
    with torch.no_grad():
        expected = model(images)
    got = torch.tensor([reply["output"] for reply in replies])
    torch.testing.assert_close(got, expected)
    print(f"{REQUESTS} requests over HTTP from 127.0.0.1: every output equals the model's own "
          f"(max |difference| {float((got - expected).abs().max()):.1e})")
    return replies


def show_replicas(replies: list[dict], state_dir: str) -> None:
    for pid, visible, cores in sorted({(r["pid"], r["visible"], tuple(r["cores"])) for r in replies}):
        print(f"replica pid {pid}: NEURON_RT_VISIBLE_CORES={visible} -> reserved nc{cores[0]}-{cores[-1]}")
    batches = sorted({reply["batch"] for reply in replies})
    print(f"requests per model call (serve.batch): {batches[0]} to {batches[-1]}")
    topology = neuron_ray.emulated_topology(INSTANCE)
    print("--- ncrt ls")
    print(render(topology, survey(topology, Path(state_dir))))
    print("--- ncrt top --once")
    top = subprocess.run([sys.executable, "-m", "ncrt", "top", "--once", "--no-color", "--width", "130"],
                         capture_output=True, text=True, timeout=60)
    print(top.stdout.rstrip() or top.stderr.rstrip())


def refuse_impossible_requests() -> None:
    for cores, instance in ((5, None), (1, "inf2.xlarge")):
        try:
            neuron_ray.actor_options(cores, instance)
        except CoresUnavailableError as error:
            print(f"refused: {error}")


def main() -> None:
    state_dir = tempfile.mkdtemp(prefix="ncrt-serve-node-")
    os.environ.update(neuron_ray.node_env(INSTANCE, state_dir))  # the node (and its workers) inherit it
    model_path, model = compile_model(tempfile.mkdtemp())
    port = free_port()
    ray.init(address="local", include_dashboard=False, resources=neuron_ray.node_resources(INSTANCE))
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        options = neuron_ray.actor_options(2, INSTANCE, num_cpus=0)  # {"resources": {"neuron_cores": 2, ...}}
        app = NeuronClassifier.options(num_replicas=2, ray_actor_options=options).bind(str(model_path))
        serve.run(app, route_prefix="/classify")
        replies = query(f"http://127.0.0.1:{port}/classify", model)
        show_replicas(replies, state_dir)
        refuse_impossible_requests()
        serve.shutdown()
    finally:
        ray.shutdown()


if __name__ == "__main__":
    main()
