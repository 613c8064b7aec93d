"""Which operators of a traced graph run on the NeuronCore: ``on_neuron_ratio`` and ``analyze_model``.

tensorflow-neuron reports the fraction of a model's graph operators placed on Neuron,
ignoring ``Placeholder``, ``Identity``, ``ReadVariableOp`` and ``NoOp`` (tracing API page).
ncrt runs the whole traced graph inside the core's executor, so every counted operator
runs on the (emulated) NeuronCore: ``on_neuron_ratio`` is 1.0 for any graph with a counted
operator and 0.0 for one without (nothing to run there). The operator counts themselves
are the real ones of the traced graph, functions it calls included.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Iterable

__all__ = ["IGNORED_OPS", "OperatorReport", "analyze_model", "operator_report"]

IGNORED_OPS = frozenset({"Placeholder", "Identity", "ReadVariableOp", "NoOp"})
"""Not counted (tracing API page); nor are the structural ops below."""

_STRUCTURAL_OPS = frozenset({"PartitionedCall", "StatefulPartitionedCall", "_Arg", "_Retval", "Const",
                             "VarHandleOp"})


class OperatorReport:
    """The counted operators of a graph, all of which ncrt runs on the core."""

    def __init__(self, counts: Counter[str]) -> None:
        self.counts = counts

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def on_neuron_ratio(self) -> float:
        return 1.0 if self.total else 0.0

    def as_dict(self) -> dict[str, Any]:
        """``analyze_model``'s result keys, as tensorflow-neuron documents them."""
        operators = sorted(self.counts)
        return {
            "percent_supported": 100.0 * self.on_neuron_ratio, "supported_count": self.total,
            "total_count": self.total, "supported_operators": set(operators), "unsupported_operators": [],
            "operators": operators, "operator_count": dict(self.counts),
        }


def _called_functions(node: Any, library: dict[str, Any]) -> Iterable[str]:
    if node.op in library:
        yield node.op
    for value in node.attr.values():
        if value.HasField("func") and value.func.name in library:
            yield value.func.name
        for item in value.list.func:
            if item.name in library:
                yield item.name


def _count(nodes: Iterable[Any], library: dict[str, Any], seen: set[str], counts: Counter[str]) -> None:
    for node in nodes:
        called = list(_called_functions(node, library))
        for name in called:
            if name not in seen:
                seen.add(name)
                _count(library[name].node_def, library, seen, counts)
        if not called and node.op not in IGNORED_OPS and node.op not in _STRUCTURAL_OPS:
            counts[node.op] += 1


def operator_report(concrete_function: Any) -> OperatorReport:
    """Count the operators of a ConcreteFunction's graph and the functions it calls."""
    graph_def = concrete_function.graph.as_graph_def()
    library = {function.signature.name: function for function in graph_def.library.function}
    counts: Counter[str] = Counter()
    _count(graph_def.node, library, set(), counts)
    return OperatorReport(counts)


def analyze_model(func: Any, example_inputs: Any) -> dict[str, Any]:
    """``tfn.analyze_model``: print the operators of ``func`` and how many run on the core.

    Every operator of the traced graph runs on the ncrt core, so all are "supported".
    """
    from .compile import trace_function

    report = operator_report(trace_function(func, example_inputs))
    result = report.as_dict()
    for name in result["operators"]:
        print(name)
    print(f"{result['percent_supported']:.2f}% of all operations ({report.total} of {report.total}) are supported")
    print(result)
    return result
