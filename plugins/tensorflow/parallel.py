"""Replication and streams: ``auto_multicore`` (load once, replicate on N cores) and ``feed``.

``auto_multicore`` loads a model once and replicates it on ``num_cores`` cores;
:func:`write_auto_multicore` writes a copy of a compiled model that replicates itself
when loaded (``ncrt tf-auto-multicore``). :func:`feed` runs a stream of inputs from a
thread pool, in order.
"""

from __future__ import annotations

import shutil
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterable, Iterator

from ncrt import get_runtime
from ncrt.adapters.tensorflow import ADAPTER
from ncrt.batching import batch_size_of, gather, scatter
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


def _coalesce(inputs: Iterable[Any], max_batch: int) -> Iterator[list[Any]]:
    """Consecutive inputs grouped into runs of at most ``max_batch`` rows (a larger one alone)."""
    group: list[Any] = []
    rows = 0
    for item in inputs:
        size = _rows(item)
        if group and rows + size > max_batch:
            yield group
            group, rows = [], 0
        group.append(item)
        rows += size
    if group:
        yield group


def _call_group(model: Any, group: list[Any]) -> list[Any]:
    """One call on the rows of every input of ``group``; its outputs cut back per input."""
    adapter = ADAPTER
    sizes = [_rows(item) for item in group]
    outputs = _call(model, gather(group, adapter, 0)) if len(group) > 1 else _call(model, group[0])
    if len(group) == 1:
        return [outputs]
    starts = [sum(sizes[:index]) for index in range(len(sizes))]
    return scatter(outputs, adapter, 0, list(zip(starts, sizes)))


def feed(model: Any, inputs: Iterable[Any], threads: int | None = None,
         max_batch: int | None = None) -> list[Any]:
    """Run a stream of inputs through ``model`` from a thread pool; outputs in input order.

    ``threads`` defaults to the runtime's in-flight limit (``NEURON_MAX_NUM_INFERS``, by
    default cores + 3, seed 003). A tuple item is passed as positional inputs. At most
    ``2 x threads`` calls are taken from the stream ahead of the results.

    ``max_batch``: consecutive inputs are joined into calls of up to that many rows, and
    each input gets its own rows of the outputs back. A stream of small requests then runs
    as fewer, larger batches, the throughput lever of seed 003 (a larger batch amortises
    the per-call cost), at the price of latency. ``None``: one call per input.
    """
    runtime = model.loaded.runtime if isinstance(model, NeuronModel) else get_runtime()
    threads = threads or runtime.inflight_limit
    groups = ([item] for item in inputs) if max_batch is None else _coalesce(inputs, max_batch)
    results: list[Any] = []
    with ThreadPoolExecutor(threads, thread_name_prefix="ncrt-tf-feed") as pool:
        window: deque = deque()
        for group in groups:
            window.append(pool.submit(_call_group, model, group))
            if len(window) >= 2 * threads:
                results.extend(window.popleft().result())
        for future in window:
            results.extend(future.result())
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
