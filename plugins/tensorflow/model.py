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
from ncrt.batching import batch_size_of
from ncrt.errors import BadInputError, ModelLoadError
from ncrt.manifest import Manifest
from ncrt.model import Model, unload_when_freed
from ncrt.parallel import DataParallelRunner
from ncrt.placement import PlacementRequest

from .execute import FRAMEWORK, output_tensors
from .pipeline import check_pipeline_replicas
from .placement import AUTO_MULTICORE_KEY, check_fits, default_replicas, replicas_asked

if TYPE_CHECKING:
    from ncrt.model import LoadedModel
    from ncrt.runtime import Runtime

__all__ = ["NeuronModel", "load_artifact", "load_model"]




class NeuronModel:
    """A TensorFlow model placed on ncrt cores; call it like the Keras/SavedModel it came from.

    Inputs: positional tensors (the manifest's input order), one dict, or keywords by input
    name (``input_1`` or ``input_1:0``). Outputs: a tensor, a tuple, or a dict of tensors, as
    the traced model returned them (a dict for ``saved_model.compile``). Inference only.

    Dynamic batching (:class:`ncrt.parallel.DataParallelRunner`, ``fused`` and
    ``idle_only``): a batch is cut into compiled-batch chunks (the last padded); when
    several replicas are idle the chunks are dealt out to them as contiguous runs, else the
    whole call goes to the least-loaded replica. A run of k chunks is one framework call
    on its core (same outputs as k calls, less overhead). Without dynamic batching the
    batch must equal the compiled batch size.
    """

    inference_only = True

    def __init__(self, loaded: LoadedModel) -> None:
        self._finalizer = unload_when_freed(self, loaded)  # freed by the framework: nrt_unload
        self.loaded = loaded
        self.manifest: Manifest = loaded.manifest
        self.input_names = [spec["name"] for spec in self.manifest.inputs]
        self.output_names = [spec["name"] for spec in self.manifest.outputs]
        self.compiled_batch = int(self.manifest.batch_size or 1)
        self._runner = DataParallelRunner(loaded, ADAPTER, compiled_batch=self.compiled_batch,
                                          fused=True, idle_only=True, deliver=output_tensors)

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

    @property
    def on_neuron_ratio(self) -> float:
        """The fraction of the graph's counted operators on the NeuronCore (all of them under ncrt)."""
        return float(self.manifest.extra.get("on_neuron_ratio", 1.0))

    @property
    def signatures(self) -> dict[str, Any]:
        """``{'serving_default': fn}``: ``fn(**inputs_by_name)`` runs on the cores, returns a dict."""
        return {"serving_default": self._serving}

    def _serving(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return output_tensors(self._dispatch(self._arrange(args, kwargs)))

    def save(self, directory: str | Path, *unused: Any, **unused_options: Any) -> Path:
        """Write the model as a SavedModel again; it keeps its replication when reloaded."""
        from .compile import write_saved_model

        manifest = Manifest.from_json(self.manifest.to_json())
        if self.replica_count > 1 and self.manifest.pipeline_cores == 1:
            manifest.extra[AUTO_MULTICORE_KEY] = self.replica_count
        write_saved_model(self.loaded.model.payload.holder, directory, manifest)
        return Path(directory)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        inputs = self._arrange(args, kwargs)
        return self._structure(self._dispatch(inputs))

    def _arrange(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> list[Any]:
        if len(args) == 1 and isinstance(args[0], Mapping) and not kwargs:
            kwargs, args = args[0], ()
        elif len(args) == 1 and _is_tensor_sequence(args[0], len(self.input_names)):
            args = list(args[0])  # model(example_input) with a list of tensors, as it was traced
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

    def submit_request(self, *args: Any, **kwargs: Any) -> tuple[int, Any]:
        """Start a call without waiting: ``(rows, future)``; ``outputs_of(future.result())``
        gives what the call returns. Small calls are joined with other requests waiting for
        the model (:mod:`ncrt.coalesce`); what ``feed(max_batch=...)`` uses."""
        inputs = tuple(self._arrange(args, kwargs))
        rows = batch_size_of(inputs, ADAPTER, 0)
        if not self.manifest.dynamic_batching:
            self._check_static(rows)
            return rows, self.loaded.submit(inputs)
        return rows, self._runner.submit(inputs)

    def outputs_of(self, outputs: dict[str, Any]) -> Any:
        """The structure a call returns (tensor, tuple or dict) for the outputs of a request."""
        return self._structure(outputs)

    def _dispatch(self, inputs: list[Any]) -> dict[str, Any]:
        if self.manifest.dynamic_batching:
            return self._runner(tuple(inputs))
        self._check_static(batch_size_of(inputs, ADAPTER, 0))
        return self.loaded.run(tuple(inputs))

    def _check_static(self, total: int) -> None:
        if total != self.compiled_batch:
            raise BadInputError(
                f"model {self.name!r} was compiled for batch size {self.compiled_batch} without dynamic "
                f"batching, got a batch of {total}; send batches of {self.compiled_batch}, or compile "
                "with dynamic_batch_size=True"
            )

    def _structure(self, outputs: dict[str, Any]) -> Any:
        tensors = output_tensors(outputs)
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
        """Free the model's cores for other models now."""
        self._finalizer.detach()
        self.loaded.unload()

    def __repr__(self) -> str:
        return f"<NeuronModel {self.name} on {self.placement} x{self.replica_count} batch={self.compiled_batch}>"



def _is_tensor_sequence(value: Any, count: int) -> bool:
    """A list/tuple of ``count`` tensors or arrays (not a nested Python list of numbers)."""
    if not isinstance(value, (list, tuple)) or len(value) != count:
        return False
    return all(ADAPTER.is_tensor(item) or isinstance(item, np.ndarray) for item in value)


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
    """The ncrt Model of a placed model (a new copy), a traced model, a directory or a restored object."""
    if isinstance(artifact, NeuronModel):
        source = artifact.loaded.model
        return source.copy()
    model = runtime.pm.hook.ncrt_load(artifact=artifact, config=runtime.config)
    if model is None or model.framework != FRAMEWORK:
        raise ModelLoadError(
            f"{artifact!r:.80} is not an ncrt-compiled TensorFlow model; accepted: a directory written by "
            "saved_model.compile, trace(...).save or tf-auto-multicore, a traced model, or such a directory "
            "loaded with tf.saved_model.load"
        )
    return model


def load_model(artifact: Any, *, name: str | None = None, start: int | None = None,
               device_ids: Sequence[int] | None = None, device_index: int | None = None,
               replicas: int | None = None) -> NeuronModel:
    """Load an ncrt-compiled TensorFlow model and place it (next free group by default).

    ``start`` (FlexEG start core), ``device_ids`` (exact cores, one replica each, or one
    whole pipeline per N cores for a model compiled for N pipeline cores) and
    ``device_index`` (a device-context index: the start core under runtime 2.x, a group
    index under the legacy ``NEURONCORE_GROUP_SIZES``) are passed through to placement;
    ``replicas`` defaults to the framework's replication (:func:`default_replicas`).
    """
    runtime = get_runtime()
    model = load_artifact(runtime, artifact)
    if name:
        model.name = name
    check_pipeline_replicas(len(runtime.cores), model.manifest, replicas, device_ids)
    width = model.manifest.pipeline_cores
    asked = len(device_ids) // width if device_ids is not None else replicas_asked(model.manifest, replicas)
    if model.manifest.extra.get(AUTO_MULTICORE_KEY) and asked:
        check_fits(runtime, asked, f"model {model.name!r} (written by tf-auto-multicore)")
    request = PlacementRequest(
        cores_per_replica=width, replicas=asked, default_replicas=default_replicas(runtime),
        start=start, device_ids=tuple(device_ids) if device_ids is not None else None, device_index=device_index,
    )
    return NeuronModel(runtime.place(model, request))
