"""What a traced graph contains: ``torch.neuron.analyze_model``, ``get_supported_operations``.

torch-neuron's partitioner decided, operator by operator, what ran on Neuron and what on
the CPU. ncrt's emulated NeuronCore runs a whole TorchScript graph, so every operator of
the traced graph is supported; :func:`analyze_model` reports honestly what that graph
contains (each operator kind and its count) in the shape of ``tfn.analyze_model``'s
result. :func:`graph_nodes` gives the nodes a ``subgraph_builder_function`` is evaluated
on: ``node.name`` is the tuple of module class names the operator sits in (the API page's
``'ExampleConvolutionLayer' in node.name``), ``node.kind`` its operator name. Importing
this module does not import torch.
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from dataclasses import dataclass
from typing import Any, Iterator

from .execute import import_torch

__all__ = ["GraphNode", "analyze_model", "analyze_nodes", "get_supported_operations", "graph_nodes", "is_available"]

_OLD_SCOPE = re.compile(r"^(\w+)\[(\w+)\]$")  # torch < 1.x scopes: ClassName[attribute]


@dataclass(frozen=True)
class GraphNode:
    """One operator of a traced graph, as a ``subgraph_builder_function`` sees it."""

    name: tuple[str, ...]
    kind: str
    node: Any = None

    def __str__(self) -> str:
        return f"{self.kind} in {'/'.join(self.name)}"


def _class_name(module: Any) -> str:
    return getattr(module, "original_name", None) or type(module).__name__


def _module_classes(root: Any) -> dict[str, str]:
    """Attribute path -> class name of every submodule of ``root`` ("" is the root)."""
    named = getattr(root, "named_modules", None)
    if named is None:
        return {"": _class_name(root)}
    return {path: _class_name(module) for path, module in named()}


def _scope_classes(scope: str, classes: dict[str, str]) -> tuple[str, ...]:
    names = [classes.get("", "model")]
    for part in filter(None, scope.split("/")):
        old = _OLD_SCOPE.match(part)
        if old:
            names.append(old.group(1))
            continue
        path = part[len("__module."):] if part.startswith("__module.") else part
        names.append(classes.get(path, path.rsplit(".", 1)[-1]))
    if len(names) > 1 and names[1] == names[0] and not scope.startswith("__module."):
        names.pop(0)  # old-style scopes start with the root class itself
    return tuple(names)


def _nodes(block: Any) -> Iterator[Any]:
    for node in block.nodes():
        yield node
        for inner in node.blocks():
            yield from _nodes(inner)


def graph_nodes(script_module: Any, root: Any = None) -> list[GraphNode]:
    """The operators of ``script_module``'s graph, submodules inlined (``prim::`` bookkeeping left out).

    ``root`` is the module that was traced (for class names); default: the script module.
    """
    graph = getattr(script_module, "inlined_graph", None) or script_module.graph
    classes = _module_classes(script_module if root is None else root)
    return [GraphNode(_scope_classes(node.scopeName(), classes), node.kind(), node)
            for node in _nodes(graph) if not node.kind().startswith("prim::")]


def analyze_nodes(nodes: list[GraphNode], supported: Any = None) -> dict[str, Any]:
    """The statistics of ``nodes``: ``tfn.analyze_model``'s keys, every operator supported
    unless ``supported(node)`` says otherwise."""
    counts = Counter(node.kind for node in nodes)
    accepted = [node for node in nodes if supported is None or supported(node)]
    accepted_kinds = {node.kind for node in accepted}
    total = len(nodes)
    return {
        "percent_supported": 100.0 * len(accepted) / total if total else 100.0,
        "supported_count": len(accepted),
        "total_count": total,
        "supported_operators": accepted_kinds,
        "unsupported_operators": sorted(set(counts) - accepted_kinds),
        "operators": sorted(counts),
        "operator_count": dict(sorted(counts.items())),
    }


def _print_analysis(result: dict[str, Any], out: Any) -> None:
    width = max((len(kind) for kind in result["operators"]), default=8)
    print(f"{'operator':<{width}}  {'count':>5}  runs on", file=out)
    for kind, count in result["operator_count"].items():
        where = "NeuronCore (emulated)" if kind in result["supported_operators"] else "CPU"
        print(f"{kind:<{width}}  {count:>5}  {where}", file=out)
    print(f"{result['percent_supported']:.2f}% of all operations ({result['supported_count']} of "
          f"{result['total_count']}) are supported: ncrt runs the whole traced graph on its emulated "
          "NeuronCores", file=out)


def analyze_model(model: Any, example_inputs: Any, **trace_kwargs: Any) -> dict[str, Any]:
    """Trace ``model`` and print which operators would run on Neuron (``torch.neuron.analyze_model``).

    ``example_inputs`` as for ``trace``; other keyword arguments go to ``torch.jit.trace``.
    Prints one line per operator kind, then the share supported, and returns the
    statistics (``percent_supported``, ``supported_count``, ``total_count``,
    ``supported_operators``, ``unsupported_operators``, ``operators``, ``operator_count``).
    Nothing is placed on a core.
    """
    from .compile import jit_trace, traceable

    torch = import_torch()
    args = example_args(example_inputs)
    module, root = traceable(model)
    with torch.no_grad():
        traced = jit_trace(module, args, trace_kwargs)
    result = analyze_nodes(graph_nodes(traced, root))
    _print_analysis(result, sys.stdout)
    return result


def example_args(example_inputs: Any) -> tuple:
    """The positional arguments of a trace: a tuple as is, a list as its items, anything else alone."""
    if isinstance(example_inputs, tuple):
        return example_inputs
    if isinstance(example_inputs, list):
        return tuple(example_inputs)
    return (example_inputs,)


def get_supported_operations() -> list[str]:
    """Every ``aten::`` operator name TorchScript knows: the emulated core runs them all."""
    torch = import_torch()
    return sorted({schema.name for schema in torch._C._jit_get_all_schemas() if schema.name.startswith("aten::")})


def is_available() -> bool:
    """Whether NeuronCores are there to run on: ncrt's emulated cores always are."""
    return True
