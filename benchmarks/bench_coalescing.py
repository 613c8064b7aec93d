"""Request coalescing: 16 threads of batch-1 requests to a model compiled at batch 8 (issue 15, goal 1).

Seed 003's serving pattern: many host threads each send one small request at a time.
The model (the small CNN of ``examples/torch/_cnn.py``) is traced at batch 8 with
``dynamic_batch_size=True`` under ``NEURON_RT_NUM_CORES=2``. Printed, in one run and in
interleaved rounds (best round of each), requests/s and p50/p99 latency of

- bare torch called from the same 16 threads, with 1 and with 2 intra-op threads;
- a hand-written coalescing pool: a queue and worker threads that each take up to 8
  waiting requests, run them as one batch of bare torch and hand every caller its row
  (2 workers x 1 intra-op thread, and 1 worker x 2);
- ncrt: the traced model (one copy, on one core) and ``DataParallel`` over both cores,
  the 16 threads calling it directly; the runtime joins the waiting requests;

and the ratios ncrt / best bare (goal >= 2.0) and ncrt / best pool (goal >= 0.9). Then the
same for TensorFlow (in its own process): a small Keras CNN traced at batch 8,
``auto_multicore`` on both cores, against the bare ``tf.function`` from the 16 threads and
the same coalescing pool around it (TF's thread pools are the ones ncrt sets, for both).
And for MXNet (in its own process, with the engine ncrt sets, NaiveEngine, for both): a
small Gluon CNN compiled at batch 8 and bound to ``mx.neuron(0)``, the 16 threads calling
``forward`` on the one executor (and bound to both cores, each thread using one of the two
executors, as the MXNet data-parallel tutorial does), against bare MXNet at its best for this pattern -- each
thread its own CachedOp of the symbol over the one set of parameters (one executor or
CachedOp must not be called from two threads at once) -- and the same coalescing pool
around such CachedOps.
Run: ``python benchmarks/bench_coalescing.py [--framework torch|tensorflow|mxnet] [--seconds S]
[--rounds N] [--quick]`` (about two minutes; ``--quick``, the smoke run of ``make demo``: 20 s).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import queue
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import Any, Callable

os.environ.setdefault("NEURON_RT_NUM_CORES", "2")

import torch  # noqa: E402

import ncrt  # noqa: E402
from ncrt.plugins import torch as neuron  # noqa: E402
from ncrt.plugins.torch import DataParallel  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _summary import record  # noqa: E402

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "torch" / "_cnn.py"
THREADS = 16
COMPILED_BATCH = 8
SHAPE = (3, 32, 32)
BARE_GOAL, POOL_GOAL = 2.0, 0.9


def load_example_model() -> torch.nn.Module:
    spec = importlib.util.spec_from_file_location("torch_example_cnn", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.SmallCNN().eval()


class Result:
    """Requests/s and latency percentiles of one timed round."""

    def __init__(self, count: int, seconds: float, latencies: list[float]) -> None:
        self.rate = count / seconds
        latencies.sort()
        self.p50 = latencies[len(latencies) // 2] * 1e3
        self.p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1e3

    def __str__(self) -> str:
        return f"{self.rate:8.0f} req/s  p50 {self.p50:6.2f} ms  p99 {self.p99:6.2f} ms"


def drive(call: Callable[[Any], Any], seconds: float, make: Callable[[], Any] | None = None) -> Result:
    """``THREADS`` threads calling ``call`` with their own batch-1 input for ``seconds``."""
    inputs = [(make or (lambda: torch.rand(1, *SHAPE)))() for _ in range(THREADS)]
    stop = threading.Event()
    start = threading.Barrier(THREADS + 1)
    latencies: list[list[float]] = [[] for _ in range(THREADS)]
    errors: list[BaseException] = []

    def loop(index: int) -> None:
        x, mine = inputs[index], latencies[index]
        try:
            call(x)  # warm-up, not counted
            start.wait()
            while not stop.is_set():
                began = time.perf_counter()
                call(x)
                mine.append(time.perf_counter() - began)
        except threading.BrokenBarrierError:
            pass  # another thread failed: its error is reported
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)
            stop.set()
            start.abort()

    threads = [threading.Thread(target=loop, args=(index,), daemon=True) for index in range(THREADS)]
    for thread in threads:
        thread.start()
    try:
        start.wait()
    except threading.BrokenBarrierError:
        pass
    began = time.perf_counter()
    if not errors:
        time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    if errors:
        raise errors[0]
    flat = [value for mine in latencies for value in mine]
    return Result(len(flat), elapsed, flat)


class CoalescingPool:
    """The best hand-written alternative: a queue, and workers that each take up to
    ``max_batch`` waiting requests, run them as one batch and hand each caller its row."""

    def __init__(self, model: Callable[[Any], Any], workers: int, intra_threads: int | None, max_batch: int,
                 concat: Callable[[list[Any]], Any] | None = None) -> None:
        self.model, self.max_batch, self.intra_threads = model, max_batch, intra_threads
        self.concat = concat or torch.cat
        self.queue: queue.SimpleQueue = queue.SimpleQueue()
        self.threads = [threading.Thread(target=self._work, daemon=True) for _ in range(workers)]
        for thread in self.threads:
            thread.start()

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        slot = [threading.Event(), None]
        self.queue.put((x, slot))
        slot[0].wait()
        return slot[1]

    def _work(self) -> None:
        if self.intra_threads is not None:
            torch.set_num_threads(self.intra_threads)
        while True:
            item = self.queue.get()
            if item is None:
                return
            batch = [item]
            while len(batch) < self.max_batch:
                try:
                    item = self.queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self.queue.put(None)
                    break
                batch.append(item)
            with torch.no_grad():
                outputs = self.model(self.concat([x for x, _ in batch]))
            for row, (_, slot) in enumerate(batch):
                slot[1] = outputs[row:row + 1]
                slot[0].set()
            del batch, outputs, item  # hold no tensor while waiting for the next batch

    def close(self) -> None:
        """Stop the workers and wait for them: a worker still freeing its last batch's tensors
        when the interpreter finalizes would abort the process."""
        for _ in self.threads:
            self.queue.put(None)
        for thread in self.threads:
            thread.join()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.5, help="seconds per timed round")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds (best one counts)")
    parser.add_argument("--framework", choices=["all", "torch", "tensorflow", "mxnet"], default="all")
    parser.add_argument("--quick", action="store_true", help="one round of 0.5 s (the smoke run of make demo)")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.rounds = 0.5, 1
    warnings.simplefilter("ignore")
    if args.framework == "all":  # each framework in its own process (TF fixes its thread pools at start-up)
        for framework in ("torch", "tensorflow", "mxnet"):
            command = [sys.executable, __file__, "--framework", framework, "--seconds", str(args.seconds),
                       "--rounds", str(args.rounds)]
            if subprocess.run(command).returncode:
                return 1
        return 0
    if args.framework == "tensorflow":
        return tensorflow_main(args)
    if args.framework == "mxnet":
        return mxnet_main(args)
    return torch_main(args)


def report(framework: str, best: dict[str, Result], kinds: dict[str, str], rounds: int, seconds: float,
           extra: str = "") -> None:
    """Print every configuration's best round and the two ratios; record them for the summary."""
    print(f"{framework}: {THREADS} threads of batch-1 requests, model compiled at batch {COMPILED_BATCH} "
          f"(dynamic), NEURON_RT_NUM_CORES={os.environ['NEURON_RT_NUM_CORES']}, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.2f}; best of {rounds} rounds of {seconds:g} s")
    for label, result in best.items():
        print(f"  {label:40s} {result}")
    if extra:
        print(f"  {extra}")

    def top(kind: str) -> tuple[str, Result]:
        return max(((label, best[label]) for label, k in kinds.items() if k == kind), key=lambda item: item[1].rate)

    (ncrt_label, ncrt_best), (bare_label, bare_best), (pool_label, pool_best) = top("ncrt"), top("bare"), top("pool")
    vs_bare, vs_pool = ncrt_best.rate / bare_best.rate, ncrt_best.rate / pool_best.rate
    print(f"ncrt best ({ncrt_label}) / best bare ({bare_label}): {vs_bare:.2f}x (goal >= {BARE_GOAL})")
    print(f"ncrt best ({ncrt_label}) / best pool ({pool_label}): {vs_pool:.2f}x (goal >= {POOL_GOAL})")
    record(f"coalescing {framework}", "ncrt / bare, 16 threads batch 1", vs_bare, BARE_GOAL, ncrt_label)
    record(f"coalescing {framework}", "ncrt / hand-written coalescing pool", vs_pool, POOL_GOAL, ncrt_label)


def best_rounds(candidates: dict[str, tuple[str, Callable[[Any], Any]]], args: argparse.Namespace,
                make: Callable[[], Any]) -> dict[str, Result]:
    """Every candidate ``args.rounds`` times, interleaved; each one's best round."""
    best: dict[str, Result] = {}
    for _ in range(args.rounds):
        for label, (_, call) in candidates.items():
            result = drive(call, args.seconds, make)
            if label not in best or result.rate > best[label].rate:
                best[label] = result
    return best


def tensorflow_main(args: argparse.Namespace) -> int:
    """The same serving pattern for TensorFlow: a small Keras CNN traced at batch 8."""
    import numpy as np
    import tensorflow as tf

    from ncrt.plugins import tensorflow as tfn

    tfn.configure_threads()  # before TF runs an op: intra-op = CPUs per core, inter-op = host CPUs
    tf.keras.utils.set_random_seed(0)
    inputs = tf.keras.Input((32, 32, 3), name="input_1")
    x = tf.keras.layers.Conv2D(16, 3, padding="same", activation="relu")(inputs)
    x = tf.keras.layers.MaxPooling2D()(x)
    x = tf.keras.layers.Conv2D(32, 3, padding="same", activation="relu")(x)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    keras_model = tf.keras.Model(inputs, tf.keras.layers.Dense(10)(x))
    bare_function = tf.function(lambda batch: keras_model(batch, training=False))
    example = np.random.default_rng(0).random((COMPILED_BATCH, 32, 32, 3), dtype=np.float32)
    traced = tfn.trace(keras_model, example)
    replicated = tfn.auto_multicore(traced, num_cores=2)

    def bare(x: Any) -> Any:
        return bare_function(x).numpy()

    def ncrt_call(x: Any) -> Any:
        return np.asarray(replicated(x))

    np.testing.assert_allclose(ncrt_call(example[:1]), bare(example[:1]), rtol=1e-4, atol=1e-5)
    pools = {f"pool {workers} worker(s)": CoalescingPool(lambda batch: bare_function(batch).numpy(), workers, None,
                                                        COMPILED_BATCH, concat=np.concatenate)
             for workers in (1, 2)}
    candidates = {"bare TF from the 16 threads": ("bare", bare),
                  **{label: ("pool", pool) for label, pool in pools.items()},
                  "ncrt auto_multicore on 2 cores": ("ncrt", ncrt_call)}
    make = lambda: np.random.default_rng().random((1, 32, 32, 3), dtype=np.float32)  # noqa: E731
    best = best_rounds(candidates, args, make)
    for pool in pools.values():
        pool.close()
    coalescer = replicated.loaded.coalescer
    extra = (f"coalescing: {coalescer.executions} executions, {coalescer.joined} requests joined, largest "
             f"{coalescer.largest} rows" if coalescer is not None else "")
    settings = tfn.thread_settings()
    report("tensorflow", best, {label: kind for label, (kind, _) in candidates.items()}, args.rounds, args.seconds,
           f"{extra}; TF threads (bare and ncrt alike, one process): {settings}")
    ncrt.reset_runtime()
    return 0


def mxnet_main(args: argparse.Namespace) -> int:
    """The same serving pattern for MXNet: a small Gluon CNN compiled at batch 8 on one core."""
    import numpy as np

    from ncrt.plugins.mxnet import enable

    mx = enable()  # ncrt's MXNet settings (NaiveEngine), before MXNet starts: for bare and ncrt alike
    from mxnet import gluon

    mx.random.seed(0)
    net = gluon.nn.HybridSequential()
    net.add(gluon.nn.Conv2D(16, 3, padding=1, activation="relu"), gluon.nn.MaxPool2D(),
            gluon.nn.Conv2D(32, 3, padding=1, activation="relu"), gluon.nn.GlobalAvgPool2D(), gluon.nn.Dense(10))
    net.initialize(mx.init.Xavier())
    example = mx.nd.array(np.random.default_rng(0).random((COMPILED_BATCH, *SHAPE), dtype=np.float32))
    net(example)
    sym = net(mx.sym.var("data"))
    params = {name: param.data() for name, param in net.collect_params().items()}
    compiled, cargs, caux = mx.contrib.neuron.compile(sym, params, {}, {"data": example})
    executors = [compiled.bind(ctx=mx.neuron(core), args=cargs, aux_states=caux, grad_req="null") for core in (0, 1)]
    order = sym.list_inputs()
    local = threading.local()
    turns = iter(range(1 << 30))

    def bare(x: Any) -> Any:  # each thread its own CachedOp, the parameters shared
        op = getattr(local, "op", None)
        if op is None:
            op = local.op = mx.nd.CachedOp(sym, flags=[("static_alloc", "true"), ("static_shape", "true")])
        return op(*[x if name == "data" else params[name] for name in order]).asnumpy()

    def ncrt_call(x: Any) -> Any:
        return executors[0].forward(data=x)[0].asnumpy()

    def ncrt_both(x: Any) -> Any:  # the data-parallel tutorial's way: an executor per core, callers split
        mine = getattr(local, "executor", None)
        if mine is None:
            mine = local.executor = executors[next(turns) % 2]
        return mine.forward(data=x)[0].asnumpy()

    np.testing.assert_allclose(ncrt_call(example[:1]), bare(example[:1]), rtol=1e-4, atol=1e-5)
    pools = {f"pool {workers} worker(s)": CoalescingPool(bare, workers, None, COMPILED_BATCH,
                                                        concat=lambda rows: mx.nd.concat(*rows, dim=0))
             for workers in (1, 2)}
    candidates = {"bare MXNet from the 16 threads": ("bare", bare),
                  **{label: ("pool", pool) for label, pool in pools.items()},
                  "ncrt forward on mx.neuron(0)": ("ncrt", ncrt_call),
                  "ncrt forward on mx.neuron(0) and (1)": ("ncrt", ncrt_both)}
    make = lambda: mx.nd.array(np.random.default_rng().random((1, *SHAPE), dtype=np.float32))  # noqa: E731
    best = best_rounds(candidates, args, make)
    for pool in pools.values():
        pool.close()
    coalescer = executors[0].loaded.coalescer
    extra = (f"coalescing on mx.neuron(0): {coalescer.executions} executions, {coalescer.joined} requests joined, "
             f"largest {coalescer.largest} rows" if coalescer is not None else "")
    report("mxnet", best, {label: kind for label, (kind, _) in candidates.items()}, args.rounds, args.seconds, extra)
    ncrt.reset_runtime()
    return 0


def torch_main(args: argparse.Namespace) -> int:
    model = load_example_model()
    example = torch.rand(COMPILED_BATCH, *SHAPE)
    initial_threads = torch.get_num_threads()

    def bare(threads: int) -> Callable[[torch.Tensor], Any]:
        def call(x: torch.Tensor) -> torch.Tensor:
            with torch.no_grad():
                return model(x)
        call.threads = threads  # type: ignore[attr-defined]
        return call

    pools = {label: CoalescingPool(model, workers, intra, COMPILED_BATCH)
             for label, workers, intra in [("pool 2 workers x 1 thread", 2, 1), ("pool 1 worker x 2 threads", 1, 2)]}
    traced = neuron.trace(model, example, dynamic_batch_size=True)
    parallel = DataParallel(neuron.trace(model, example, dynamic_batch_size=True), device_ids=[0, 1])
    reference = model(example[:1]).detach()
    for candidate in (traced, parallel):
        torch.testing.assert_close(candidate(example[:1]), reference, rtol=1e-4, atol=1e-5)

    candidates: dict[str, tuple[str, Callable[[torch.Tensor], Any], int | None]] = {
        "bare torch, 1 intra-op thread": ("bare", bare(1), 1),
        "bare torch, 2 intra-op threads": ("bare", bare(2), 2),
        **{label: ("pool", pool, None) for label, pool in pools.items()},
        "ncrt traced model (one core)": ("ncrt", traced, None),
        "ncrt DataParallel (2 cores)": ("ncrt", parallel, None),
    }
    best: dict[str, Result] = {}
    for _ in range(args.rounds):
        for label, (_, call, threads) in candidates.items():
            torch.set_num_threads(threads or initial_threads)
            result = drive(call, args.seconds)
            if label not in best or result.rate > best[label].rate:
                best[label] = result
    torch.set_num_threads(initial_threads)
    for pool in pools.values():
        pool.close()

    coalescer = parallel.loaded.coalescer
    extra = (f"DataParallel coalescing: {coalescer.executions} executions, {coalescer.joined} requests joined, "
             f"largest {coalescer.largest} rows" if coalescer is not None else "")
    report("torch", best, {label: kind for label, (kind, _, _) in candidates.items()}, args.rounds, args.seconds,
           extra)
    ncrt.reset_runtime()
    return 0


if __name__ == "__main__":
    sys.exit(main())
