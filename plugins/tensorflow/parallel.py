"""Replication and streams: ``auto_multicore`` (load once, replicate on N cores) and ``feed``.

``auto_multicore`` loads a model once and replicates it on ``num_cores`` cores;
:func:`write_auto_multicore` writes a copy of a compiled model that replicates itself
when loaded (``ncrt tf-auto-multicore``). :func:`feed` runs a stream of inputs from a
thread pool or, with ``max_batch``, through the runtime's request coalescing, in order.
"""

from __future__ import annotations

import functools
import shutil
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterable

from ncrt import coalesce, get_runtime
from ncrt.adapters.tensorflow import ADAPTER
from ncrt.batching import batch_size_of
from ncrt.errors import BadInputError, ModelLoadError
from ncrt.manifest import Manifest
from ncrt.placement import PlacementRequest

from .compile import ASSETS_EXTRA, TracedModel, embedded_manifest, is_compiled_dir, read_manifest, trace
from .model import NeuronModel, load_artifact
from .placement import AUTO_MULTICORE_KEY, check_fits, check_single_core

__all__ = ["auto_multicore", "feed", "write_auto_multicore"]


def _is_placeable(func_or_model: Any) -> bool:
    """Already compiled by ncrt: placed, traced, a compiled directory, or one restored by TF."""
    if isinstance(func_or_model, (NeuronModel, TracedModel, str, Path)) or is_compiled_dir(func_or_model):
        return True
    return embedded_manifest(func_or_model) is not None


def auto_multicore(func_or_model: Any, example_inputs: Any = None, num_cores: int | None = None) -> NeuronModel:
    """Load a model once and replicate it on ``num_cores`` cores (``tfn.auto_multicore``).

    ``func_or_model``: a traced model, a placed NeuronModel, a compiled model directory, such
    a directory loaded with ``tf.saved_model.load`` (the API page's "TF2.x saved models"
    example), or a Keras model / TF function / other loaded SavedModel (traced first on
    ``example_inputs``). Only models compiled for one core are accepted; ``num_cores``
    defaults to all of the process's cores. Calls go to the least-loaded replica and may
    come from many threads at once.
    """
    runtime = get_runtime()
    if not _is_placeable(func_or_model):
        if example_inputs is None:
            raise BadInputError("auto_multicore of an untraced model needs example_inputs to trace it")
        func_or_model = trace(func_or_model, example_inputs)
    model = load_artifact(runtime, func_or_model)
    check_single_core(model.manifest)
    count = len(runtime.cores) if num_cores is None else num_cores
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise BadInputError(f"num_cores={num_cores!r} is not valid; accepted: a whole number from 1 to {len(runtime.cores)}")
    check_fits(runtime, count, f"auto_multicore(num_cores={count})")
    return NeuronModel(runtime.place(model, PlacementRequest(cores_per_replica=1, replicas=count)))


def _call(model: Any, item: Any) -> Any:
    return model(*item) if isinstance(item, tuple) else model(item)


def _rows(item: Any) -> int:
    return batch_size_of(item, ADAPTER, 0)


def _check_max_batch(max_batch: int | None) -> None:
    if max_batch is not None and (isinstance(max_batch, bool) or not isinstance(max_batch, int) or max_batch < 1):
        raise BadInputError(f"max_batch={max_batch!r} is not valid; accepted: a whole number of rows >= 1, or None")


def feed(model: Any, inputs: Iterable[Any], threads: int | None = None,
         max_batch: int | None = None) -> list[Any]:
    """Run a stream of inputs through ``model``; outputs in input order.

    ``threads`` defaults to the runtime's in-flight limit (``NEURON_MAX_NUM_INFERS``, by
    default cores + 3, seed 003). A tuple item is passed as positional inputs.

    Without ``max_batch``: one call per input from a pool of ``threads`` threads, at most
    ``2 x threads`` inputs taken from the stream ahead of the results; concurrent small
    inputs are joined by the model's coalescing as any callers' are.

    ``max_batch=N``: the stream's inputs are joined into executions of up to N rows by
    the runtime's request coalescing (:mod:`ncrt.coalesce`), each input getting its own
    rows of the outputs back: a stream of small requests runs as fewer, larger batches
    (the throughput lever of seed 003), at the price of latency. Inputs of a placed
    NeuronModel are submitted without a thread each, up to ``threads x N`` rows ahead of
    the results (enough to fill every replica and the executions queued behind them);
    any other callable (one that calls an ncrt model) is called from the thread pool with
    N as the coalescing limit of its calls.
    """
    _check_max_batch(max_batch)
    runtime = model.loaded.runtime if isinstance(model, NeuronModel) else get_runtime()
    threads = threads or runtime.inflight_limit
    if max_batch is not None and isinstance(model, NeuronModel) and model.manifest.dynamic_batching:
        return _feed_coalesced(model, inputs, threads * max_batch, max_batch)
    results: list[Any] = []
    call = _call if max_batch is None else functools.partial(_call_joined, max_batch)
    with ThreadPoolExecutor(threads, thread_name_prefix="ncrt-tf-feed") as pool:
        window: deque = deque()
        for item in inputs:
            window.append(pool.submit(call, model, item))
            if len(window) >= 2 * threads:
                results.append(window.popleft().result())
        for future in window:
            results.append(future.result())
    return results


def _call_joined(max_batch: int, model: Any, item: Any) -> Any:
    with coalesce.max_batch(max_batch):
        return _call(model, item)


def _feed_coalesced(model: NeuronModel, inputs: Iterable[Any], budget: int, max_batch: int) -> list[Any]:
    """Submit every input to the model's coalescing (limit ``max_batch``), ``budget`` rows ahead."""
    results: list[Any] = []
    window: deque = deque()
    ahead = 0
    with coalesce.max_batch(max_batch):
        for item in inputs:
            rows, future = model.submit_request(*(item if isinstance(item, tuple) else (item,)))
            window.append((rows, future))
            ahead += rows
            while ahead > budget:
                done_rows, done = window.popleft()
                results.append(model.outputs_of(done.result()))
                ahead -= done_rows
    results.extend(model.outputs_of(future.result()) for _, future in window)
    return results


def write_auto_multicore(model_dir: str | Path, new_model_dir: str | Path, num_cores: int) -> Manifest:
    """Copy a compiled model so that it replicates itself on ``num_cores`` cores when loaded."""
    if not is_compiled_dir(model_dir):
        raise ModelLoadError(
            f"{model_dir} is not an ncrt-compiled SavedModel (no {ASSETS_EXTRA}/ncrt-manifest.json); "
            "compile it first with tensorflow.neuron saved_model.compile or trace"
        )
    manifest = read_manifest(model_dir)
    check_single_core(manifest)
    if num_cores < 1:
        raise BadInputError(f"--num_cores {num_cores} is not valid; accepted: a whole number >= 1")
    if Path(new_model_dir).exists():
        raise BadInputError(f"--new_model_dir {new_model_dir} already exists; accepted: a new directory")
    shutil.copytree(model_dir, new_model_dir)
    manifest.extra[AUTO_MULTICORE_KEY] = num_cores
    manifest.write(Path(new_model_dir) / ASSETS_EXTRA)
    return manifest
