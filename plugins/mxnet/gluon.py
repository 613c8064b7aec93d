"""Gluon on NeuronCores: ``mx_neuron.compile(block, inputs=...)`` and compiled ``SymbolBlock`` calls.

mx-neuron 1.8 compiles a Gluon ``HybridBlock`` into a block whose compiled subgraph runs
on a NeuronCore whatever the context (the Gluon tutorial):

    block = mx.gluon.nn.SymbolBlock.imports('resnet-50-symbol.json', ['data', 'softmax_label'],
                                           'resnet-50-0000.params', ctx=mx.cpu())
    block.hybridize()
    block = neuron.compile(block, inputs={'data': img, 'softmax_label': label})
    block.export('resnet-50_compiled', 0, block)
    block = mx.gluon.nn.SymbolBlock.imports('resnet-50_compiled-symbol.json', ['data', 'softmax_label'],
                                           'resnet-50_compiled-0000.params', ctx=mx.cpu())
    out = block(img, label)                 # runs on NC0

:func:`compile_block` returns a new ``SymbolBlock`` of the compiled symbol (the manifest is
an attribute of its symbol, so ``export`` and ``SymbolBlock.imports`` keep it) over the
block's own parameters. Calling a ``SymbolBlock`` whose symbol carries a manifest places
it once, like ``bind`` to ``mx.cpu(i)`` (core ``i`` of the inputs' context), and runs it
there; other blocks are MXNet's, untouched. The placement is freed with the block.
"""

from __future__ import annotations

import functools
from typing import Any, Mapping

from ncrt.errors import BadInputError

from .compile import compile_symbol, compiled_manifest

__all__ = ["compile_block", "patch_symbol_block"]

_EXECUTOR = "_ncrt_executor"
_COMPILED = "_ncrt_compiled"


def _is_compiled(block: Any) -> bool:
    """Whether the block's symbol carries an ncrt manifest (looked up once per block)."""
    compiled = block.__dict__.get(_COMPILED)
    if compiled is None:
        compiled = block.__dict__[_COMPILED] = compiled_manifest(block._cached_graph[1]) is not None
    return compiled


def _arrays(mx: Any, inputs: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(inputs, Mapping) or not inputs:
        raise BadInputError(
            f"compile(block, inputs=...) needs the example inputs by name, got {type(inputs).__name__}; "
            "accepted: a dict like {'data': mx.nd.ones((1, 3, 224, 224))}"
        )
    return {name: value if isinstance(value, mx.nd.NDArray) else mx.nd.array(value) for name, value in inputs.items()}


def _graph_inputs(block: Any) -> list[str]:
    return [symbol.name for symbol in block._cached_graph[0]]


def _block_symbol(mx: Any, block: Any, examples: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """The block's symbol and the examples by its input names.

    A HybridBlock that is not a SymbolBlock is hybridized and run once on the examples (in
    the dict's order) to get its graph; Gluon names its inputs ``data`` or ``data0``,
    ``data1``, ... in call order, so examples under other names are matched by position.
    """
    if not isinstance(block, mx.gluon.SymbolBlock):
        if not isinstance(block, mx.gluon.HybridBlock):
            raise BadInputError(f"compile needs a Symbol or a gluon.HybridBlock; got {type(block).__name__}")
        block.hybridize()
        block(*examples.values())
    names = _graph_inputs(block)
    if set(names) == set(examples):
        return block._cached_graph[1], {name: examples[name] for name in names}
    if not isinstance(block, mx.gluon.SymbolBlock) and len(names) == len(examples):
        return block._cached_graph[1], dict(zip(names, examples.values()))
    raise BadInputError(f"compile inputs {list(examples)} do not match the block's inputs {names}")


def _parameters(block: Any, sym: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    arguments, auxiliary = set(sym.list_arguments()), set(sym.list_auxiliary_states())
    params = block.collect_params()
    args = {p.name: p.data() for p in params.values() if p.name in arguments}
    aux = {p.name: p.data() for p in params.values() if p.name in auxiliary}
    return args, aux


def compile_block(block: Any, inputs: Mapping[str, Any] | None, **compile_args: Any) -> Any:
    """``mx_neuron.compile(block, inputs=...)``: the compiled block (a SymbolBlock), ready to export."""
    from .compat import enable

    mx = enable()
    sym, ordered = _block_symbol(mx, block, _arrays(mx, inputs or {}))
    args, aux = _parameters(block, sym)
    compiled_sym, _, _ = compile_symbol(sym, args, aux, ordered, **compile_args)
    compiled = mx.gluon.SymbolBlock(compiled_sym, [mx.sym.var(name, dtype=value.dtype) for name, value in ordered.items()],
                                    params=block.collect_params())
    compiled.hybridize()
    compiled._build_cache(*ordered.values())  # what export reads; no forward is run
    return compiled


def _run_on_cores(block: Any, mx: Any, inputs: list[Any]) -> Any:
    from .model import bind

    executor = block.__dict__.get(_EXECUTOR)
    if executor is None:
        sym = block._cached_graph[1]
        args, aux = _parameters(block, sym)
        executor = bind(sym, inputs[0].context, args=args, aux_states=aux, grad_req="null")
        block.__dict__[_EXECUTOR] = executor
    outputs = executor.forward(**dict(zip(_graph_inputs(block), inputs)))
    return outputs[0] if len(outputs) == 1 else outputs


def patch_symbol_block(mx: Any) -> None:
    """Compiled ``SymbolBlock`` calls run on ncrt cores (idempotent; other blocks unchanged)."""
    symbol_block = mx.gluon.SymbolBlock
    original = symbol_block.forward
    if getattr(original, "_ncrt_neuron", False):
        return

    @functools.wraps(original)
    def forward(self: Any, x: Any, *args: Any) -> Any:
        if isinstance(x, mx.nd.NDArray) and _is_compiled(self):
            return _run_on_cores(self, mx, [x, *args])
        return original(self, x, *args)

    forward._ncrt_neuron = True  # type: ignore[attr-defined]
    symbol_block.forward = forward
