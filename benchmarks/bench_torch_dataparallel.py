"""DataParallel over every core against bare torch and a hand-tuned thread pool (batch 64).

Model: the small CNN of ``examples/torch/dataparallel_default.py``. Printed: images/s of

- bare torch: the whole batch in one call, with the best ``torch.set_num_threads`` found;
- hand-tuned pool: a ThreadPoolExecutor over chunk sizes and worker counts, each worker
  with ``cpus // workers`` intra-op threads (the best combination);
- ncrt DataParallel on all of the process's cores, for several compiled batch sizes;

and the ratios DataParallel / bare and DataParallel / pool, plus the bytes of weights the
replicas hold with and without ``NEURON_RT_MULTI_INSTANCE_SHARED_WEIGHTS``.
Run: ``python benchmarks/bench_torch_dataparallel.py [--quick]`` (under 2 minutes).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

import torch

import ncrt
from ncrt.plugins import torch as neuron
from ncrt.plugins.torch_parallel import DataParallel

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "torch" / "dataparallel_default.py"
BATCH = 64
SHAPE = (3, 32, 32)


def load_example_model() -> torch.nn.Module:
    spec = importlib.util.spec_from_file_location("torch_example_default", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.SmallCNN().eval()


def images_per_second(run: Callable[[], Any], seconds: float) -> float:
    """Median throughput of ``run`` (one batch per call) over about ``seconds``."""
    run()
    run()
    times: list[float] = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(times) < 3:
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return BATCH / statistics.median(times)


def bench_bare(model: torch.nn.Module, batch: torch.Tensor, seconds: float) -> tuple[float, int]:
    default = torch.get_num_threads()
    best = (0.0, default)
    for threads in sorted({1, 2, os.cpu_count() or 1, default}):
        torch.set_num_threads(threads)
        with torch.no_grad():
            rate = images_per_second(lambda: model(batch), seconds)
        print(f"  bare torch, {threads} thread(s): {rate:8.0f} images/s")
        best = max(best, (rate, threads))
    torch.set_num_threads(default)
    return best


def bench_pool(model: torch.nn.Module, batch: torch.Tensor, seconds: float, quick: bool) -> tuple[float, str]:
    cpus = os.cpu_count() or 1
    best = (0.0, "")
    for workers in ((2,) if quick else (1, 2, 4)):
        threads = max(1, cpus // workers)
        pool = ThreadPoolExecutor(workers, initializer=torch.set_num_threads, initargs=(threads,))

        def forward(chunk: torch.Tensor) -> torch.Tensor:
            with torch.no_grad():
                return model(chunk)

        for chunk in ((8, 32) if quick else (1, 4, 8, 16, 32)):
            rate = images_per_second(lambda: torch.cat(list(pool.map(forward, batch.split(chunk)))), seconds)
            label = f"{workers} workers x {threads} thread(s), chunks of {chunk}"
            print(f"  hand-tuned pool, {label}: {rate:8.0f} images/s")
            best = max(best, (rate, label))
        pool.shutdown()
    return best


def bench_dataparallel(model: torch.nn.Module, batch: torch.Tensor, seconds: float,
                       quick: bool) -> tuple[float, int]:
    best = (0.0, 0)
    for compiled in ((1, 8) if quick else (1, 4, 8, 16)):
        parallel = DataParallel(neuron.trace(model, torch.rand(compiled, *SHAPE)))
        with torch.no_grad():
            torch.testing.assert_close(parallel(batch), model(batch))
        rate = images_per_second(lambda: parallel(batch), seconds)
        print(f"  ncrt DataParallel on {parallel.placement_label}, compiled batch {compiled}: {rate:8.0f} images/s")
        best = max(best, (rate, compiled))
        parallel.loaded.unload()
    return best


def weight_copies(model: torch.nn.Module, shared: bool) -> int:
    os.environ["NEURON_RT_MULTI_INSTANCE_SHARED_WEIGHTS"] = "true" if shared else "false"
    ncrt.reset_runtime()
    parallel = DataParallel(neuron.trace(model, torch.rand(1, *SHAPE)))
    parallel(torch.rand(len(parallel.device_ids), *SHAPE))
    return parallel.weight_bytes()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer configurations, shorter timing")
    options = parser.parse_args()
    warnings.simplefilter("ignore")
    seconds = 0.5 if options.quick else 1.5
    model = load_example_model()
    batch = torch.rand(BATCH, *SHAPE)
    runtime = ncrt.get_runtime()
    print(f"host CPUs: {os.cpu_count()}, ncrt cores: {len(runtime.cores)}, batch {BATCH} x {SHAPE}")
    bare, threads = bench_bare(model, batch, seconds)
    pool, pool_label = bench_pool(model, batch, seconds, options.quick)
    parallel, compiled = bench_dataparallel(model, batch, seconds, options.quick)
    print(f"bare torch (best, {threads} thread(s)):      {bare:8.0f} images/s")
    print(f"hand-tuned pool (best, {pool_label}): {pool:8.0f} images/s")
    print(f"ncrt DataParallel (best, compiled batch {compiled}): {parallel:8.0f} images/s")
    print(f"ratio DataParallel / bare torch: {parallel / bare:.2f}")
    print(f"ratio DataParallel / hand-tuned pool: {parallel / pool:.2f}")
    copies, shared = weight_copies(model, False), weight_copies(model, True)
    print(f"weights held by the replicas: {copies} bytes (a copy per core), {shared} bytes "
          f"(NEURON_RT_MULTI_INSTANCE_SHARED_WEIGHTS=true)")


if __name__ == "__main__":
    main()
