"""TensorFlow "compilation": SavedModels that carry an ncrt manifest.

``saved_model.compile`` (TF1-style, ``seeds/003``) and ``trace`` (TF2) wrap a model in a
``tf.Module`` whose ``ncrt_infer`` function takes the inputs positionally (in the
manifest's input order) and returns a dict of named outputs. The module is written with
``tf.saved_model.save`` (``ncrt_infer`` is also the ``serving_default`` signature) and the
manifest goes to ``assets.extra/ncrt-manifest.json``; its sha256 covers every file of
the SavedModel except the manifest. The compiled batch size is the example input's
first dimension; ``--neuroncore-pipeline-cores N`` in ``compiler_args`` is the number
of cores one replica needs, and ``trace`` of a functional or sequential Keras model cuts
it into N stages, one per core (:mod:`ncrt.plugins.tensorflow.pipeline`). With dynamic batching the signature's batch dimension is
left open (``None``), so one framework call can take several compiled-batch chunks.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from ncrt.errors import BadInputError, ModelLoadError
from ncrt.manifest import MANIFEST_NAME, Manifest, parse_compiler_args, sha256_of

from .execute import ENTRY, FRAMEWORK, TFPayload, import_tf, to_tensor
from .model import load_model
from .pipeline import cut_into_stages, record_uncut

if TYPE_CHECKING:
    from types import ModuleType

__all__ = [
    "ASSETS_EXTRA",
    "TracedModel",
    "compile_saved_model",
    "is_compiled_dir",
    "load_payload",
    "manifest_path",
    "model_name",
    "read_manifest",
    "trace",
    "write_saved_model",
]

ASSETS_EXTRA = "assets.extra"
SAVED_MODEL_UNCUT = ("a SavedModel signature carries no Keras layer graph to cut (trace the Keras model with "
                     "tensorflow.neuron.trace to pipeline it)")


def manifest_path(directory: str | Path) -> Path:
    return Path(directory) / ASSETS_EXTRA / MANIFEST_NAME


def is_compiled_dir(artifact: Any) -> bool:
    """Whether ``artifact`` is a path to a directory holding an ncrt manifest."""
    if not isinstance(artifact, (str, os.PathLike)):
        return False
    return manifest_path(artifact).is_file()


def read_manifest(directory: str | Path) -> Manifest:
    """The manifest of an ncrt-compiled SavedModel directory."""
    return Manifest.read(Path(directory) / ASSETS_EXTRA)


def load_payload(directory: str | Path, manifest: Manifest) -> TFPayload:
    """Load the SavedModel once and return its ``ncrt_infer`` function."""
    tf = import_tf()
    try:
        holder = tf.saved_model.load(str(directory))
    except (OSError, ValueError) as error:
        raise ModelLoadError(f"cannot load the SavedModel at {directory}: {error}") from None
    function = getattr(holder, ENTRY, None)
    if function is None:
        raise ModelLoadError(f"{directory} has an ncrt manifest but no {ENTRY} function; recompile it")
    return TFPayload(function, holder, [spec["dtype"] for spec in manifest.inputs])


def _spec_entry(name: str, shape: Sequence[int | None], dtype: str) -> dict[str, Any]:
    return {"name": name, "shape": list(shape), "dtype": dtype}


def _as_array(value: Any, what: str) -> np.ndarray:
    try:
        array = np.asarray(value.numpy() if hasattr(value, "numpy") else value)
    except (TypeError, ValueError) as error:
        raise BadInputError(f"{what} is not a tensor or array: {type(value).__name__} ({error})") from None
    if array.ndim == 0:
        raise BadInputError(f"{what} has no batch dimension (a scalar); accepted: a tensor of rank >= 1")
    return array


def _output_entries(outputs: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [_spec_entry(name, list(value.shape), value.dtype.name) for name, value in outputs.items()]


def _check_batches(arrays: Sequence[np.ndarray]) -> int:
    batches = {int(a.shape[0]) for a in arrays}
    if len(batches) != 1:
        raise BadInputError(f"the example inputs disagree on their batch size: {sorted(batches)}")
    return batches.pop()


def _tensor_specs(tf: ModuleType, entries: Sequence[dict[str, Any]], dynamic: bool) -> list[Any]:
    return [
        tf.TensorSpec([None if dynamic else e["shape"][0], *e["shape"][1:]], e["dtype"], name=e["name"])
        for e in entries
    ]


def write_saved_model(module: Any, directory: str | Path, manifest: Manifest) -> Manifest:
    """Save ``module`` (with its ``ncrt_infer``) and its manifest; return the manifest."""
    tf = import_tf()
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    entry = getattr(module, ENTRY)
    tf.saved_model.save(module, str(directory), signatures={"serving_default": entry})
    (directory / ASSETS_EXTRA).mkdir(exist_ok=True)
    manifest.sha256 = sha256_of(directory)
    manifest.write(directory / ASSETS_EXTRA)
    return manifest


def _manifest(inputs: list[dict[str, Any]], outputs: list[dict[str, Any]], batch: int, dynamic: bool,
              compiler_args: Any, extra: dict[str, Any]) -> Manifest:
    parsed = parse_compiler_args(compiler_args)
    return Manifest(
        framework=FRAMEWORK, batch_size=batch, batch_dim=0, inputs=inputs, outputs=outputs,
        pipeline_cores=parsed["pipeline_cores"], dynamic_batching=bool(dynamic),
        compiler_args=parsed["args"], extra=extra,
    )


def _signature(loaded: Any, key: str, model_dir: str | Path) -> Any:
    signatures = getattr(loaded, "signatures", {})
    if key not in signatures:
        raise ModelLoadError(
            f"the SavedModel at {model_dir} has no signature {key!r}; it has: {', '.join(signatures) or 'none'}"
        )
    return signatures[key]


def _feed_name(key: str) -> str:
    """``'input_1:0'`` (a TF1 tensor name) -> ``'input_1'``."""
    return key.split(":", 1)[0]


def _match_feed(signature_inputs: Mapping[str, Any], feed: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Map ``model_feed_dict`` keys onto the signature's input names."""
    names = list(signature_inputs)
    if len(feed) == 1 and len(names) == 1:
        return {names[0]: _as_array(next(iter(feed.values())), f"model_feed_dict[{next(iter(feed))!r}]")}
    matched = {}
    for key, value in feed.items():
        name = _feed_name(key)
        if name not in signature_inputs:
            raise BadInputError(
                f"model_feed_dict key {key!r} names no input of the model; accepted: {', '.join(names)}"
            )
        matched[name] = _as_array(value, f"model_feed_dict[{key!r}]")
    missing = [name for name in names if name not in matched]
    if missing:
        raise BadInputError(f"model_feed_dict gives no example for input(s) {', '.join(missing)}")
    return matched


def _feed_aliases(signature_inputs: Mapping[str, Any], feed: Mapping[str, Any]) -> dict[str, str]:
    """Feed names that differ from the signature's (``input_1`` for Keras 3's ``keras_tensor``)."""
    names = list(signature_inputs)
    if len(feed) == 1 and len(names) == 1:
        alias = _feed_name(next(iter(feed)))
        return {alias: names[0]} if alias != names[0] else {}
    return {}


def _examples_from_signature(signature_inputs: Mapping[str, Any]) -> dict[str, np.ndarray]:
    examples = {}
    for name, spec in signature_inputs.items():
        shape = [1 if dim is None else dim for dim in spec.shape.as_list()]
        examples[name] = np.zeros(shape, dtype=spec.dtype.as_numpy_dtype)
    return examples


def _compile_module(tf: ModuleType, loaded: Any, signature: Any, specs: list[Any]) -> Any:
    names = [spec.name for spec in specs]

    def infer(*tensors: Any) -> dict[str, Any]:
        return signature(**dict(zip(names, tensors)))

    module = tf.Module()
    module.source = loaded
    setattr(module, ENTRY, tf.function(infer, input_signature=specs))
    return module


def compile_saved_model(model_dir: str | Path, new_model_dir: str | Path,
                        model_feed_dict: Mapping[str, Any] | None = None, dynamic_batch_size: bool = False,
                        compiler_args: Any = None, signature_def_key: str = "serving_default",
                        **unused: Any) -> dict[str, Any]:
    """Compile the SavedModel at ``model_dir`` into ``new_model_dir`` (``tfn.saved_model.compile``).

    Returns compilation facts as tensorflow-neuron does (``OnNeuronRatio`` is 1.0: every
    op runs on the ncrt core).
    """
    tf = import_tf()
    if not Path(model_dir).is_dir():
        raise ModelLoadError(f"model_dir {model_dir} is not a SavedModel directory")
    loaded = tf.saved_model.load(str(model_dir))
    signature = _signature(loaded, signature_def_key, model_dir)
    signature_inputs = signature.structured_input_signature[1]
    examples = _match_feed(signature_inputs, model_feed_dict) if model_feed_dict else \
        _examples_from_signature(signature_inputs)
    order = list(examples)
    batch = _check_batches([examples[n] for n in order])
    dtypes = {n: signature_inputs[n].dtype.name for n in order}
    inputs = [_spec_entry(n, examples[n].shape, dtypes[n]) for n in order]
    module = _compile_module(tf, loaded, signature, _tensor_specs(tf, inputs, dynamic_batch_size))
    outputs = getattr(module, ENTRY)(*[to_tensor(tf, examples[n], dtypes[n]) for n in order])
    aliases = _feed_aliases(signature_inputs, model_feed_dict or {})
    manifest = _manifest(inputs, _output_entries(outputs), batch, dynamic_batch_size, compiler_args,
                         {"output_kind": "dict", "source": "saved_model.compile", "input_aliases": aliases})
    record_uncut(manifest, model_name(Path(new_model_dir)), SAVED_MODEL_UNCUT)
    write_saved_model(module, new_model_dir, manifest)
    return {"OnNeuronRatio": 1.0, "new_model_dir": str(new_model_dir), "batch_size": batch,
            "pipeline_cores": manifest.pipeline_cores}


def _example_list(example_inputs: Any) -> tuple[list[np.ndarray], bool]:
    """The example inputs as a list, and whether they came as one tensor."""
    if isinstance(example_inputs, (list, tuple)):
        return [_as_array(x, f"example_inputs[{i}]") for i, x in enumerate(example_inputs)], False
    return [_as_array(example_inputs, "example_inputs")], True


def _named_outputs(result: Any) -> tuple[dict[str, Any], str]:
    """A model's result as a dict of named outputs, and its kind (tensor, dict, sequence)."""
    if isinstance(result, Mapping):
        return dict(result), "dict"
    if isinstance(result, (list, tuple)):
        return {f"output_{i}": value for i, value in enumerate(result)}, "sequence"
    return {"output_0": result}, "tensor"


def _call_source(source: Any, tensors: list[Any]) -> Any:
    """Call a Keras model in inference mode (a list for several inputs) or a plain function."""
    if hasattr(source, "layers"):
        return source(tensors if len(tensors) > 1 else tensors[0], training=False)
    return source(*tensors)


def _trace_module(tf: ModuleType, func_or_model: Any, specs: list[Any]) -> Any:
    module = tf.Module()
    module.source = func_or_model

    def infer(*tensors: Any) -> dict[str, Any]:
        return _named_outputs(_call_source(module.source, list(tensors)))[0]

    setattr(module, ENTRY, tf.function(infer, input_signature=specs))
    return module


class TracedModel:
    """What :func:`trace` returns: save it (``.save(dir)``) or call it (placed on first call)."""

    def __init__(self, module: Any, manifest: Manifest) -> None:
        self.module = module
        self.manifest = manifest
        self._placed: Any = None

    @property
    def payload(self) -> TFPayload:
        return TFPayload(getattr(self.module, ENTRY), self.module, [s["dtype"] for s in self.manifest.inputs])

    def save(self, directory: str | Path) -> Path:
        """Write the SavedModel with its manifest (``tf.keras.models.load_model`` reads it under compat)."""
        write_saved_model(self.module, directory, self.manifest)
        return Path(directory)

    def __call__(self, *inputs: Any) -> Any:
        if self._placed is None:
            self._placed = load_model(self)
        return self._placed(*inputs)

    def __repr__(self) -> str:
        return f"<TracedModel batch={self.manifest.batch_size} pipeline_cores={self.manifest.pipeline_cores}>"


def trace(func_or_model: Any, example_inputs: Any, subgraph_builder_function: Any = None,
          compiler_args: Any = None, dynamic_batch_size: bool = True) -> TracedModel:
    """Trace a Keras model or TF function on ``example_inputs`` (``tfn.trace``).

    The compiled batch size is the examples' first dimension; dynamic batching is on by
    default, as in tensorflow-neuron 2.x. ``subgraph_builder_function`` is accepted for
    compatibility (every op runs on the core).
    """
    tf = import_tf()
    if not callable(func_or_model):
        raise BadInputError(
            f"trace needs a Keras model or a TensorFlow function; got {type(func_or_model).__name__}"
        )
    arrays, _ = _example_list(example_inputs)
    batch = _check_batches(arrays)
    inputs = [_spec_entry(f"input_{i}", a.shape, _dtype_of(a)) for i, a in enumerate(arrays)]
    module = _trace_module(tf, func_or_model, _tensor_specs(tf, inputs, dynamic_batch_size))
    tensors = [to_tensor(tf, a, e["dtype"]) for a, e in zip(arrays, inputs)]
    named, kind = _named_outputs(_call_source(func_or_model, tensors))
    outputs = _output_entries({n: tf.convert_to_tensor(v) for n, v in named.items()})
    manifest = _manifest(inputs, outputs, batch, dynamic_batch_size, compiler_args,
                         {"output_kind": kind, "output_names": list(named), "source": "trace"})
    name = getattr(func_or_model, "name", None) or type(func_or_model).__name__
    cut_into_stages(module, func_or_model, tensors, manifest, name, lambda result: _named_outputs(result)[0], named)
    return TracedModel(module, manifest)


def _dtype_of(array: np.ndarray) -> str:
    """float64 examples (numpy's default) trace as float32, as Keras does."""
    return "float32" if array.dtype == np.float64 else array.dtype.name


def model_name(directory: Path) -> str:
    """``rn50_compiled/1`` (a version directory) -> ``rn50_compiled``."""
    directory = directory.resolve()
    return directory.parent.name if directory.name.isdigit() else directory.name
