"""``mx_neuron.compile`` / ``mx.contrib.neuron.compile``: a manifest on an MXNet symbol.

``compile(sym, args, aux, inputs, **compile_args)`` checks that every argument has a value
or an input shape (labels excepted: an argument named ``*_label`` feeds a loss layer, not
inference), infers the output shapes, and attaches the manifest (compiled batch, inputs,
outputs, ``--neuroncore-pipeline-cores``, a sha256 of the parameters) to the symbol's
``__ncrt_manifest__`` attribute, which ``save_checkpoint``/``load_checkpoint`` and Gluon's
``export``/``SymbolBlock.imports`` keep. A Gluon block is compiled by
:func:`~ncrt.plugins.mxnet.gluon.compile_block`.

Compiler options, in every documented spelling (API page, tutorials): neuron-cc flags as
keyword arguments (``**{'--neuroncore-pipeline-cores': 2}``), ``flags=[...]`` (items may
hold spaces: ``'--fp32-cast matmult'``) and ncrt's ``compiler_args=[...]``. Partitioning
options (``excl_node_names``, ``force_incl_node_names``) and ``work_dir`` are recorded and
have no effect (every operator runs on the core); anything else is recorded and warned
about (:class:`~ncrt.neuron_cc.CompilerOptionWarning`).
"""

from __future__ import annotations

import hashlib
import json
import warnings
from typing import Any, Mapping

from ncrt.adapters.mxnet import params_digest
from ncrt.errors import BadInputError
from ncrt.manifest import Manifest
from ncrt.neuron_cc import CompilerFlags, CompilerOptionWarning, flag_list, read_flags, warn_unknown

from .execute import FRAMEWORK, is_label
from .pipeline import cut_into_stages

__all__ = [
    "MANIFEST_ATTR",
    "compile",
    "compile_symbol",
    "compiled_manifest",
    "compiler_options",
    "is_label",
    "manifest_of",
    "weights_of",
]

MANIFEST_ATTR = "__ncrt_manifest__"

PARTITION_OPTIONS = {
    "excl_node_names": "no graph partitioning: every operator runs on the core",
    "force_incl_node_names": "no graph partitioning: every operator runs on the core",
    "work_dir": "ncrt runs no compiler, so it writes no compiler artifacts (SUBGRAPH_INFO)",
}
"""mx-neuron's own compile options: accepted and recorded, without effect here."""


def _as_shapes(inputs: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    if not isinstance(inputs, Mapping) or not inputs:
        raise BadInputError(
            f"compile inputs must name the symbol's inputs, got {type(inputs).__name__}; "
            "accepted: a dict like {'data': mx.nd.ones((1, 3, 224, 224))} (arrays or shapes)"
        )
    return {name: tuple(int(d) for d in getattr(value, "shape", value)) for name, value in inputs.items()}


def _check_arguments(sym: Any, args: Mapping[str, Any], aux: Mapping[str, Any], shapes: Mapping[str, Any]) -> None:
    missing = [n for n in sym.list_arguments() if n not in args and n not in shapes and not is_label(n)]
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
    if arg_shapes is None:
        raise BadInputError(f"cannot infer the shapes of the graph from inputs {dict(shapes)}; give every input")
    for name, shape in zip(sym.list_arguments(), arg_shapes):
        if name in args and not is_label(name) and tuple(args[name].shape) != tuple(shape):
            raise BadInputError(
                f"parameter {name} has shape {tuple(args[name].shape)} but the graph needs {tuple(shape)} "
                f"for inputs {dict(shapes)}"
            )
    return [{"name": n, "shape": list(s)} for n, s in zip(sym.list_outputs(), out_shapes)]


def compiler_options(compile_args: Mapping[str, Any]) -> tuple[CompilerFlags, dict[str, Any]]:
    """Read ``**compile_args``: the neuron-cc flags in every spelling, and the other options recorded."""
    options = dict(compile_args)
    args = flag_list(options.pop("flags", None)) + flag_list(options.pop("compiler_args", None))
    args = flag_list({k: v for k, v in options.items() if str(k).startswith("-")}) + args
    others = {key: value for key, value in options.items() if not str(key).startswith("-")}
    flags = read_flags(args)
    warn_unknown(flags, "mx_neuron.compile")
    unknown = sorted(key for key in others if key not in PARTITION_OPTIONS)
    if unknown:
        warnings.warn(
            f"mx_neuron.compile: option(s) {', '.join(unknown)} are not mx-neuron compile options; recorded, "
            f"without effect (accepted: neuron-cc flags, flags=[...], {', '.join(sorted(PARTITION_OPTIONS))})",
            CompilerOptionWarning, stacklevel=3,
        )
    record = {key: repr(value) for key, value in others.items()}
    record["ignored_options"] = {key: PARTITION_OPTIONS[key] for key in others if key in PARTITION_OPTIONS}
    return flags, record


def compile(obj: Any, args: Mapping[str, Any] | None = None, aux: Mapping[str, Any] | None = None,
            inputs: Mapping[str, Any] | None = None, **compile_args: Any) -> Any:
    """``mx_neuron.compile``: ``(sym, args, aux)`` for a symbol, the compiled block for a Gluon block.

    ``inputs`` maps input names to example arrays (or shapes). See the module docstring
    for the compiler options.
    """
    if _is_block(obj):
        from .gluon import compile_block

        return compile_block(obj, inputs, **compile_args)
    if args is None or inputs is None:
        raise BadInputError(
            "compile(sym, args, aux, inputs) of a symbol needs its args and inputs; accepted: "
            "compile(sym, args, aux, {'data': array}) or compile(gluon_block, inputs={'data': array})"
        )
    return compile_symbol(obj, args, aux or {}, inputs, **compile_args)


def _is_block(obj: Any) -> bool:
    return hasattr(obj, "collect_params") and hasattr(obj, "hybridize")


def compile_symbol(sym: Any, args: Mapping[str, Any], aux: Mapping[str, Any], inputs: Mapping[str, Any],
                   **compile_args: Any) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """Record what the symbol needs; return ``(compiled sym, args, aux)``."""
    shapes = _as_shapes(inputs)
    _check_arguments(sym, args, aux, shapes)
    manifest = _build_manifest(sym, args, aux, inputs, shapes, compile_args)
    cut_into_stages(sym, args, aux, inputs, shapes, manifest, _symbol_name(sym, [n for n in args if n not in shapes]))
    return _with_manifest(sym, manifest), dict(args), dict(aux)


def _build_manifest(sym: Any, args: Mapping[str, Any], aux: Mapping[str, Any], inputs: Mapping[str, Any],
                    shapes: Mapping[str, tuple[int, ...]], compile_args: Mapping[str, Any]) -> Manifest:
    flags, record = compiler_options(compile_args)
    first = next(iter(shapes.values()))
    params = weights_of(args, shapes)
    return Manifest(
        framework=FRAMEWORK, batch_size=first[0] if first else None,
        inputs=[{"name": n, "shape": list(s), "dtype": _dtype_name(inputs[n])} for n, s in shapes.items()],
        outputs=_infer_outputs(sym, args, shapes), pipeline_cores=flags.pipeline_cores,
        compiler_args=flags.args, sha256=hashlib.sha256(params_digest(params, aux)).hexdigest(),
        extra={"compile_args": record, **flags.record()},
    )


def weights_of(args: Mapping[str, Any], inputs: Any) -> dict[str, Any]:
    """The parameters among ``args``: not an input, not a label (what the manifest's sha256 covers)."""
    return {name: value for name, value in args.items() if name not in inputs and not is_label(name)}


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


def compiled_manifest(sym: Any, source: str | None = None) -> Manifest | None:
    """The manifest ``compile`` attached to ``sym``; None for a symbol ncrt did not compile.

    ``source`` (the symbol file) names it in errors."""
    for attrs in sym.attr_dict().values():
        if MANIFEST_ATTR in attrs:
            return Manifest.from_json(attrs[MANIFEST_ATTR],
                                      source=source or f"the {MANIFEST_ATTR} attribute of the symbol")
    return None


def manifest_of(sym: Any, source: str | None = None) -> Manifest:
    """The manifest ``compile`` attached to ``sym``, or a 1-core manifest for a plain symbol."""
    return compiled_manifest(sym, source) or Manifest(framework=FRAMEWORK)
