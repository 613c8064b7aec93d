"""NeuronCore Pipeline: a 2-stage pipeline on 2 cores against 1 core, DataParallel and bare torch.

Model: a 10-layer convolutional net (3x32x32 images, 32 channels), batch 1, on an emulated
inf1.xlarge (``NCRT_INSTANCE_TYPE``; 4 NeuronCores over this host's CPUs). Every
configuration is measured in this one run, in interleaved rounds (each keeps its best
round), and fed the same way: ``--threads`` feeding threads (default 4) calling the model
with one image each.

- **1 core**: the model traced for 1 core, on NC0;
- **pipeline**: traced with ``--neuroncore-pipeline-cores 2``: two stages on NC0 and NC1;
- **DataParallel**: the 1-core model replicated on NC0 and NC1;
- **bare torch**: the plain ``nn.Module`` called from the feeding threads, at its best
  ``torch.set_num_threads`` (and with 1 feeding thread, whichever is faster).

Printed: requests/s of each and the ratios pipeline / 1 core (goal >= 1.6), pipeline /
DataParallel (reported), pipeline / bare torch (goal >= 1.0); p50/p99 latency of each at
batch 1 under that load, and of single requests one after another (seed 003's "strict
latency budget": pipeline p50 <= 1.2 x the 1-core p50); the process's CPU time per
request of each; what the host gave two parallel streams in the same run (DataParallel /
1 core, bare torch 4 threads / 1 thread: the ceiling of a 2-stage pipeline there); each
stage's time per call in the pipeline against alone; and the host's load average, since
timings on a shared host move with what else runs.

Run: ``python benchmarks/bench_pipeline.py [--quick]`` (quick: a few seconds; full: about a minute).
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable

os.environ.setdefault("NCRT_INSTANCE_TYPE", "inf1.xlarge")

import torch  # noqa: E402

import ncrt  # noqa: E402
from _summary import record  # noqa: E402
from ncrt.plugins import torch as neuron  # noqa: E402

SHAPE = (3, 32, 32)


class ConvNet(torch.nn.Module):
    """Ten 3x3 convolutions (ReLU after each) and a linear head: the issue's "10-layer conv net"."""

    def __init__(self, channels: int = 32, layers: int = 10) -> None:
        super().__init__()
        torch.manual_seed(0)
        convs = [torch.nn.Conv2d(3, channels, 3, padding=1)]
        convs += [torch.nn.Conv2d(channels, channels, 3, padding=1) for _ in range(layers - 1)]
        self.features = torch.nn.Sequential(*[m for conv in convs for m in (conv, torch.nn.ReLU())])
        self.head = torch.nn.Linear(channels, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean(dim=(2, 3)))


@dataclass
class Config:
    """One way of serving the model: ``call(image)`` and ``prepare()`` before each round."""

    label: str
    call: Callable[[torch.Tensor], Any]
    threads: int
    prepare: Callable[[], None] = lambda: None
    kind: str = ""
    best: float = 0.0
    cpu_per_request: float = 0.0  # process CPU seconds per request in the best round
    latencies: list[float] = field(default_factory=list)
    single: list[float] = field(default_factory=list)


def feed(config: Config, image: torch.Tensor, seconds: float) -> tuple[float, list[float], float]:
    """Requests/s of ``config.threads`` threads calling it for ``seconds``, every call's latency,
    and the process's CPU seconds per request meanwhile (every thread: feeders, cores' workers, runners)."""
    config.prepare()
    latencies: list[list[float]] = [[] for _ in range(config.threads)]
    start_line = threading.Barrier(config.threads + 1)
    deadline: list[float] = [0.0]

    def work(mine: list[float]) -> None:
        start_line.wait()
        with torch.no_grad():
            while True:
                started = time.perf_counter()
                if started >= deadline[0]:
                    return
                config.call(image)
                mine.append(time.perf_counter() - started)

    threads = [threading.Thread(target=work, args=(mine,)) for mine in latencies]
    for thread in threads:
        thread.start()
    begin, cpu = time.perf_counter(), time.process_time()
    deadline[0] = begin + seconds
    start_line.wait()
    for thread in threads:
        thread.join()
    elapsed, cpu = time.perf_counter() - begin, time.process_time() - cpu
    every = [value for mine in latencies for value in mine]
    return len(every) / elapsed, every, cpu / max(1, len(every))


def one_at_a_time(config: Config, image: torch.Tensor, count: int) -> list[float]:
    """Latencies of ``count`` requests sent one after another from one thread."""
    config.prepare()
    found = []
    with torch.no_grad():
        for _ in range(count):
            started = time.perf_counter()
            config.call(image)
            found.append(time.perf_counter() - started)
    return found


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def build(threads: int, channels: int) -> tuple[list[Config], dict[str, Any]]:
    """The configurations, placed on the emulated cores (checked against the plain model first)."""
    model = ConvNet(channels).eval()
    image = torch.rand(1, *SHAPE)
    one = neuron.trace(model, image)
    piped = neuron.trace(model, image, compiler_args=["--neuroncore-pipeline-cores", "2"])
    neuron.set_neuron_cores(one, 0, 1)
    neuron.set_neuron_cores(piped, 0, 2)
    parallel = neuron.DataParallel(neuron.trace(model, image), device_ids=[0, 1])
    with torch.no_grad():
        want = model(image)
        for candidate in (one, piped, parallel):
            torch.testing.assert_close(candidate(image), want, rtol=1e-4, atol=1e-5)
    default = torch.get_num_threads()
    configs = [
        Config("1 core (NC0)", one, threads, kind="one"),
        Config(f"pipeline, 2 stages on {piped.placement_label}", piped, threads, kind="pipeline"),
        Config(f"DataParallel on {parallel.placement_label}", parallel, threads, kind="dataparallel"),
    ]
    for intra in sorted({1, 2, os.cpu_count() or 1}):
        for feeders in sorted({1, threads}):
            configs.append(Config(f"bare torch, {feeders} feeding thread(s) x {intra} intra-op thread(s)", model,
                                  feeders, prepare=lambda intra=intra: torch.set_num_threads(intra), kind="bare"))
    return configs, {"piped": piped, "default_threads": default}


def measure(configs: list[Config], image: torch.Tensor, seconds: float, rounds: int, singles: int) -> None:
    """Interleaved rounds; each configuration keeps its best round (and that round's latencies)."""
    for config in configs:  # warm-up: stage copies, thread pools, first-call costs
        feed(config, image, 0.1)
    for _ in range(rounds):
        for config in configs:
            rate, latencies, cpu = feed(config, image, seconds)
            if rate > config.best:
                config.best, config.latencies, config.cpu_per_request = rate, latencies, cpu
            single = one_at_a_time(config, image, singles)
            if not config.single or statistics.median(single) < statistics.median(config.single):
                config.single = single


def best(configs: list[Config], kind: str) -> Config:
    return max((c for c in configs if c.kind == kind), key=lambda c: c.best)


def report(configs: list[Config], threads: int, extra: dict[str, Any]) -> None:
    for config in configs:
        print(f"  {config.label}: {config.best:7.1f} requests/s, {1000 * config.cpu_per_request:5.2f} ms CPU each; "
              f"under load p50 "
              f"{1000 * percentile(config.latencies, 50):6.2f} ms p99 {1000 * percentile(config.latencies, 99):6.2f} ms;"
              f" one at a time p50 {1000 * percentile(config.single, 50):6.2f} ms "
              f"p99 {1000 * percentile(config.single, 99):6.2f} ms")
    one, piped, parallel, bare = (best(configs, kind) for kind in ("one", "pipeline", "dataparallel", "bare"))
    print(f"best bare torch: {bare.label}")
    print(f"ratio pipeline / 1 core: {piped.best / one.best:.2f} (goal >= 1.6, {threads} feeding threads, batch 1)")
    print(f"ratio pipeline / DataParallel on the same 2 cores: {piped.best / parallel.best:.2f} (reported)")
    print(f"ratio pipeline / bare torch at its best: {piped.best / bare.best:.2f} (goal >= 1.0)")
    streams = [c for c in configs if c.kind == "bare" and "x 1 intra-op" in c.label]
    headroom = max(streams, key=lambda c: c.threads).best / min(streams, key=lambda c: c.threads).best
    print(f"what this host gave two parallel streams in this run: DataParallel / 1 core {parallel.best / one.best:.2f}, "
          f"bare torch {threads} threads / 1 thread (1 intra-op thread each) {headroom:.2f} (2.0 on 2 idle CPUs)")
    print(f"CPU per request pipeline / 1 core: {piped.cpu_per_request / one.cpu_per_request:.2f}")
    loaded = percentile(piped.latencies, 50) / percentile(one.latencies, 50)
    alone = percentile(piped.single, 50) / percentile(one.single, 50)
    print(f"latency p50 pipeline / 1 core: {alone:.2f} one request at a time, {loaded:.2f} under load "
          f"(goal <= 1.2)")
    record("pipeline", f"pipeline / 1 core, {threads} threads batch 1", piped.best / one.best, 1.6)
    record("pipeline", "pipeline / bare torch at its best", piped.best / bare.best, 1.0, bare.label)
    record("pipeline", "pipeline p50 / 1-core p50, one request at a time", alone, 1.2, at_most=True)
    stages = extra["piped"].manifest.partition["stages"]
    print("partition: " + "; ".join(f"stage {s['index']} {s['first']}..{s['last']} {1000 * s['cost']:.2f} ms"
                                    for s in stages))
    busy = extra["piped"].loaded.describe()["stages"]
    print("stage busy seconds: " + ", ".join(f"NC{s['core']} {s['busy_seconds']:.2f}" for s in busy))
    inside = [1000 * s["busy_seconds"] / max(1, s["executions"]) for s in busy]
    alone = stage_times_alone(extra["piped"])
    print("stage ms per call in the pipeline (all rounds) / alone in one thread: " + "; ".join(
        f"stage {k} {ms:.2f} / {solo:.2f}" for k, (ms, solo) in enumerate(zip(inside, alone))))


def stage_times_alone(piped: Any, runs: int = 200) -> list[float]:
    """Each stage module's CPU ms per call run alone in this thread with 1 intra-op thread (no pipeline)."""
    from ncrt.plugins.torch.pipeline import stage_modules

    stages = stage_modules(piped.script_module, piped.manifest) or []
    values: Any = (torch.rand(1, *SHAPE),)
    found = []
    torch.set_num_threads(1)
    with torch.no_grad():
        for stage in stages:
            for _ in range(20):
                stage(*values)
            started = time.thread_time()
            for _ in range(runs):
                out = stage(*values)
            found.append(1000 * (time.thread_time() - started) / runs)
            values = out if isinstance(out, tuple) else (out,)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one short round (a smoke test)")
    parser.add_argument("--threads", type=int, default=4, help="feeding threads (default 4)")
    parser.add_argument("--channels", type=int, default=32, help="channels of the conv layers (default 32)")
    options = parser.parse_args()
    warnings.simplefilter("ignore")
    seconds, rounds, singles = (0.3, 1, 30) if options.quick else (1.5, 3, 150)
    runtime = ncrt.get_runtime()
    print(f"host CPUs: {os.cpu_count()}, load average {os.getloadavg()[0]:.2f}; {runtime.topology.name}: "
          f"{len(runtime.cores)} cores on CPUs {[list(c.cpus) for c in runtime.cores]}; "
          f"model: 10 conv layers x {options.channels} channels, batch 1 of {SHAPE}")
    configs, extra = build(options.threads, options.channels)
    image = torch.rand(1, *SHAPE)
    measure(configs, image, seconds, rounds, singles)
    torch.set_num_threads(extra["default_threads"])
    report(configs, options.threads, extra)
    print(f"load average at the end: {' '.join(f'{v:.2f}' for v in os.getloadavg())} (1, 5, 15 min)")


if __name__ == "__main__":
    main()
