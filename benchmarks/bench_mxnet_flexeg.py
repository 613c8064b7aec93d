"""Seed 002 FlexEG throughput: four models on disjoint core groups vs. overlapping groups vs. bare MXNet.

Models A, B, C, D (compiled to 2, 4, 3, 4 NeuronCores) on an inf1.6xlarge preset:

* ``ncrt disjoint``     mx.neuron(0), (2), (6), (9): no shared core, the four run in parallel;
* ``ncrt overlapping``  mx.neuron(0), (2), (5), (9): B and C share NC5 and take turns there;
* ``bare sequential``   the four models one after another on the CPU (plain MXNet in a
  separate process, so that ncrt's thread settings do not apply), at the best of the
  settings below;
* ``bare threads``      the best hand-written alternative: one Python thread per model, each
  with its own executor, at the best of the engine worker counts 1 and host CPUs and
  ``OMP_NUM_THREADS`` unset and 1 (MXNet's default threaded engine);
* ``bare threads (NaiveEngine)`` the same with ``MXNET_ENGINE_TYPE=NaiveEngine`` (each
  thread runs its operators itself; what ncrt sets by default), best of ``OMP_NUM_THREADS``
  unset and 1.

Each model serves the same number of requests (one batch each) from its own client thread.
Prints inferences per second and the ratios. ``--quick`` runs fewer requests.

    python benchmarks/bench_mxnet_flexeg.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import warnings

from _summary import record

SEED_MODELS = (("A", 2), ("B", 4), ("C", 3), ("D", 4))
LAYOUTS = {"ncrt disjoint": (0, 2, 6, 9), "ncrt overlapping": (0, 2, 5, 9)}
BATCH, FEATURES, WIDTH = 32, 256, 512


def build_models(mx, directory: str) -> dict[str, str]:
    """Export and compile the four models; return their checkpoint prefixes."""
    from mxnet import gluon

    from ncrt.adapters.mxnet import export_block

    prefixes = {}
    for name, cores in SEED_MODELS:
        net = gluon.nn.HybridSequential(prefix=f"model{name}_")
        with net.name_scope():
            for _ in range(3):
                net.add(gluon.nn.Dense(WIDTH, activation="relu"))
            net.add(gluon.nn.Dense(10))
        net.initialize(mx.init.Xavier())
        example = mx.nd.ones((BATCH, FEATURES))
        sym, args, aux = export_block(net, os.path.join(directory, f"plain{name}"), example)
        flags = ["--neuroncore-pipeline-cores", str(cores)]
        sym, args, aux = mx.contrib.neuron.compile(sym, args, aux, {"data": example}, flags=flags)
        prefixes[name] = os.path.join(directory, f"model{name}")
        mx.model.save_checkpoint(prefixes[name], 0, sym, args, aux)
    return prefixes


def serve(forwards: list, requests: int) -> float:
    """Run ``requests`` calls of each forward function from its own thread; return inferences/s."""
    threads = [threading.Thread(target=lambda f=f: [f() for _ in range(requests)]) for f in forwards]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return len(forwards) * requests * BATCH / (time.perf_counter() - start)


def ncrt_throughput(mx, prefixes: dict[str, str], starts: tuple[int, ...], requests: int) -> tuple[float, int]:
    """Inferences/s of the four models bound at ``starts``, and the model switches it cost."""
    import ncrt

    ncrt.reset_runtime()
    runtime = ncrt.get_runtime()
    inputs = mx.nd.random.uniform(shape=(BATCH, FEATURES))
    models = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ncrt.ModelSwitchWarning)
        for (name, _), start in zip(SEED_MODELS, starts):
            sym, args, aux = mx.model.load_checkpoint(prefixes[name], 0)
            models.append(sym.bind(ctx=mx.neuron(start), args=args, aux_states=aux, grad_req="null"))
    forwards = [lambda m=m: m.forward(data=inputs) for m in models]
    serve(forwards, 2)
    switches = sum(c.model_switches for c in runtime.counters)
    ips = serve(forwards, requests)
    return ips, sum(c.model_switches for c in runtime.counters) - switches


BARE_SETTINGS = [  # (line of the table, MXNET_ENGINE_TYPE, MXNET_CPU_WORKER_NTHREADS, OMP_NUM_THREADS)
    *[("bare threads", None, workers, omp) for workers in sorted({"1", str(len(os.sched_getaffinity(0)))})
      for omp in (None, "1")],
    *[("bare threads (NaiveEngine)", "NaiveEngine", None, omp) for omp in (None, "1")],
]


def bare_throughput(directory: str, requests: int) -> dict[str, float]:
    """Plain MXNet in child processes: sequential and threaded, each at the best of its
    settings (threaded: per family of :data:`BARE_SETTINGS`)."""
    results: dict[str, float] = {}
    for line, engine, workers, omp in BARE_SETTINGS:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MXNET_") and k != "OMP_NUM_THREADS"}
        env.update({name: value for name, value in (("MXNET_ENGINE_TYPE", engine), ("MXNET_CPU_WORKER_NTHREADS", workers),
                                                     ("OMP_NUM_THREADS", omp)) if value is not None})
        command = [sys.executable, __file__, "--bare", directory, "--requests", str(requests)]
        output = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
        measured = json.loads(output.strip().splitlines()[-1])
        results["bare sequential"] = max(results.get("bare sequential", 0.0), measured["sequential"])
        results[line] = max(results.get(line, 0.0), measured["threads"])
    return results


def bare_main(directory: str, requests: int) -> None:
    """Child process: bare MXNet, no ncrt; print JSON {sequential, threads}."""
    import numpy

    numpy.bool = bool  # what any MXNet 1.9.1 user on NumPy >= 1.24 must do
    import mxnet as mx

    inputs = mx.nd.random.uniform(shape=(BATCH, FEATURES))
    executors = []
    for name, _ in SEED_MODELS:
        sym, args, aux = mx.model.load_checkpoint(os.path.join(directory, f"model{name}"), 0)
        executors.append(sym.bind(mx.cpu(), {**args, "data": inputs}, aux_states=aux, grad_req="null"))
    # forward(data=...) as the seed code calls it: the inputs are copied in on every call.
    # With the naive engine, each thread runs its own executor's operators.
    forwards = [lambda e=e: e.forward(is_train=False, data=inputs)[0].wait_to_read() for e in executors]
    for forward in forwards:
        forward()
    start = time.perf_counter()
    for forward in forwards:
        for _ in range(requests):
            forward()
    sequential = len(forwards) * requests * BATCH / (time.perf_counter() - start)
    print(json.dumps({"sequential": sequential, "threads": serve(forwards, requests)}))


def report(results: dict[str, float], switches: dict[str, int]) -> None:
    base = results["bare sequential"]
    best_bare = max(v for k, v in results.items() if k.startswith("bare"))
    print(f"{'configuration':38s} {'inferences/s':>12s} {'vs bare seq':>11s} {'vs best bare':>12s}")
    for name, ips in results.items():
        extra = f"  ({switches[name]} model switches)" if name in switches else ""
        print(f"{name:38s} {ips:12.0f} {ips / base:10.2f}x {ips / best_bare:11.2f}x{extra}")
    ratio = results["ncrt disjoint"] / results["ncrt overlapping"]
    print(f"disjoint / overlapping: {ratio:.2f}x")
    for name, ips in results.items():
        if name.startswith("bare"):
            record("MXNet four models", f"ncrt disjoint / {name}", results["ncrt disjoint"] / ips, 1.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer requests (a smoke run)")
    parser.add_argument("--requests", type=int, default=None, help="requests per model")
    parser.add_argument("--bare", metavar="DIR", help=argparse.SUPPRESS)
    options = parser.parse_args()
    requests = options.requests or (20 if options.quick else 150)
    if options.bare:
        return bare_main(options.bare, requests)
    os.environ.setdefault("NCRT_INSTANCE_TYPE", "inf1.6xlarge")
    from ncrt.plugins.mxnet import enable

    mx = enable()
    rounds = 1 if options.quick else 2
    with tempfile.TemporaryDirectory() as directory:
        prefixes = build_models(mx, directory)
        results, switches = measure_rounds(mx, directory, prefixes, requests, rounds)
    print(f"host CPUs: {len(os.sched_getaffinity(0))}, batch {BATCH}, {requests} requests per model, "
          f"best of {rounds} interleaved round(s)")
    report(results, switches)


def measure_rounds(mx, directory: str, prefixes: dict[str, str], requests: int,
                   rounds: int) -> tuple[dict[str, float], dict[str, int]]:
    """Every configuration ``rounds`` times, interleaved; keep the best throughput of each."""
    results: dict[str, float] = {}
    switches: dict[str, int] = {}
    for _ in range(rounds):
        for name, ips in bare_throughput(directory, requests).items():
            results[name] = max(results.get(name, 0.0), ips)
        for name, starts in LAYOUTS.items():
            ips, switches[name] = ncrt_throughput(mx, prefixes, starts, requests)
            results[name] = max(results.get(name, 0.0), ips)
    return results, switches


if __name__ == "__main__":
    main()
