"""TensorFlow on ncrt: compile, load into core groups, auto multicore replication, dynamic batching.

The tensorflow-neuron API (``seeds/000``, ``seeds/003``)::

    from ncrt.plugins import tensorflow as tfn      # or: import ncrt.compat; import tensorflow.neuron as tfn

    tfn.saved_model.compile("rn50", "rn50_compiled/1", model_feed_dict={"input_1:0": example},
                            dynamic_batch_size=True, compiler_args=["--neuroncore-pipeline-cores", "4"])
    model = tfn.load_model("rn50_compiled/1")      # next free group of 4 cores, in load order
    traced = tfn.trace(keras_model, example)        # TF2: traced.save(dir), or call it
    replicated = tfn.auto_multicore(traced, example, num_cores=4)
    outputs = tfn.feed(replicated, stream_of_inputs)  # from a thread pool, in order

Placement: a model compiled for N > 1 cores gets the next free group of N cores; a
1-core model is replicated on up to 4 cores (:func:`default_replicas`); when the
process's cores are used up models share groups (``ncrt.ModelSwitchWarning``).
Replicas share the one loaded copy of the weights: each core's executor thread runs the
same TF function. Importing this module does not import TensorFlow.
"""

from __future__ import annotations

import argparse
import functools
import shutil
import sys
import types
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Mapping, Sequence

from ncrt.errors import BadInputError, ModelLoadError, PlacementError
from ncrt.hookspecs import hookimpl
from ncrt.manifest import Manifest, verify_payload
from ncrt.model import Model
from ncrt.placement import PlacementRequest

from .tensorflow_compile import (
    ASSETS_EXTRA,
    FRAMEWORK,
    TracedModel,
    compile_saved_model,
    configure_threads,
    import_tf,
    is_compiled_dir,
    load_payload,
    read_manifest,
    thread_settings,
    trace,
)

if TYPE_CHECKING:
    from ncrt.config import Config
    from ncrt.model import LoadedModel
    from ncrt.runtime import LocalCore, Runtime

__all__ = [
    "AUTO_MULTICORE_KEY",
    "DEFAULT_REPLICAS",
    "NeuronModel",
    "TracedModel",
    "auto_multicore",
    "configure_threads",
    "default_replicas",
    "feed",
    "load_model",
    "saved_model",
    "thread_settings",
    "trace",
    "write_auto_multicore",
]

DEFAULT_REPLICAS = 4
"""A 1-core model without explicit replication is replicated on up to this many cores (seed 000)."""

AUTO_MULTICORE_KEY = "auto_multicore_cores"
"""Manifest ``extra`` key written by ``ncrt tf-auto-multicore``: replicas made on load."""

NCG_REPLICAS_KEY = "ncg_replicas"


def default_replicas(runtime: Runtime, manifest: Manifest) -> int:
    """How many replicas a model gets when the caller names none.

    - a model compiled for more than one core (``--neuroncore-pipeline-cores N``): 1;
    - a model written by ``ncrt tf-auto-multicore --num_cores N``: N;
    - legacy NCG auto replication: ``runtime.config.extra["ncg_replicas"]``, which the ncg
      plugin sets in its ``ncrt_configure`` hook from ``NEURONCORE_GROUP_SIZES=Nx1``;
    - otherwise ``min(4, cores of the process)`` ("replicate on up to 4 cores", seed 000).
    """
    if manifest.pipeline_cores != 1:
        return 1
    if manifest.extra.get(AUTO_MULTICORE_KEY):
        return int(manifest.extra[AUTO_MULTICORE_KEY])
    legacy = runtime.config.extra.get(NCG_REPLICAS_KEY)
    if legacy:
        return int(legacy)  # type: ignore[arg-type]
    return min(DEFAULT_REPLICAS, len(runtime.cores))


# -- the placed model ---------------------------------------------------------------------


class NeuronModel:
    """A TensorFlow model placed on ncrt cores; call it like the Keras/SavedModel it came from.

    Inputs: positional tensors (the manifest's input order), one dict, or keywords by input
    name (``input_1`` or ``input_1:0``). Outputs: a tensor, a tuple, or a dict of tensors, as
    the traced model returned them (a dict for ``saved_model.compile``). Inference only.

    Dynamic batching: a batch is cut into compiled-batch chunks (the last padded); when
    several replicas are idle the chunks are dealt out to them as contiguous runs, else the
    whole call goes to the least-loaded replica. A run of k chunks is one framework call
    on its core (same outputs as k calls, less overhead). Without dynamic batching the
    batch must equal the compiled batch size.
    """

    inference_only = True

    def __init__(self, loaded: LoadedModel) -> None:
        self.loaded = loaded
        self.manifest: Manifest = loaded.manifest
        self.input_names = [spec["name"] for spec in self.manifest.inputs]
        self.output_names = [spec["name"] for spec in self.manifest.outputs]
        self.compiled_batch = int(self.manifest.batch_size or 1)

    @property
    def name(self) -> str:
        return self.loaded.name

    @property
    def placement(self) -> str:
        """Runtime-style label of the cores the model occupies, e.g. ``NC2-5``."""
        return self.loaded.placement.label

    @property
    def cores(self) -> tuple[int, ...]:
        return self.loaded.cores

    @property
    def replica_count(self) -> int:
        return len(self.loaded.replicas)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        inputs = self._arrange(args, kwargs)
        return self._structure(self._dispatch(inputs))

    def _arrange(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> list[Any]:
        if len(args) == 1 and isinstance(args[0], Mapping) and not kwargs:
            kwargs, args = args[0], ()
        if kwargs:
            aliases = self.manifest.extra.get("input_aliases", {})
            by_name = {aliases.get(name, name): value for name, value in
                       ((str(key).split(":", 1)[0], value) for key, value in kwargs.items())}
            missing = [name for name in self.input_names if name not in by_name]
            if missing or args:
                raise BadInputError(
                    f"model {self.name!r} takes inputs {self.input_names}; got {sorted(by_name)} "
                    f"by name and {len(args)} positional"
                )
            args = [by_name[name] for name in self.input_names]
        if len(args) != len(self.input_names):
            raise BadInputError(
                f"model {self.name!r} takes {len(self.input_names)} input(s) {self.input_names}; got {len(args)}"
            )
        return [_as_batch(value, name) for value, name in zip(args, self.input_names)]

    def _dispatch(self, inputs: list[Any]) -> dict[str, Any]:
        from ncrt.batching import batch_size_of

        total = batch_size_of(inputs, _adapter(), 0)
        if not self.manifest.dynamic_batching:
            self._check_static(total)
            return self.loaded.run(tuple(inputs))
        return self._run_dynamic(inputs, total)

    def _check_static(self, total: int) -> None:
        if total != self.compiled_batch:
            raise BadInputError(
                f"model {self.name!r} was compiled for batch size {self.compiled_batch} without dynamic "
                f"batching, got a batch of {total}; send batches of {self.compiled_batch}, or compile "
                "with dynamic_batch_size=True"
            )

    def _run_dynamic(self, inputs: list[Any], total: int) -> dict[str, Any]:
        from ncrt.batching import even_bounds

        chunks = -(-total // self.compiled_batch)
        idle = self._idle_replicas()
        runs = even_bounds(chunks, max(1, min(chunks, len(idle))))
        if len(runs) == 1:
            return self._trim(self.loaded.run(self._rows(inputs, 0, chunks, total)), total)
        futures = [
            self.loaded.submit(self._rows(inputs, start, length, total), replica=replica)
            for replica, (start, length) in zip(idle, runs)
        ]
        return self._join([f.result() for f in futures], runs, total)

    def _idle_replicas(self) -> list[int]:
        outstanding = self.loaded.outstanding
        return [index for index, count in enumerate(outstanding) if count == 0]

    def _rows(self, inputs: list[Any], chunk: int, chunks: int, total: int) -> tuple[Any, ...]:
        """The rows of ``chunks`` compiled-batch chunks from ``chunk`` on, padded to whole chunks."""
        adapter, batch = _adapter(), self.compiled_batch
        start, stop = chunk * batch, min(total, (chunk + chunks) * batch)
        part = [adapter.narrow(x, 0, start, stop - start) for x in inputs]
        return tuple(adapter.pad(x, 0, chunks * batch) for x in part)

    def _trim(self, outputs: dict[str, Any], rows: int) -> dict[str, Any]:
        return {name: value[:rows] for name, value in outputs.items()}

    def _join(self, parts: list[dict[str, Any]], runs: list[tuple[int, int]], total: int) -> dict[str, Any]:
        import numpy as np

        batch = self.compiled_batch
        rows = [min(total, (start + length) * batch) - start * batch for start, length in runs]
        return {name: np.concatenate([p[name][:r] for p, r in zip(parts, rows)]) for name in parts[0]}

    def _structure(self, outputs: dict[str, Any]) -> Any:
        tf = import_tf()
        tensors = {name: tf.convert_to_tensor(value) for name, value in outputs.items()}
        kind = self.manifest.extra.get("output_kind", "dict")
        if kind == "tensor":
            return next(iter(tensors.values()))
        if kind == "sequence":
            return tuple(tensors[name] for name in self.output_names)
        return tensors

    def describe(self) -> dict[str, Any]:
        return {**self.loaded.describe(), "compiled_batch": self.compiled_batch,
                "dynamic_batching": self.manifest.dynamic_batching}

    def unload(self) -> None:
        self.loaded.unload()

    def __repr__(self) -> str:
        return f"<NeuronModel {self.name} on {self.placement} x{self.replica_count} batch={self.compiled_batch}>"


def _adapter() -> Any:
    from ncrt.adapters.tensorflow import ADAPTER

    return ADAPTER


def _as_batch(value: Any, name: str) -> Any:
    """A TF tensor or NumPy array with a batch dimension (lists become arrays)."""
    import numpy as np

    if not _adapter().is_tensor(value):
        try:
            value = np.asarray(value)
        except (TypeError, ValueError):
            raise BadInputError(f"input {name!r} is a {type(value).__name__}; accepted: a tensor or array") from None
    if len(value.shape) == 0:
        raise BadInputError(f"input {name!r} is a scalar; accepted: a tensor with a batch dimension")
    return value


# -- loading and replication ----------------------------------------------------------------


def _model_name(directory: Path) -> str:
    """``rn50_compiled/1`` (a version directory) -> ``rn50_compiled``."""
    directory = directory.resolve()
    return directory.parent.name if directory.name.isdigit() else directory.name


def _load_artifact(runtime: Runtime, artifact: Any) -> Model:
    if isinstance(artifact, NeuronModel):
        source = artifact.loaded.model
        return Model(source.name, source.framework, source.manifest, source.payload)
    model = runtime.pm.hook.ncrt_load(artifact=artifact, config=runtime.config)
    if model is None or model.framework != FRAMEWORK:
        raise ModelLoadError(
            f"{artifact!r:.80} is not an ncrt-compiled TensorFlow model; accepted: a directory written by "
            "saved_model.compile, trace(...).save or tf-auto-multicore, or a traced model"
        )
    return model


def _check_fits(runtime: Runtime, replicas: int, what: str) -> None:
    if replicas > len(runtime.cores):
        raise PlacementError(
            f"{what} asks for {replicas} NeuronCores but this process has {len(runtime.cores)} "
            f"(NC0-{len(runtime.cores) - 1}); accepted: 1 to {len(runtime.cores)}, or raise NEURON_RT_NUM_CORES"
        )


def load_model(artifact: Any, *, name: str | None = None, start: int | None = None,
               device_ids: Sequence[int] | None = None, group: int | None = None,
               replicas: int | None = None) -> NeuronModel:
    """Load an ncrt-compiled TensorFlow model and place it (next free group by default).

    ``start`` (FlexEG start core), ``device_ids`` (exact cores, one replica each) and
    ``group`` (a legacy NCG group index, answered by the ncg plugin) are passed through to
    placement; ``replicas`` defaults to :func:`default_replicas`.
    """
    from ncrt import get_runtime

    runtime = get_runtime()
    model = _load_artifact(runtime, artifact)
    if name:
        model.name = name
    count = len(device_ids) if device_ids is not None else replicas or default_replicas(runtime, model.manifest)
    if model.manifest.extra.get(AUTO_MULTICORE_KEY):
        _check_fits(runtime, count, f"model {model.name!r} (written by tf-auto-multicore)")
    request = PlacementRequest(
        cores_per_replica=model.manifest.pipeline_cores, replicas=count, start=start,
        device_ids=tuple(device_ids) if device_ids is not None else None, group=group,
    )
    return NeuronModel(runtime.place(model, request))


def _check_single_core(manifest: Manifest) -> None:
    if manifest.pipeline_cores != 1:
        raise BadInputError(
            f"auto multicore replication works only on models compiled with --neuroncore-pipeline-cores=1; "
            f"this model was compiled for {manifest.pipeline_cores} cores (recompile it for 1 core)"
        )


def auto_multicore(func_or_model: Any, example_inputs: Any = None, num_cores: int | None = None,
                   **unused: Any) -> NeuronModel:
    """Load a model once and replicate it on ``num_cores`` cores (``tfn.auto_multicore``).

    ``func_or_model``: a traced model, a compiled model directory, a placed NeuronModel, or
    a Keras model / TF function (traced first on ``example_inputs``). Only models compiled
    for one core are accepted; ``num_cores`` defaults to all of the process's cores.
    Calls go to the least-loaded replica and may come from many threads at once.
    """
    from ncrt import get_runtime

    runtime = get_runtime()
    if not isinstance(func_or_model, (NeuronModel, TracedModel, str, Path)) and not is_compiled_dir(func_or_model):
        if example_inputs is None:
            raise BadInputError("auto_multicore of an untraced model needs example_inputs to trace it")
        func_or_model = trace(func_or_model, example_inputs)
    model = _load_artifact(runtime, func_or_model)
    _check_single_core(model.manifest)
    count = len(runtime.cores) if num_cores is None else num_cores
    if not isinstance(count, int) or count < 1:
        raise BadInputError(f"num_cores={num_cores!r} is not valid; accepted: a whole number from 1 to {len(runtime.cores)}")
    _check_fits(runtime, count, f"auto_multicore(num_cores={count})")
    return NeuronModel(runtime.place(model, PlacementRequest(cores_per_replica=1, replicas=count)))


def _call(model: Any, item: Any) -> Any:
    return model(*item) if isinstance(item, tuple) else model(item)


def _rows(item: Any) -> int:
    from ncrt.batching import batch_size_of

    return batch_size_of(item, _adapter(), 0)


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
    from ncrt.batching import gather, scatter

    adapter = _adapter()
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
    from ncrt import get_runtime

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


saved_model = types.SimpleNamespace(compile=compile_saved_model, load=load_model)
"""``tfn.saved_model``: ``compile(model_dir, new_model_dir, model_feed_dict=..., ...)``."""


# -- tf-auto-multicore ---------------------------------------------------------------------


def write_auto_multicore(model_dir: str | Path, new_model_dir: str | Path, num_cores: int) -> Manifest:
    """Copy a compiled model so that it replicates itself on ``num_cores`` cores when loaded."""
    if not is_compiled_dir(model_dir):
        raise ModelLoadError(
            f"{model_dir} is not an ncrt-compiled SavedModel (no {ASSETS_EXTRA}/ncrt-manifest.json); "
            "compile it first with tensorflow.neuron saved_model.compile or trace"
        )
    manifest = read_manifest(model_dir)
    _check_single_core(manifest)
    if num_cores < 1:
        raise BadInputError(f"--num_cores {num_cores} is not valid; accepted: a whole number >= 1")
    if Path(new_model_dir).exists():
        raise BadInputError(f"--new_model_dir {new_model_dir} already exists; accepted: a new directory")
    shutil.copytree(model_dir, new_model_dir)
    manifest.extra[AUTO_MULTICORE_KEY] = num_cores
    manifest.write(Path(new_model_dir) / ASSETS_EXTRA)
    return manifest


def _auto_multicore_command(args: argparse.Namespace) -> int:
    write_auto_multicore(args.model_dir, args.new_model_dir, args.num_cores)
    print(f"wrote {args.new_model_dir}: replicates itself on {args.num_cores} NeuronCore(s) when loaded")
    return 0


# -- hooks --------------------------------------------------------------------------------


@hookimpl
def ncrt_load(artifact: Any, config: Config) -> Model | None:
    """A traced model, or a directory written by saved_model.compile / trace(...).save."""
    if isinstance(artifact, TracedModel):
        return Model("traced", FRAMEWORK, artifact.manifest, artifact.payload)
    if not is_compiled_dir(artifact):
        return None
    manifest = read_manifest(artifact)
    if manifest.framework != FRAMEWORK:
        return None
    verify_payload(manifest, artifact, config.validate_hash)
    return Model(_model_name(Path(artifact)), FRAMEWORK, manifest, load_payload(artifact, manifest))


@hookimpl
def ncrt_execute(model: Model, inputs: Any, core: LocalCore) -> Any:
    """Run the shared TF function in this core's executor thread."""
    if model.framework != FRAMEWORK:
        return None
    return model.payload.run(inputs)


@hookimpl
def ncrt_read_manifest(path: str) -> Manifest | None:
    if not is_compiled_dir(path):
        return None
    manifest = read_manifest(path)
    return manifest if manifest.framework == FRAMEWORK else None


@hookimpl
def ncrt_add_commands(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "tf-auto-multicore", help="write a TensorFlow SavedModel that replicates itself on N cores when loaded"
    )
    parser.add_argument("model_dir", help="an ncrt-compiled SavedModel directory (pipeline size 1)")
    parser.add_argument("--num_cores", type=int, required=True, help="cores to replicate the model on")
    parser.add_argument("--new_model_dir", required=True, help="where to write the replicating SavedModel")
    parser.set_defaults(func=_auto_multicore_command)


@hookimpl
def ncrt_compat_modules() -> dict[str, Any]:
    return {"tensorflow.neuron": _tensorflow_neuron_module, "tensorflow": _patch_tensorflow}


def _tensorflow_neuron_module(existing: types.ModuleType | None) -> types.ModuleType | None:
    """The virtual ``tensorflow.neuron`` module."""
    if existing is not None:
        return None
    module = types.ModuleType("tensorflow.neuron", "tensorflow-neuron's API, served by ncrt")
    module.saved_model = saved_model  # type: ignore[attr-defined]
    for name in ("trace", "auto_multicore", "load_model", "feed", "NeuronModel"):
        setattr(module, name, getattr(sys.modules[__name__], name))
    return module


def _patch_tensorflow(tf: types.ModuleType | None) -> None:
    """Make ``tf.keras.models.load_model`` load ncrt-compiled SavedModels (Keras 3 cannot)."""
    if tf is None:
        return None
    configure_threads(tf)  # TF was just imported: its thread pools can still be sized
    models = tf.keras.models
    original = models.load_model
    if getattr(original, "__ncrt_wrapped__", False):
        return None

    @functools.wraps(original)
    def load_model_or_ncrt(filepath: Any, *args: Any, **kwargs: Any) -> Any:
        if is_compiled_dir(filepath):
            return load_model(filepath)
        return original(filepath, *args, **kwargs)

    load_model_or_ncrt.__ncrt_wrapped__ = True  # type: ignore[attr-defined]
    models.load_model = load_model_or_ncrt
    return None
