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
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from ncrt.errors import BadInputError, ModelLoadError, unreadable_artifact
from ncrt.manifest import MANIFEST_NAME, Manifest, sha256_of
from ncrt.neuron_cc import CompilerFlags, flag_list, read_flags, warn_unknown

from .analyze import operator_report
from .calling import InputStructure, callable_of, check_call, keyword_only_names, structure_of
from .execute import ENTRY, FRAMEWORK, TFPayload, import_tf, load_saved_model, neuron_cc_flags, to_tensor
from .model import load_model
from .pipeline import cut_into_stages, record_uncut

if TYPE_CHECKING:
    from types import ModuleType

__all__ = [
    "ASSETS_EXTRA",
    "EMBEDDED_MANIFEST",
    "TracedModel",
    "compile_saved_model",
    "embedded_manifest",
    "is_compiled_dir",
    "load_payload",
    "manifest_path",
    "model_name",
    "read_manifest",
    "trace",
    "trace_function",
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
    try:
        with unreadable_artifact(f"the SavedModel at {directory}", _raw_saved_model_errors(), _RECOMPILE):
            holder = load_saved_model(directory)
    except (OSError, ValueError) as error:
        raise ModelLoadError(f"cannot load the SavedModel at {directory}: {error}") from None
    function = getattr(holder, ENTRY, None)
    if function is None:
        raise ModelLoadError(f"{directory} has an ncrt manifest but no {ENTRY} function; recompile it")
    return TFPayload(function, holder, [spec["dtype"] for spec in manifest.inputs])


_RECOMPILE = "accepted: a directory written by tfn.trace(...).save or model.save of a traced model; trace it again"


def _raw_saved_model_errors() -> tuple[type[BaseException], ...]:
    """What TensorFlow raises for damaged protobufs and variable files (checkpoint readers
    raise OpError subclasses, IndexError and KeyError; protobuf a DecodeError)."""
    from google.protobuf.message import DecodeError

    return (import_tf().errors.OpError, DecodeError, IndexError, KeyError, RuntimeError)


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


EMBEDDED_MANIFEST = "ncrt_manifest_json"
"""The attribute (a string variable) that carries the manifest inside the SavedModel itself,
so that an object restored by ``tf.saved_model.load`` is recognised as ncrt-compiled."""


def _restructure(manifest: Manifest, outputs: Mapping[str, Any]) -> Any:
    kind = manifest.extra.get("output_kind", "dict")
    if kind == "tensor":
        return next(iter(outputs.values()))
    if kind == "sequence":
        return tuple(outputs[spec["name"]] for spec in manifest.outputs)
    return dict(outputs)


def _call_function(tf: ModuleType, entry: Any, manifest: Manifest) -> Any:
    """``__call__`` of the saved module: the traced model's own calling convention and outputs."""
    specs = _tensor_specs(tf, manifest.inputs, manifest.dynamic_batching)
    structure = InputStructure.from_record(manifest.extra.get("input_structure")) or InputStructure("tuple")
    if structure.kind == "tensor":
        return tf.function(lambda x: _restructure(manifest, entry(x)), input_signature=specs)
    if structure.kind == "list":
        return tf.function(lambda xs: _restructure(manifest, entry(*xs)), input_signature=[specs])
    if structure.kind == "dict":
        names = [spec["name"] for spec in manifest.inputs]
        return tf.function(lambda d: _restructure(manifest, entry(*[d[n] for n in names])),
                           input_signature=[dict(zip(names, specs))])
    return tf.function(lambda *xs: _restructure(manifest, entry(*xs)), input_signature=specs)


def _embed_manifest(tf: ModuleType, module: Any, manifest: Manifest) -> None:
    text = manifest.to_json()
    variable = getattr(module, EMBEDDED_MANIFEST, None)
    if variable is None:
        setattr(module, EMBEDDED_MANIFEST, tf.Variable(text, trainable=False, name=EMBEDDED_MANIFEST))
    else:
        variable.assign(text)


def embedded_manifest(obj: Any) -> Manifest | None:
    """The manifest inside an object restored by ``tf.saved_model.load``, if ncrt compiled it."""
    variable = getattr(obj, EMBEDDED_MANIFEST, None)
    if variable is None or getattr(obj, ENTRY, None) is None or not hasattr(variable, "numpy"):
        return None
    return Manifest.from_json(variable.numpy())


def write_saved_model(module: Any, directory: str | Path, manifest: Manifest) -> Manifest:
    """Save ``module`` (with its ``ncrt_infer``) and its manifest; return the manifest.

    The module also gets a ``__call__`` with the traced model's calling convention and the
    manifest as a string variable, so ``tf.saved_model.load`` gives a callable object that
    ncrt recognises (``auto_multicore``, ``ncrt.load``).
    """
    tf = import_tf()
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    entry = getattr(module, ENTRY)
    manifest.sha256 = None
    _embed_manifest(tf, module, manifest)
    module.__call__ = _call_function(tf, entry, manifest)
    tf.saved_model.save(module, str(directory), signatures={"serving_default": entry})
    (directory / ASSETS_EXTRA).mkdir(exist_ok=True)
    manifest.sha256 = sha256_of(directory)
    manifest.write(directory / ASSETS_EXTRA)
    return manifest


def _manifest(inputs: list[dict[str, Any]], outputs: list[dict[str, Any]], batch: int, dynamic: bool,
              compiler_args: Any, extra: dict[str, Any]) -> Manifest:
    flags = read_flags(flag_list(compiler_args))
    warn_unknown(flags, "tfn.saved_model.compile")
    return Manifest(
        framework=FRAMEWORK, batch_size=batch, batch_dim=0, inputs=inputs, outputs=outputs,
        pipeline_cores=flags.pipeline_cores, dynamic_batching=bool(dynamic) or flags.dynamic_batch_size,
        compiler_args=flags.args, extra={**extra, **flags.record()},
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


def _examples_from_signature(signature_inputs: Mapping[str, Any], batch_size: int,
                             shapes: Mapping[str, Any] | None) -> dict[str, np.ndarray]:
    """Zero examples of the signature's shapes (``model_shape_feed_dict`` first; open dims: ``batch_size``)."""
    given = {_feed_name(key): list(value) for key, value in (shapes or {}).items()}
    unknown = sorted(set(given) - set(signature_inputs))
    if unknown:
        raise BadInputError(f"model_shape_feed_dict names no input {', '.join(unknown)}; accepted: "
                            f"{', '.join(signature_inputs)}")
    examples = {}
    for name, spec in signature_inputs.items():
        shape = given.get(name) or [batch_size if dim is None else dim for dim in spec.shape.as_list()]
        if not all(isinstance(dim, int) and dim > 0 for dim in shape):
            raise BadInputError(f"input {name!r} has shape {shape}; give it in model_shape_feed_dict")
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


_IGNORED_COMPILE_OPTIONS = {
    "tags": "the SavedModel's serving MetaGraph is used",
    "minimum_segment_size": "no graph partitioning: every operator runs on the core",
    "no_fuse_ops": "no graph partitioning: every operator runs on the core",
    "compiler_workdir": "ncrt runs no compiler, so it writes no compiler artifacts",
}


def _examples(signature_inputs: Mapping[str, Any], model_feed_dict: Mapping[str, Any] | None,
              model_shape_feed_dict: Mapping[str, Any] | None, batch_size: int) -> dict[str, np.ndarray]:
    if model_feed_dict:
        return _match_feed(signature_inputs, model_feed_dict)
    if not isinstance(batch_size, int) or batch_size < 1:
        raise BadInputError(f"batch_size={batch_size!r} is not valid; accepted: a whole number >= 1")
    return _examples_from_signature(signature_inputs, batch_size, model_shape_feed_dict)


def compile_saved_model(model_dir: str | Path, new_model_dir: str | Path, batch_size: int = 1,
                        model_shape_feed_dict: Mapping[str, Any] | None = None,
                        model_feed_dict: Mapping[str, Any] | None = None, tags: Any = None,
                        signature_def_key: str | None = None, minimum_segment_size: int | None = None,
                        no_fuse_ops: Any = None, compiler_args: Any = None, compiler_workdir: Any = None,
                        dynamic_batch_size: bool = False) -> dict[str, Any]:
    """Compile the SavedModel at ``model_dir`` into ``new_model_dir`` (``tfn.saved_model.compile``).

    The examples are ``model_feed_dict`` (arrays by input name, ``input_1:0`` or
    ``input_1``), else zeros of ``model_shape_feed_dict``'s shapes or of the signature's
    shapes with ``batch_size`` for an open batch dimension. ``tags``,
    ``minimum_segment_size``, ``no_fuse_ops`` and ``compiler_workdir`` are recorded and
    have no effect here. Returns compilation facts as tensorflow-neuron does
    (``OnNeuronRatio``: every counted operator runs on the ncrt core).
    """
    tf = import_tf()
    if not Path(model_dir).is_dir():
        raise ModelLoadError(f"model_dir {model_dir} is not a SavedModel directory")
    loaded = load_saved_model(model_dir)
    signature = _signature(loaded, signature_def_key or "serving_default", model_dir)
    signature_inputs = signature.structured_input_signature[1]
    examples = _examples(signature_inputs, model_feed_dict, model_shape_feed_dict, batch_size)
    order = list(examples)
    batch = _check_batches([examples[n] for n in order])
    dtypes = {n: signature_inputs[n].dtype.name for n in order}
    inputs = [_spec_entry(n, examples[n].shape, dtypes[n]) for n in order]
    module = _compile_module(tf, loaded, signature, _tensor_specs(tf, inputs, dynamic_batch_size))
    entry = getattr(module, ENTRY)
    outputs = entry(*[to_tensor(tf, examples[n], dtypes[n]) for n in order])
    report = operator_report(entry.get_concrete_function())
    given = {"tags": tags, "minimum_segment_size": minimum_segment_size, "no_fuse_ops": no_fuse_ops,
             "compiler_workdir": compiler_workdir}
    ignored = {name: _IGNORED_COMPILE_OPTIONS[name] for name, value in given.items() if value is not None}
    extra = {"output_kind": "dict", "source": "saved_model.compile", "operator_count": dict(report.counts),
             "input_aliases": _feed_aliases(signature_inputs, model_feed_dict or {}),
             "on_neuron_ratio": report.on_neuron_ratio, "ignored_compile_options": ignored}
    manifest = _manifest(inputs, _output_entries(outputs), batch, dynamic_batch_size, compiler_args, extra)
    record_uncut(manifest, model_name(Path(new_model_dir)), SAVED_MODEL_UNCUT)
    write_saved_model(module, new_model_dir, manifest)
    return {"OnNeuronRatio": report.on_neuron_ratio, "new_model_dir": str(new_model_dir), "batch_size": batch,
            "pipeline_cores": manifest.pipeline_cores, "operator_count": dict(report.counts),
            "num_ops_on_neuron": report.total, "num_ops_total": report.total}


def _named_outputs(result: Any) -> tuple[dict[str, Any], str]:
    """A model's result as a dict of named outputs, and its kind (tensor, dict, sequence)."""
    if isinstance(result, Mapping):
        return dict(result), "dict"
    if isinstance(result, (list, tuple)):
        return {f"output_{i}": value for i, value in enumerate(result)}, "sequence"
    return {"output_0": result}, "tensor"


def _trace_module(tf: ModuleType, func_or_model: Any, structure: InputStructure, specs: list[Any],
                  seen: dict[str, Any] | None = None) -> Any:
    """A tf.Module whose ``ncrt_infer`` calls the source as tensorflow-neuron does.

    ``seen`` receives the kind and names of the source's outputs when the function is traced.
    """
    module = tf.Module()
    module.source = func_or_model
    if keyword_only_names(func_or_model) is not None and getattr(func_or_model, "variables", None):
        module.captured_variables = list(func_or_model.variables)  # a signature's variables, tracked for saving
    source = callable_of(func_or_model)

    def infer(*tensors: Any) -> dict[str, Any]:
        named, kind = _named_outputs(structure.call(source, list(tensors)))
        if seen is not None:
            seen.update(kind=kind, names=list(named))
        return named

    setattr(module, ENTRY, tf.function(infer, input_signature=specs))
    return module


def _example_arrays(structure: InputStructure, example_inputs: Any, func_or_model: Any) -> list[np.ndarray]:
    names = structure.input_names()
    check_call(func_or_model, structure, len(structure.flatten(example_inputs)))
    return [_as_array(x, f"example_inputs[{name!r}]" if structure.kind != "tensor" else "example_inputs")
            for name, x in zip(names, structure.flatten(example_inputs))]


def _trace_flags(compiler_args: Any) -> CompilerFlags:
    """``compiler_args`` followed by ``NEURON_CC_FLAGS`` (how the tracing API page passes options)."""
    args = flag_list(compiler_args) + flag_list(neuron_cc_flags())
    flags = read_flags(args)
    warn_unknown(flags, "tfn.trace")
    return flags


class TracedModel:
    """What :func:`trace` returns: save it (``.save(dir)``) or call it (placed on first call).

    ``on_neuron_ratio``: the fraction of the graph's counted operators that run on the
    NeuronCore (all of them under ncrt, see :mod:`~ncrt.plugins.tensorflow.analyze`).
    """

    def __init__(self, module: Any, manifest: Manifest) -> None:
        self.module = module
        self.manifest = manifest
        self._placed: Any = None
        self._placing = threading.Lock()  # many threads' first calls at once: one placement, not one each

    @property
    def on_neuron_ratio(self) -> float:
        return float(self.manifest.extra.get("on_neuron_ratio", 1.0))

    @property
    def payload(self) -> TFPayload:
        return TFPayload(getattr(self.module, ENTRY), self.module, [s["dtype"] for s in self.manifest.inputs])

    def save(self, directory: str | Path, *unused: Any, **unused_options: Any) -> Path:
        """Write the SavedModel with its manifest (``tf.keras.models.load_model`` reads it under compat)."""
        write_saved_model(self.module, directory, self.manifest)
        return Path(directory)

    def __call__(self, *inputs: Any, **named: Any) -> Any:
        placed = self._placed
        if placed is None:
            with self._placing:
                if self._placed is None:
                    self._placed = load_model(self)
                placed = self._placed
        return placed(*inputs, **named)

    def __repr__(self) -> str:
        return f"<TracedModel batch={self.manifest.batch_size} pipeline_cores={self.manifest.pipeline_cores}>"


def trace_function(func_or_model: Any, example_inputs: Any) -> Any:
    """The ConcreteFunction of ``func_or_model`` called on ``example_inputs`` as trace calls it."""
    tf = import_tf()
    structure = structure_of(example_inputs)
    arrays = _example_arrays(structure, example_inputs, func_or_model)
    inputs = [_spec_entry(n, a.shape, _dtype_of(a)) for n, a in zip(structure.input_names(), arrays)]
    module = _trace_module(tf, func_or_model, structure, _tensor_specs(tf, inputs, False))
    return getattr(module, ENTRY).get_concrete_function()


def trace(func_or_model: Any, example_inputs: Any, subgraph_builder_function: Any = None,
          compiler_args: Any = None, dynamic_batch_size: bool | None = None) -> TracedModel:
    """Trace a model on ``example_inputs`` (``tfn.trace``) and return the traced model.

    ``func_or_model``: a Keras 3 or tf-keras model, a TF function or callable, a SavedModel
    signature, or a loaded SavedModel. It is called as tensorflow-neuron calls it: a tensor
    or a list as ``func(example_inputs)``, a tuple as ``func(*example_inputs)``, a dict as
    ``func(**example_inputs)``. Compiler options come from ``compiler_args`` and the
    ``NEURON_CC_FLAGS`` variable (``--neuroncore-pipeline-cores=N`` is honoured,
    ``--dynamic-batch-size`` turns dynamic batching on; others are recorded). Dynamic
    batching is on by default. ``subgraph_builder_function`` is accepted and recorded:
    ncrt runs every operator on the core.
    """
    tf = import_tf()
    structure = structure_of(example_inputs)
    arrays = _example_arrays(structure, example_inputs, func_or_model)
    batch = _check_batches(arrays)
    flags = _trace_flags(compiler_args)
    dynamic = True if dynamic_batch_size is None else bool(dynamic_batch_size) or flags.dynamic_batch_size
    inputs = [_spec_entry(n, a.shape, _dtype_of(a)) for n, a in zip(structure.input_names(), arrays)]
    seen: dict[str, Any] = {}
    module = _trace_module(tf, func_or_model, structure, _tensor_specs(tf, inputs, dynamic), seen)
    entry = getattr(module, ENTRY)
    tensors = [to_tensor(tf, a, e["dtype"]) for a, e in zip(arrays, inputs)]
    outputs = entry(*tensors)
    report = operator_report(entry.get_concrete_function())
    extra = {"output_kind": seen["kind"], "output_names": seen["names"], "source": "trace",
             "input_structure": structure.to_record(), "operator_count": dict(report.counts),
             "on_neuron_ratio": report.on_neuron_ratio, **flags.record()}
    if subgraph_builder_function is not None:
        extra["subgraph_builder_function"] = "ignored: every operator runs on the ncrt core"
    manifest = Manifest(
        framework=FRAMEWORK, batch_size=batch, batch_dim=0, inputs=inputs, outputs=_output_entries(outputs),
        pipeline_cores=flags.pipeline_cores, dynamic_batching=dynamic, compiler_args=flags.args, extra=extra,
    )
    name = getattr(func_or_model, "name", None) or type(func_or_model).__name__
    cut_into_stages(module, func_or_model, structure, tensors, manifest, name, lambda result: _named_outputs(result)[0],
                    outputs)
    return TracedModel(module, manifest)


def _dtype_of(array: np.ndarray) -> str:
    """float64 examples (numpy's default) trace as float32, as Keras does."""
    return "float32" if array.dtype == np.float64 else array.dtype.name


def model_name(directory: Path) -> str:
    """``rn50_compiled/1`` (a version directory) -> ``rn50_compiled``."""
    directory = directory.resolve()
    return directory.parent.name if directory.name.isdigit() else directory.name
