"""DataParallel over every core against bare torch and a hand-tuned thread pool (batch 64).

Model: the small CNN of ``examples/torch/_cnn.py``. Printed: images/s of

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
from _summary import record

import ncrt
from ncrt.plugins import torch as neuron
from ncrt.plugins.torch import DataParallel

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "torch" / "_cnn.py"
BATCH = 64
SHAPE = (3, 32, 32)


def load_example_model() -> torch.nn.Module:
    spec = importlib.util.spec_from_file_location("torch_example_cnn", EXAMPLE)
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


class Candidate:
    """One configuration to time: ``prepare()`` before each timing round, then ``run()``."""

    def __init__(self, kind: str, label: str, run: Callable[[], Any],
                 prepare: Callable[[], None] = lambda: None) -> None:
        self.kind, self.label, self.run, self.prepare = kind, label, run, prepare
        self.best = 0.0


def bare_candidates(model: torch.nn.Module, batch: torch.Tensor) -> list[Candidate]:
    def forward() -> torch.Tensor:
        with torch.no_grad():
            return model(batch)

    counts = sorted({1, 2, os.cpu_count() or 1, torch.get_num_threads()})
    return [Candidate("bare", f"bare torch, {threads} thread(s)", forward,
                      lambda threads=threads: torch.set_num_threads(threads)) for threads in counts]


def pool_candidates(model: torch.nn.Module, batch: torch.Tensor, quick: bool,
                    pools: list[ThreadPoolExecutor]) -> list[Candidate]:
    cpus = os.cpu_count() or 1

    def forward(chunk: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return model(chunk)

    found = []
    for workers in ((2,) if quick else (1, 2, 4)):
        threads = max(1, cpus // workers)
        pool = ThreadPoolExecutor(workers, initializer=torch.set_num_threads, initargs=(threads,))
        pools.append(pool)
        for chunk in ((16, 32) if quick else (1, 4, 8, 16, 32)):
            run = lambda pool=pool, chunk=chunk: torch.cat(list(pool.map(forward, batch.split(chunk))))
            found.append(Candidate("pool", f"hand-tuned pool, {workers} workers x {threads} thread(s), "
                                   f"chunks of {chunk}", run))
    return found


def dataparallel_candidates(model: torch.nn.Module, batch: torch.Tensor, quick: bool) -> list[Candidate]:
    found = []
    for compiled in ((16, 32) if quick else (1, 4, 8, 16, 32)):
        parallel = DataParallel(neuron.trace(model, torch.rand(compiled, *SHAPE)))
        with torch.no_grad():
            torch.testing.assert_close(parallel(batch), model(batch))
        found.append(Candidate("ncrt", f"ncrt DataParallel on {parallel.placement_label}, "
                               f"compiled batch {compiled}", lambda parallel=parallel: parallel(batch)))
    return found


def measure(candidates: list[Candidate], seconds: float, rounds: int) -> None:
    """Interleaved rounds, keeping each candidate's best: fair on a noisy host."""
    for _ in range(rounds):
        for candidate in candidates:
            candidate.prepare()
            candidate.best = max(candidate.best, images_per_second(candidate.run, seconds))
    for candidate in candidates:
        print(f"  {candidate.label}: {candidate.best:8.0f} images/s")


def best_of(candidates: list[Candidate], kind: str) -> Candidate:
    return max((c for c in candidates if c.kind == kind), key=lambda c: c.best)


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
    seconds, rounds = (0.3, 2) if options.quick else (0.5, 3)
    model = load_example_model()
    batch = torch.rand(BATCH, *SHAPE)
    runtime = ncrt.get_runtime()
    default_threads = torch.get_num_threads()
    print(f"host CPUs: {os.cpu_count()}, ncrt cores: {len(runtime.cores)}, batch {BATCH} x {SHAPE}")
    pools: list[ThreadPoolExecutor] = []
    candidates = [*bare_candidates(model, batch), *pool_candidates(model, batch, options.quick, pools),
                  *dataparallel_candidates(model, batch, options.quick)]
    measure(candidates, seconds, rounds)
    torch.set_num_threads(default_threads)
    for pool in pools:
        pool.shutdown()
    bare, pool, parallel = (best_of(candidates, kind) for kind in ("bare", "pool", "ncrt"))
    for best in (bare, pool, parallel):
        print(f"best {best.label}: {best.best:8.0f} images/s")
    print(f"ratio DataParallel / bare torch: {parallel.best / bare.best:.2f} (target >= 1.5)")
    print(f"ratio DataParallel / hand-tuned pool: {parallel.best / pool.best:.2f} (aim >= 0.9)")
    record("torch DataParallel batch 64", "DataParallel / bare torch", parallel.best / bare.best, 1.5, parallel.label)
    record("torch DataParallel batch 64", "DataParallel / hand-tuned pool", parallel.best / pool.best, 0.9,
           parallel.label)
    copies, shared = weight_copies(model, False), weight_copies(model, True)
    print(f"weights held by the replicas: {copies} bytes (a copy per core), {shared} bytes "
          f"(NEURON_RT_MULTI_INSTANCE_SHARED_WEIGHTS=true)")


if __name__ == "__main__":
    main()
