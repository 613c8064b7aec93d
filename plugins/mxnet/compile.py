"""``mx.contrib.neuron.compile``: record what an MXNet symbol needs in a manifest on the symbol.

``compile(sym, args, aux, inputs, flags=[...])`` checks that every argument has a value or
an input shape, infers the output shapes, and attaches the manifest (compiled batch,
inputs, outputs, ``--neuroncore-pipeline-cores``, a sha256 of the parameters) to the
symbol's ``__ncrt_manifest__`` attribute, which ``save_checkpoint``/``load_checkpoint``
keep.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Mapping

from ncrt.adapters.mxnet import params_digest
from ncrt.errors import BadInputError
from ncrt.manifest import Manifest, parse_compiler_args

from .execute import FRAMEWORK
from .pipeline import cut_into_stages

__all__ = ["MANIFEST_ATTR", "compile", "manifest_of"]

MANIFEST_ATTR = "__ncrt_manifest__"


def _as_shapes(inputs: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    if not isinstance(inputs, Mapping) or not inputs:
        raise BadInputError(
            f"compile inputs must name the symbol's inputs, got {type(inputs).__name__}; "
            "accepted: a dict like {'data': mx.nd.ones((1, 3, 224, 224))} (arrays or shapes)"
        )
    return {name: tuple(int(d) for d in getattr(value, "shape", value)) for name, value in inputs.items()}


def _check_arguments(sym: Any, args: Mapping[str, Any], aux: Mapping[str, Any], shapes: Mapping[str, Any]) -> None:
    missing = [n for n in sym.list_arguments() if n not in args and n not in shapes]
    missing += [n for n in sym.list_auxiliary_states() if n not in aux]
    if missing:
        raise BadInputError(
            f"cannot compile: no value or input shape for {', '.join(missing)}; accepted: every "
            f"argument of the symbol in args, aux or inputs (inputs given: {', '.join(shapes)})"
        )


def _infer_outputs(sym: Any, args: Mapping[str, Any], shapes: Mapping[str, tuple[int, ...]]) -> list[dict[str, Any]]:
    try:
        arg_shapes, out_shapes, _ = sym.infer_shape(**shapes)
    except Exception as error:  # MXNetError: shapes the graph cannot take
        raise BadInputError(f"cannot compile with input shapes {dict(shapes)}: {error}") from None
    for name, shape in zip(sym.list_arguments(), arg_shapes):
        if name in args and tuple(args[name].shape) != tuple(shape):
            raise BadInputError(
                f"parameter {name} has shape {tuple(args[name].shape)} but the graph needs {tuple(shape)} "
                f"for inputs {dict(shapes)}"
            )
    return [{"name": n, "shape": list(s)} for n, s in zip(sym.list_outputs(), out_shapes)]


def _compiler_flags(compile_args: dict[str, Any]) -> dict[str, Any]:
    flags = compile_args.pop("flags", None)
    if flags is None:
        flags = compile_args.pop("compiler_args", None)
    return parse_compiler_args(flags)


def compile(sym: Any, args: Mapping[str, Any], aux: Mapping[str, Any], inputs: Mapping[str, Any],
            **compile_args: Any) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """``mx.contrib.neuron.compile``: record what the model needs; return ``(sym, args, aux)``.

    ``inputs`` maps input names to example arrays (or shapes). ``flags`` (or
    ``compiler_args``) are neuron-cc options; ``--neuroncore-pipeline-cores N`` sets the
    cores the model occupies when bound, and cuts it into N stages, one per core
    (:mod:`ncrt.plugins.mxnet.pipeline`). The returned symbol carries the manifest in its
    ``__ncrt_manifest__`` attribute, kept by ``save_checkpoint``/``load_checkpoint``.
    """
    shapes = _as_shapes(inputs)
    _check_arguments(sym, args, aux, shapes)
    manifest = _build_manifest(sym, args, aux, inputs, shapes, dict(compile_args))
    cut_into_stages(sym, args, aux, inputs, shapes, manifest, _symbol_name(sym, [n for n in args if n not in shapes]))
    return _with_manifest(sym, manifest), dict(args), dict(aux)


def _build_manifest(sym: Any, args: Mapping[str, Any], aux: Mapping[str, Any], inputs: Mapping[str, Any],
                    shapes: Mapping[str, tuple[int, ...]], compile_args: dict[str, Any]) -> Manifest:
    flags = _compiler_flags(compile_args)
    first = next(iter(shapes.values()))
    return Manifest(
        framework=FRAMEWORK, batch_size=first[0] if first else None,
        inputs=[{"name": n, "shape": list(s), "dtype": _dtype_name(inputs[n])} for n, s in shapes.items()],
        outputs=_infer_outputs(sym, args, shapes), pipeline_cores=flags["pipeline_cores"],
        compiler_args=flags["args"], sha256=hashlib.sha256(params_digest(args, aux)).hexdigest(),
        extra={"compile_args": {key: repr(value) for key, value in compile_args.items()}},
    )


def _symbol_name(sym: Any, params: list[str]) -> str:
    """The Gluon prefix the parameters share (``modelB_dense0_weight`` -> ``modelB``), else the output's name."""
    from .model import model_name

    return model_name(sym, params)


def _dtype_name(value: Any) -> str:
    dtype = getattr(value, "dtype", None)
    return getattr(dtype, "__name__", None) or str(dtype) if dtype is not None else "float32"


def _with_manifest(sym: Any, manifest: Manifest) -> Any:
    compiled = sym.__copy__()
    node = compiled if len(compiled.list_outputs()) == 1 else compiled[0]
    node._set_attr(**{MANIFEST_ATTR: json.dumps(json.loads(manifest.to_json()), sort_keys=True)})
    return compiled


def manifest_of(sym: Any) -> Manifest:
    """The manifest ``compile`` attached to ``sym``, or a 1-core manifest for a plain symbol."""
    for attrs in sym.attr_dict().values():
        if MANIFEST_ATTR in attrs:
            return Manifest.from_json(attrs[MANIFEST_ATTR])
    return Manifest(framework=FRAMEWORK)
