"""TensorFlow models placed on cores: :class:`NeuronModel` and :func:`load_model`.

:func:`load_model` places an ncrt-compiled SavedModel (or a traced model) on the next free
group of its compiled size; a 1-core model is replicated (see
:func:`~ncrt.plugins.tensorflow.placement.default_replicas`). Replicas share the one
loaded copy of the weights: each core's executor thread runs the same TF function.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from ncrt import get_runtime
from ncrt.adapters.tensorflow import ADAPTER
from ncrt.batching import batch_size_of, even_bounds
from ncrt.errors import BadInputError, ModelLoadError
from ncrt.manifest import Manifest
from ncrt.model import Model
from ncrt.placement import PlacementRequest

from .execute import FRAMEWORK, import_tf
from .placement import AUTO_MULTICORE_KEY, check_fits, default_replicas

if TYPE_CHECKING:
    from ncrt.model import LoadedModel
    from ncrt.runtime import Runtime

__all__ = ["NeuronModel", "load_artifact", "load_model"]




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
        total = batch_size_of(inputs, ADAPTER, 0)
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
        adapter, batch = ADAPTER, self.compiled_batch
        start, stop = chunk * batch, min(total, (chunk + chunks) * batch)
        part = [adapter.narrow(x, 0, start, stop - start) for x in inputs]
        return tuple(adapter.pad(x, 0, chunks * batch) for x in part)

    def _trim(self, outputs: dict[str, Any], rows: int) -> dict[str, Any]:
        return {name: value[:rows] for name, value in outputs.items()}

    def _join(self, parts: list[dict[str, Any]], runs: list[tuple[int, int]], total: int) -> dict[str, Any]:
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



def _as_batch(value: Any, name: str) -> Any:
    """A TF tensor or NumPy array with a batch dimension (lists become arrays)."""
    if not ADAPTER.is_tensor(value):
        try:
            value = np.asarray(value)
        except (TypeError, ValueError):
            raise BadInputError(f"input {name!r} is a {type(value).__name__}; accepted: a tensor or array") from None
    if len(value.shape) == 0:
        raise BadInputError(f"input {name!r} is a scalar; accepted: a tensor with a batch dimension")
    return value


def load_artifact(runtime: Runtime, artifact: Any) -> Model:
    if isinstance(artifact, NeuronModel):
        source = artifact.loaded.model
        return source.copy()
    model = runtime.pm.hook.ncrt_load(artifact=artifact, config=runtime.config)
    if model is None or model.framework != FRAMEWORK:
        raise ModelLoadError(
            f"{artifact!r:.80} is not an ncrt-compiled TensorFlow model; accepted: a directory written by "
            "saved_model.compile, trace(...).save or tf-auto-multicore, or a traced model"
        )
    return model


def load_model(artifact: Any, *, name: str | None = None, start: int | None = None,
               device_ids: Sequence[int] | None = None, group: int | None = None,
               replicas: int | None = None) -> NeuronModel:
    """Load an ncrt-compiled TensorFlow model and place it (next free group by default).

    ``start`` (FlexEG start core), ``device_ids`` (exact cores, one replica each) and
    ``group`` (a legacy NCG group index, answered by the ncg plugin) are passed through to
    placement; ``replicas`` defaults to :func:`default_replicas`.
    """
    runtime = get_runtime()
    model = load_artifact(runtime, artifact)
    if name:
        model.name = name
    count = len(device_ids) if device_ids is not None else replicas or default_replicas(runtime, model.manifest)
    if model.manifest.extra.get(AUTO_MULTICORE_KEY):
        check_fits(runtime, count, f"model {model.name!r} (written by tf-auto-multicore)")
    request = PlacementRequest(
        cores_per_replica=model.manifest.pipeline_cores, replicas=count, start=start,
        device_ids=tuple(device_ids) if device_ids is not None else None, group=group,
    )
    return NeuronModel(runtime.place(model, request))
