"""``ncrt bench``: the tuning loop of seed 003 as a command.

For a compiled model of any framework (a path any plugin's ``ncrt_load`` accepts) or a
Python callable (``module:name``), sweep the user batch size, the number of replicas
(cores), the number of feeding threads and dynamic batching on/off. Each point runs for
a fixed time with its threads feeding a :class:`ncrt.parallel.DataParallelRunner`; the
table shows throughput (samples/s), p50/p99 latency per call and the ratio against the
bare framework: the same model called on the same batch in the calling thread, through
its plugin's runner on a core backed by every host CPU (no ncrt queue, no
replication). ``--latency-budget-ms`` picks the best throughput within the budget;
``--plot`` draws throughput against p99 latency; ``--json`` is for scripts.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from ncrt.cli import positive_milliseconds, positive_seconds
from ncrt.errors import BadInputError, ModelLoadError
from ncrt.hookspecs import hookimpl
from ncrt.parallel import DataParallelRunner
from ncrt.runtime import LocalCore
from ncrt.topology import Core, host_cpus

if TYPE_CHECKING:
    from ncrt.model import Model
    from ncrt.runtime import Runtime

__all__ = [
    "BenchPoint",
    "BenchResult",
    "BenchTarget",
    "best_within",
    "plot_results",
    "resolve_artifact",
    "run",
    "run_point",
    "sweep",
]


WARM_UP_CALLS = 3


@dataclass(frozen=True)
class BenchPoint:
    """One setting: user batch per call, replicas, feeding threads, dynamic batching."""

    batch: int
    replicas: int
    threads: int
    dynamic: bool

    @property
    def label(self) -> str:
        return f"b{self.batch} r{self.replicas} t{self.threads} {'dyn' if self.dynamic else 'static'}"


@dataclass
class BenchResult:
    """What one point measured (``skipped`` says why a point could not run)."""

    point: BenchPoint
    calls: int = 0
    seconds: float = 0.0
    throughput: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    bare_throughput: float = 0.0
    skipped: str | None = None

    @property
    def ratio(self) -> float:
        return self.throughput / self.bare_throughput if self.bare_throughput else 0.0

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(data.pop("point"))
        data["ratio"] = float(f"{self.ratio:.6g}")  # significant digits: ratios far below 1 keep their precision
        return data


# --------------------------------------------------------------------------- the target


def resolve_artifact(spec: str) -> Any:
    """A path (returned as a string) or ``module:attribute`` (the object it names)."""
    if Path(spec).exists():
        return str(spec)
    module_name, colon, attribute = spec.partition(":")
    if not colon or not module_name or not attribute:
        raise BadInputError(
            f"model {spec!r} is neither an existing path nor module:name; accepted: a compiled model "
            "path (any framework plugin's format) or an importable callable such as mypkg.models:net"
        )
    target: Any = importlib.import_module(module_name)
    for part in attribute.split("."):
        target = getattr(target, part)
    return target


def _adapter_for(framework: str) -> Any:
    """The framework's adapter module ``ncrt.adapters.<framework>`` (numpy when there is none)."""
    try:
        return importlib.import_module(f"ncrt.adapters.{framework}").ADAPTER
    except ModuleNotFoundError:
        return importlib.import_module("ncrt.adapters.numpy").ADAPTER


def _input_specs(model: Model, shapes: list[list[int]] | None, dtype: str) -> list[tuple[list[int], str]]:
    """Per input: its shape without the batch dim, and dtype; from the flags or the manifest."""
    if shapes:
        return [(shape, dtype) for shape in shapes]
    manifest = model.manifest
    specs = []
    for entry in manifest.inputs:
        shape = list(entry.get("shape") or [])
        if len(shape) <= manifest.batch_dim or any(size is None for size in shape[: manifest.batch_dim] +
                                                   shape[manifest.batch_dim + 1:]):
            raise BadInputError(f"input {entry.get('name', len(specs))} has shape {shape}: give --input-shape")
        del shape[manifest.batch_dim]
        specs.append((shape, str(entry.get("dtype") or dtype)))
    if not specs:
        raise BadInputError(
            f"model {model.name!r} records no input signature; give its per-sample shape, e.g. --input-shape 3,32,32"
        )
    return specs


class BenchTarget:
    """A model loaded once, the inputs it takes, and how to call it on the runtime's cores."""

    def __init__(self, runtime: Runtime, model: Model, specs: list[tuple[list[int], str]],
                 compiled_batch: int | None = None) -> None:
        self.runtime = runtime
        self.model = model
        self.specs = specs
        self.ops = _adapter_for(model.framework)
        self.fixed_batch = compiled_batch or model.manifest.batch_size
        self._inputs: dict[int, Any] = {}
        self.host_core = _host_core(runtime)

    @property
    def compiled_batch(self) -> int:
        """The model's compiled batch size (1 for a model that records none)."""
        return self.fixed_batch or 1

    def chunk_for(self, point: BenchPoint) -> int:
        """Chunk size of a point: the compiled batch, or for a model without one the batch per replica."""
        return self.fixed_batch or -(-point.batch // point.replicas)

    @property
    def pipeline_cores(self) -> int:
        return self.model.manifest.pipeline_cores

    def inputs(self, batch: int) -> Any:
        """The call inputs for a user batch of ``batch`` (made once per size, seeded)."""
        if batch not in self._inputs:
            rng = np.random.default_rng(batch)
            arrays = [self._array(rng, shape, dtype, batch) for shape, dtype in self.specs]
            # every plugin's runner takes the positional inputs as a tuple
            self._inputs[batch] = tuple(self.ops.from_numpy(array) for array in arrays)
        return self._inputs[batch]

    def _array(self, rng: np.random.Generator, shape: list[int], dtype: str, batch: int) -> np.ndarray:
        full = list(shape)
        full.insert(self.model.manifest.batch_dim, batch)
        if np.dtype(dtype).kind in "iub":
            return rng.integers(0, 2, size=full).astype(dtype)
        return rng.standard_normal(full).astype(dtype)

    def call_bare(self, inputs: Any) -> Any:
        """The model called directly in this thread through its plugin's runner, on all host CPUs."""
        return self.model.runner(self.model, inputs, self.host_core)


def _host_core(runtime: Runtime) -> LocalCore:
    """A core outside the runtime's, backed by every host CPU: where the bare framework runs."""
    return LocalCore(len(runtime.cores), Core(-1, -1, host_cpus()))


# --------------------------------------------------------------------------- measuring


def _timed_calls(call: Callable[[], Any], duration: float, stop_at: float | None = None) -> list[float]:
    latencies = []
    deadline = stop_at if stop_at is not None else time.monotonic() + duration
    while time.monotonic() < deadline:
        started = time.monotonic()
        call()
        latencies.append(time.monotonic() - started)
    return latencies


def _warm_up(call: Callable[[], Any], duration: float) -> None:
    """At least three calls, and calls for a tenth of the measuring time."""
    for _ in range(WARM_UP_CALLS):
        call()
    _timed_calls(call, duration / 10)


def measure_bare(target: BenchTarget, batch: int, duration: float) -> float:
    """Samples per second of the bare framework on a batch of ``batch``."""
    inputs = target.inputs(batch)
    _warm_up(lambda: target.call_bare(inputs), duration)
    started = time.monotonic()
    latencies = _timed_calls(lambda: target.call_bare(inputs), duration)
    return len(latencies) * batch / (time.monotonic() - started)


def _skip_reason(target: BenchTarget, point: BenchPoint) -> str | None:
    needed = point.replicas * target.pipeline_cores
    if needed > len(target.runtime.cores):
        return f"needs {needed} cores, this process holds {len(target.runtime.cores)}"
    if point.dynamic and not target.model.manifest.dynamic_batching:
        return "the model was compiled without dynamic batching"
    if not point.dynamic and point.batch != point.replicas * target.chunk_for(point):
        return f"static batching needs batch = replicas x {target.chunk_for(point)}"
    return None


def run_point(target: BenchTarget, point: BenchPoint, duration: float) -> BenchResult:
    """Place the model on ``replicas`` groups, feed it from ``threads`` threads for ``duration``."""
    from ncrt.placement import PlacementRequest

    reason = _skip_reason(target, point)
    if reason:
        return BenchResult(point, skipped=reason)
    request = PlacementRequest(cores_per_replica=target.pipeline_cores, replicas=point.replicas)
    loaded = target.runtime.place(target.model, request)
    try:
        runner = DataParallelRunner(loaded, target.ops, dim=target.model.manifest.batch_dim,
                                    compiled_batch=target.chunk_for(point), dynamic=point.dynamic)
        inputs = target.inputs(point.batch)
        _warm_up(lambda: runner(inputs), duration)  # replicas are made, JITs settle
        latencies, seconds = _feed(lambda: runner(inputs), point.threads, duration)
    finally:
        loaded.unload()
    return _result(point, latencies, seconds)


def _feed(call: Callable[[], Any], threads: int, duration: float) -> tuple[list[float], float]:
    """Run ``call`` from ``threads`` threads until the deadline; latencies and wall seconds."""
    results: list[list[float]] = [[] for _ in range(threads)]
    failures: list[BaseException] = []
    stop_at = time.monotonic() + duration

    def worker(slot: list[float]) -> None:
        try:
            slot.extend(_timed_calls(call, duration, stop_at))
        except BaseException as error:  # noqa: BLE001 - re-raised below
            failures.append(error)

    started = time.monotonic()
    workers = [threading.Thread(target=worker, args=(slot,), daemon=True) for slot in results]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    if failures:
        raise failures[0]
    return [value for slot in results for value in slot], time.monotonic() - started


def _result(point: BenchPoint, latencies: list[float], seconds: float) -> BenchResult:
    if not latencies:
        return BenchResult(point, seconds=seconds, skipped="no call finished within the duration")
    p50, p99 = np.percentile(np.array(latencies) * 1000.0, [50, 99])
    throughput = len(latencies) * point.batch / seconds
    return BenchResult(point, len(latencies), seconds, throughput, float(p50), float(p99))


def sweep(target: BenchTarget, points: list[BenchPoint], duration: float,
          progress: Callable[[str], None] = lambda label: None) -> list[BenchResult]:
    """Every point, each with the bare framework's throughput on the same batch."""
    bare: dict[int, float] = {}
    results = []
    for point in points:
        progress(point.label)
        result = run_point(target, point, duration)
        if result.skipped is None:
            if point.batch not in bare:
                bare[point.batch] = measure_bare(target, point.batch, duration)
            result.bare_throughput = bare[point.batch]
        results.append(result)
    return results


def best_within(results: list[BenchResult], budget_ms: float | None) -> BenchResult | None:
    """The highest throughput whose p99 fits ``budget_ms`` (any p99 when no budget)."""
    fitting = [r for r in results if r.skipped is None and (budget_ms is None or r.p99_ms <= budget_ms)]
    return max(fitting, key=lambda r: r.throughput, default=None)


# --------------------------------------------------------------------------- output


def render_table(results: list[BenchResult], best: BenchResult | None) -> Any:
    from rich.table import Table

    table = Table(title="ncrt bench", title_justify="left")
    for column in ("batch", "replicas", "threads", "dynamic", "samples/s", "p50 ms", "p99 ms", "bare/s", "x bare"):
        table.add_column(column, justify="right", no_wrap=True)
    table.add_column("note", no_wrap=True, overflow="ellipsis")
    for result in results:
        point = result.point
        cells = [str(point.batch), str(point.replicas), str(point.threads), "on" if point.dynamic else "off"]
        if result.skipped:
            table.add_row(*cells, "-", "-", "-", "-", "-", f"skipped: {result.skipped}", style="dim")
            continue
        figures = [f"{result.throughput:.1f}", f"{result.p50_ms:.2f}", f"{result.p99_ms:.2f}",
                   f"{result.bare_throughput:.1f}", f"{result.ratio:.2f}"]
        table.add_row(*cells, *figures, "best" if result is best else "", style="bold" if result is best else "")
    return table


def settings_text(best: BenchResult, target: BenchTarget) -> str:
    point = best.point
    cores = point.replicas * target.pipeline_cores
    return (
        f"use: NEURON_RT_NUM_CORES={cores}, {point.replicas} replica(s) of {target.pipeline_cores} core(s), "
        f"{point.threads} feeding thread(s), batches of {point.batch}, dynamic batching "
        f"{'on' if point.dynamic else 'off'} -> {best.throughput:.1f} samples/s, p99 {best.p99_ms:.2f} ms"
    )


def plot_results(results: list[BenchResult], path: str | Path, best: BenchResult | None = None,
                 budget_ms: float | None = None) -> Path:
    """Throughput against p99 latency, one labelled point per setting; the best one starred."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    measured = [r for r in results if r.skipped is None]
    figure, axes = plt.subplots(figsize=(8, 5))
    for dynamic, marker in ((True, "o"), (False, "s")):
        chosen = [r for r in measured if r.point.dynamic == dynamic]
        axes.scatter([r.p99_ms for r in chosen], [r.throughput for r in chosen], marker=marker,
                     label=f"dynamic batching {'on' if dynamic else 'off'}")
    for result in measured:
        axes.annotate(result.point.label, (result.p99_ms, result.throughput), fontsize=7,
                      textcoords="offset points", xytext=(4, 4))
    if best is not None:
        axes.scatter([best.p99_ms], [best.throughput], marker="*", s=250, color="red", label="best", zorder=3)
    if budget_ms is not None:
        axes.axvline(budget_ms, linestyle="--", color="grey", label=f"budget {budget_ms:g} ms")
    axes.set(xlabel="p99 latency per call (ms)", ylabel="throughput (samples/s)", title="ncrt bench")
    axes.legend(loc="best", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return Path(path)


# --------------------------------------------------------------------------- the command


def _int_list(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        values = []
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a list of whole numbers >= 1, e.g. 1,2,4")
    return values


def _shape(text: str) -> list[int]:
    return _int_list(text.replace("x", ","))


DYNAMIC_CHOICES = {"on": [True], "off": [False], "both": [True, False]}


def _points(args: argparse.Namespace, target: BenchTarget) -> list[BenchPoint]:
    compiled = target.compiled_batch
    most = max(1, len(target.runtime.cores) // target.pipeline_cores)
    replicas = args.replicas or sorted({1, most})
    batches = args.batch_sizes or sorted({compiled, compiled * max(replicas)})
    threads = args.threads or sorted({1, 2 * max(replicas)})
    dynamics = DYNAMIC_CHOICES[args.dynamic]
    points = []
    for dynamic in dynamics:
        for count in replicas:
            sizes = batches if dynamic or not target.fixed_batch else [count * compiled]  # static: one each
            points.extend(BenchPoint(size, count, feeders, dynamic) for size in sizes for feeders in threads)
    return points


def load_target(args: argparse.Namespace) -> BenchTarget:
    import ncrt

    runtime = ncrt.get_runtime()
    for name in args.plugin or []:
        runtime.pm.register(importlib.import_module(name), name=f"bench-{name}")
    artifact = resolve_artifact(args.model)
    model = runtime.pm.hook.ncrt_load(artifact=artifact, config=runtime.config)
    if model is None:
        raise ModelLoadError(f"no ncrt plugin can load {args.model!r}; accepted: a compiled model of an installed "
                             "framework plugin, or module:callable")
    return BenchTarget(runtime, model, _input_specs(model, args.input_shape, args.dtype), args.compiled_batch)


def _run_with_progress(target: BenchTarget, points: list[BenchPoint], duration: float) -> list[BenchResult]:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    console = Console(stderr=True)
    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
               TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True, disable=not console.is_terminal) as progress:
        task = progress.add_task("bench", total=len(points))
        done = iter(range(len(points) + 1))

        def advance(label: str) -> None:
            progress.update(task, description=f"bench {label}", completed=next(done))

        results = sweep(target, points, duration, advance)
        progress.update(task, completed=len(points))
    return results


def _report(args: argparse.Namespace, target: BenchTarget, results: list[BenchResult],
            best: BenchResult | None) -> None:
    if args.json:
        print(json.dumps({
            "model": args.model, "framework": target.model.framework, "compiled_batch": target.compiled_batch,
            "pipeline_cores": target.pipeline_cores, "duration": args.duration,
            "latency_budget_ms": args.latency_budget_ms, "points": [r.to_json() for r in results],
            "best": best.to_json() if best else None,
            "settings": settings_text(best, target) if best else None,
        }, indent=2))
        return
    from rich.console import Console

    console = Console(highlight=False)
    if not console.is_terminal:
        console = Console(highlight=False, width=max(console.width, 150))
    console.print(render_table(results, best))
    if best is not None:
        within = f" within p99 <= {args.latency_budget_ms:g} ms" if args.latency_budget_ms is not None else ""
        console.print(f"best throughput{within}: {best.point.label}")
        console.print(settings_text(best, target))


def run(args: argparse.Namespace) -> int:
    """Sweep, print the table (or JSON), pick the best point, draw the plot."""
    if args.duration <= 0:
        raise BadInputError(f"--duration {args.duration} is not valid; accepted: seconds > 0")
    target = load_target(args)
    points = _points(args, target)
    results = _run_with_progress(target, points, args.duration)
    best = best_within(results, args.latency_budget_ms)
    _report(args, target, results, best)
    if args.plot:
        plot_results(results, args.plot, best, args.latency_budget_ms)
        print(f"plot written to {args.plot}", file=sys.stderr)
    if best is None and args.latency_budget_ms is not None:
        fastest = min((r.p99_ms for r in results if r.skipped is None), default=None)
        lowest = f"; the lowest p99 measured was {fastest:.2f} ms" if fastest is not None else ""
        print(f"ncrt bench: no setting meets p99 <= {args.latency_budget_ms:g} ms{lowest}", file=sys.stderr)
        return 1
    return 0


@hookimpl
def ncrt_add_commands(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("bench", help="sweep batch size, replicas, threads and dynamic batching")
    parser.add_argument("model", help="a compiled model path (any framework), or module:callable")
    parser.add_argument("--batch-sizes", type=_int_list, help="user batch sizes per call (default: compiled, "
                                                              "compiled x replicas)")
    parser.add_argument("--replicas", type=_int_list, help="replica counts (default: 1 and as many as fit)")
    parser.add_argument("--threads", type=_int_list, help="feeding threads (default: 1 and 2 x replicas)")
    parser.add_argument("--dynamic", choices=("on", "off", "both"), default="on", help="dynamic batching")
    parser.add_argument("--duration", type=positive_seconds, default=1.0, help="seconds per point (default 1)")
    parser.add_argument("--latency-budget-ms", type=positive_milliseconds, help="pick the best throughput with p99 within this")
    parser.add_argument("--plot", metavar="FILE.png", help="draw throughput against p99 latency")
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")
    parser.add_argument("--input-shape", type=_shape, action="append",
                        help="per-sample shape of an input, e.g. 3,32,32 (repeat per input; default: manifest)")
    parser.add_argument("--dtype", default="float32", help="dtype of --input-shape inputs (default float32)")
    parser.add_argument("--compiled-batch", type=int,
                        help="chunk size for a model without a manifest batch (default: batch / replicas)")
    parser.add_argument("-p", "--plugin", action="append", help="also register this plugin module")
    parser.set_defaults(func=run)
