"""``trace``: a torch model to TorchScript with an ncrt manifest (``torch.neuron.trace``).

The manifest records the compiled batch size (the example's first dimension), the input
and output signature, ``--neuroncore-pipeline-cores`` from ``compiler_args``, whether the
model can be batched dynamically, and the torch-neuron options the call gave
(:mod:`~ncrt.plugins.torch.options` says what each does here). ``model`` may be a module,
a ScriptModule, a module's bound ``forward`` or any function of tensors. Importing this
module does not import torch.
"""

from __future__ import annotations

import functools
from typing import Any

from ncrt.adapters.torch import ADAPTER
from ncrt.batching import tensors_in
from ncrt.errors import BadInputError
from ncrt.manifest import Manifest
from ncrt.neuron_cc import flag_list, read_flags

from .analyze import analyze_nodes, example_args, graph_nodes
from .execute import FRAMEWORK, import_torch, remember_caller_threads
from .model import NeuronModule, attach_manifest
from .options import TraceOptions
from .pipeline import cut_into_stages

__all__ = ["jit_trace", "trace", "traceable"]


def _signature(structure: Any) -> list[dict[str, Any]]:
    return [{"shape": list(t.shape), "dtype": str(t.dtype).replace("torch.", "")}
            for t in tensors_in(structure, ADAPTER)]


def _batch_eligible(inputs: list[dict[str, Any]], outputs: list[dict[str, Any]], batch: int) -> bool:
    """Dynamic batching needs every input and output to carry the batch on dim 0."""
    return bool(outputs) and all(spec["shape"][:1] == [batch] for spec in inputs + outputs)


def _build_manifest(args: tuple, outputs: Any, compiler_args: Any, options: TraceOptions,
                    operators: dict[str, Any]) -> Manifest:
    flags = read_flags(flag_list(compiler_args))  # every spelling, read by the one reader of neuron-cc flags
    inputs = _signature(args)
    if not inputs or not inputs[0]["shape"]:
        raise BadInputError(
            "trace needs example inputs holding at least one tensor with a batch dimension; "
            f"got {type(args[0]).__name__ if args else 'nothing'}"
        )
    batch = inputs[0]["shape"][0]
    output_signature = _signature(outputs)
    return Manifest(
        framework=FRAMEWORK, batch_size=batch, batch_dim=0, inputs=inputs, outputs=output_signature,
        pipeline_cores=flags.pipeline_cores,
        dynamic_batching=_batch_eligible(inputs, output_signature, batch),
        compiler_args=flags.args,
        extra={"dynamic_batch_size": bool(options.dynamic_batch_size), "torch_version": import_torch().__version__,
               "trace_options": options.recorded(), "optimizations": options.optimization_names,
               "operators": operators},
    )


@functools.lru_cache(maxsize=None)
def _function_module_class() -> type:
    torch = import_torch()

    class TracedFunction(torch.nn.Module):
        """A plain function of tensors as a module, so its trace is a ScriptModule that can hold a manifest."""

        def __init__(self, function: Any) -> None:
            super().__init__()
            self.function = function

        def forward(self, *args: Any) -> Any:
            return self.function(*args)

    return TracedFunction


def traceable(model: Any) -> tuple[Any, Any]:
    """``(what to trace, the module whose class names name the graph's scopes)``.

    A module (in eval mode) and a ScriptModule are themselves; a module's bound
    ``forward`` is its module; any other callable is wrapped in a one-method module.
    """
    torch = import_torch()
    if isinstance(model, torch.nn.Module):
        return model.eval(), model
    owner = getattr(model, "__self__", None)
    if isinstance(owner, torch.nn.Module) and getattr(model, "__name__", "") == "forward":
        return owner.eval(), owner
    if callable(model):
        wrapped = _function_module_class()(model)
        return wrapped, wrapped
    raise BadInputError(
        f"trace accepts a torch.nn.Module, a ScriptModule or a function of tensors; got {type(model).__name__}"
    )


def jit_trace(module: Any, args: tuple, trace_kwargs: dict[str, Any]) -> Any:
    """``torch.jit.trace`` (strict=False and check_trace=False unless given); a ScriptModule as is."""
    torch = import_torch()
    if isinstance(module, torch.jit.ScriptModule):
        return module
    kwargs = {"strict": False, "check_trace": False, **trace_kwargs}
    return torch.jit.trace(module, args, **kwargs)


def _name_of(model: Any, root: Any) -> str:
    """A function's own name, else the traced module's class name."""
    if not hasattr(model, "__self__") and callable(model) and hasattr(model, "__name__"):
        return model.__name__
    return getattr(root, "original_name", None) or type(root).__name__


def _summary(name: str, manifest: Manifest, operators: dict[str, Any]) -> list[str]:
    total, selected = operators["total_count"], operators["neuron_selected"]
    lines = [f"ncrt traced {name}: {total} operator(s) of {len(operators['operator_count'])} kind(s); all of "
             "them run on the emulated NeuronCore (ncrt does not partition the graph)"]
    if selected != total:
        lines.append(f"the partitioning options select {selected} of {total} operator(s) for Neuron; "
                     "the others would run on CPU under torch-neuron")
    lines.append(f"compiled batch size {manifest.batch_size}, --neuroncore-pipeline-cores {manifest.pipeline_cores}, "
                 f"dynamic batch size {'on' if manifest.extra['dynamic_batch_size'] else 'off'}")
    return lines


def _artifacts(traced: Any, manifest: Manifest, analysis: dict[str, Any], lines: list[str]) -> dict[str, str]:
    import json

    counts = {key: value for key, value in analysis.items() if key != "supported_operators"}
    return {"graph.txt": str(traced.inlined_graph), "code.py": traced.code, "manifest.json": manifest.to_json(),
            "operators.json": json.dumps(counts, indent=2) + "\n", "trace.log": "\n".join(lines) + "\n"}


def trace(model: Any, example_inputs: Any, compiler_args: Any = None, *, compiler_timeout: Any = None,
          compiler_workdir: Any = None, subgraph_builder_function: Any = None, minimum_segment_size: Any = None,
          single_fusion_ratio_threshold: Any = None, fallback: Any = None, dynamic_batch_size: bool = False,
          optimizations: Any = None, separate_weights: Any = None, verbose: Any = None, op_whitelist: Any = None,
          skip_compiler: Any = None, name: str | None = None, **trace_kwargs: Any) -> NeuronModule:
    """Compile ``model`` for ncrt NeuronCores, like ``torch.neuron.trace``.

    ``example_inputs``: a tensor, or a tuple (or list) of positional arguments (tensors,
    nests of tensors). ``compiler_args``: neuron-cc arguments; ``--neuroncore-pipeline-cores
    N`` sets the cores one copy needs. The other keywords are torch-neuron's (see
    :mod:`~ncrt.plugins.torch.options`); any further keyword goes to ``torch.jit.trace``.
    """
    options = TraceOptions(compiler_timeout, compiler_workdir, subgraph_builder_function, minimum_segment_size,
                           single_fusion_ratio_threshold, fallback, dynamic_batch_size, optimizations,
                           separate_weights, verbose, op_whitelist, skip_compiler)
    torch = import_torch()
    remember_caller_threads()
    args = example_args(example_inputs)
    module, root = traceable(model)
    with torch.no_grad():
        traced = jit_trace(module, args, trace_kwargs)
        outputs = traced(*args)
    nodes = graph_nodes(traced, root)
    analysis = analyze_nodes(nodes)
    selector = options.selector
    selected = analyze_nodes(nodes, selector)["supported_count"] if selector else None
    operators = {"total_count": analysis["total_count"], "operator_count": analysis["operator_count"],
                 "neuron_selected": analysis["total_count"] if selected is None else selected}
    manifest = _build_manifest(args, outputs, compiler_args, options, operators)
    traced = cut_into_stages(module, traced, args, manifest, name or _name_of(model, root), trace_kwargs)
    attach_manifest(traced, manifest)
    options.warn_ignored(selected, analysis["total_count"])
    options.warn_compiler_flags(manifest.compiler_args)
    label = name or _name_of(model, root)
    lines = _summary(label, manifest, operators)
    options.report(lines)
    options.write_workdir(_artifacts(traced, manifest, analysis, lines))
    return NeuronModule(traced, manifest, label)
