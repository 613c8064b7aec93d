"""NeuronCore Pipeline for MXNet: cut the compiled symbol into stages, and run them on their cores.

``mx.contrib.neuron.compile(sym, args, aux, inputs, flags=['--neuroncore-pipeline-cores', 'N'])``
cuts the symbol's graph: its operators (in the symbol JSON's topological order) are run
one by one on the example inputs, each bound on its own and timed (the fastest of five
forwards), and cut into ``N`` runs whose slowest one is as fast as possible
(:func:`ncrt.pipeline.balanced_stages`). The partition (first and last operator of each
stage) goes into the manifest, which the compiled symbol carries in its
``__ncrt_manifest__`` attribute, so ``save_checkpoint``/``load_checkpoint`` keep it.

When the model is bound to ``mx.neuron(i)`` (or loaded), each stage is rebuilt from the
symbol: the stage's operators, the parameters they read, and a variable for every value
that flows into the stage from an earlier one (``<node>__out<k>``). Stage ``k`` makes
its own CachedOp, with its own copy of only its parameters, on core ``k`` of the group
(:class:`~ncrt.plugins.mxnet.execute.CoreBinding`). A lone call on an idle pipeline may
run fused (:func:`run_fused`). A symbol with fewer operators than ``N`` gets fewer
stages and one :class:`~ncrt.pipeline.PipelineStagesWarning`.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from ncrt.manifest import Manifest
from ncrt.pipeline import StageSpec, balanced_stages, partition_record, warn_fewer_stages

from .execute import CoreBinding, PayloadPart, SharedBinding, SymbolPayload, as_ndarray, import_configured

if TYPE_CHECKING:
    from ncrt.model import Model
    from ncrt.runtime import LocalCore

__all__ = ["MXStagePayload", "SymbolGraph", "cut_into_stages", "run_fused", "run_stage", "stage_specs"]

PROFILE_RUNS = 5
COST_BASIS = "forward time per MXNet operator bound alone on the example input (fastest of 5 runs)"
MANIFEST_ATTR = "__ncrt_manifest__"


def _carried_name(nodes: list[dict[str, Any]], entry: tuple[int, int]) -> str:
    return f"{nodes[entry[0]]['name']}__out{entry[1]}"


class SymbolGraph:
    """A symbol's JSON graph: operators in order, which values are live where, stage symbols."""

    def __init__(self, sym: Any, data_names: list[str]) -> None:
        self.mx = import_configured()
        self.document = json.loads(sym.tojson())
        self.nodes: list[dict[str, Any]] = self.document["nodes"]
        self.units = [index for index, node in enumerate(self.nodes) if node["op"] != "null"]
        self.position = {node: place for place, node in enumerate(self.units)}
        self.data = {index for index, node in enumerate(self.nodes) if node["op"] == "null" and node["name"] in data_names}
        self.heads = [(head[0], head[1]) for head in self.document["heads"]]
        self.last_use = self._last_uses()

    def _last_uses(self) -> dict[tuple[int, int], int]:
        uses: dict[tuple[int, int], int] = {}
        for place, node in enumerate(self.units):
            for entry in self.nodes[node]["inputs"]:
                key = (entry[0], entry[1])
                uses[key] = max(uses.get(key, -1), place)
        for head in self.heads:
            uses[head] = len(self.units)
        return uses

    def _defined_at(self, entry: tuple[int, int]) -> int:
        return self.position.get(entry[0], -1)

    def live_across(self, cut: int) -> list[tuple[int, int]]:
        """Entries (data inputs or operator outputs) made before operator ``cut`` and read at or after it."""
        return [entry for entry, last in sorted(self.last_use.items())
                if (entry[0] in self.data or entry[0] in self.position) and self._defined_at(entry) < cut <= last]

    def input_name(self, entry: tuple[int, int]) -> str:
        """The variable a stage reads ``entry`` from: a data input's own name, else ``<node>__out<k>``."""
        return self.nodes[entry[0]]["name"] if entry[0] in self.data else _carried_name(self.nodes, entry)

    def wanted_after(self, end: int) -> list[tuple[int, int]]:
        """What must leave a stage ending before operator ``end``: the live values, or the heads."""
        return list(self.heads) if end == len(self.units) else self.live_across(end)

    def stage_symbol(self, start: int, end: int) -> tuple[Any, list[tuple[int, int]]]:
        """Operators ``start..end-1`` as a symbol, and the entries its outputs are.

        The outputs are the wanted entries (:meth:`wanted_after`) this stage makes; wanted
        entries made earlier pass through the stage by name, outside the symbol.
        """
        made = []
        for entry in self.wanted_after(end):
            if start <= self._defined_at(entry) < end and entry not in made:
                made.append(entry)
        builder = _StageBuilder(self, start)
        for node in self.units[start:end]:
            builder.add_operator(node)
        document = {"nodes": builder.nodes, "heads": [builder.entry([node, output, 0]) for node, output in made],
                    "arg_nodes": [i for i, n in enumerate(builder.nodes) if n["op"] == "null"],
                    "attrs": self.document.get("attrs", {})}
        return self.mx.sym.load_json(json.dumps(document)), made


class _StageBuilder:
    """The JSON nodes of one stage: copied operators, their parameters, variables for carried values."""

    def __init__(self, graph: SymbolGraph, start: int) -> None:
        self.graph = graph
        self.start = start
        self.nodes: list[dict[str, Any]] = []
        self.index: dict[int, int] = {}
        self.carried: dict[tuple[int, int], int] = {}

    def _variable(self, name: str, attrs: dict[str, Any] | None = None) -> int:
        self.nodes.append({"op": "null", "name": name, "inputs": [], **({"attrs": attrs} if attrs else {})})
        return len(self.nodes) - 1

    def entry(self, entry: list[int]) -> list[int]:
        node, output, version = entry
        source = self.graph.nodes[node]
        if source["op"] != "null" and node in self.index:
            return [self.index[node], output, version]
        if source["op"] != "null" or node in self.graph.data:  # made by an earlier stage, or a data input
            key = (node, output)
            if key not in self.carried:
                self.carried[key] = self._variable(self.graph.input_name(key))
            return [self.carried[key], 0, 0]
        if node not in self.index:  # a parameter or auxiliary state, read by this stage
            self.index[node] = self._variable(source["name"], source.get("attrs"))
        return [self.index[node], 0, version]

    def add_operator(self, node: int) -> None:
        copied = dict(self.graph.nodes[node])
        copied["inputs"] = [self.entry(list(e)) for e in copied["inputs"]]
        attrs = {k: v for k, v in copied.get("attrs", {}).items() if k != MANIFEST_ATTR}
        copied.pop("attrs", None)
        if attrs:
            copied["attrs"] = attrs
        self.index[node] = len(self.nodes)
        self.nodes.append(copied)


# --------------------------------------------------------------------------- profiling and cutting


def _example_arrays(mx: Any, inputs: Mapping[str, Any], shapes: Mapping[str, tuple[int, ...]]) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    arrays = {}
    for name, shape in shapes.items():
        value = inputs[name]
        arrays[name] = value if hasattr(value, "asnumpy") else mx.nd.array(rng.standard_normal(shape), dtype="float32")
    return arrays


def _profile(graph: SymbolGraph, args: Mapping[str, Any], aux: Mapping[str, Any],
             examples: Mapping[str, Any]) -> tuple[list[float], dict[str, Any]]:
    """Each operator bound alone and timed on the values that reach it; every value by input name."""
    mx = graph.mx
    values: dict[str, Any] = dict(examples)
    costs = []
    for place in range(len(graph.units)):
        symbol, made = graph.stage_symbol(place, place + 1)
        if not made:  # nothing it makes is read later (an unused extra output): nothing to time
            costs.append(0.0)
            continue
        feed = _feed(symbol, args, values)
        executor = symbol.bind(mx.cpu(), args={**{n: args[n] for n in symbol.list_arguments() if n in args}, **feed},
                               aux_states={n: aux[n] for n in symbol.list_auxiliary_states()}, grad_req="null")
        times = []
        for _ in range(PROFILE_RUNS + 1):
            start = time.perf_counter()
            results = executor.forward(is_train=False)
            for result in results:
                result.wait_to_read()
            times.append(time.perf_counter() - start)
        costs.append(min(times[1:]))
        for entry, result in zip(made, results):
            values[graph.input_name(entry)] = result.copy()
    return costs, values


def _feed(symbol: Any, args: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """What a stage symbol reads besides parameters: values made before it, and zeros for
    labels (``softmax_label``: an argument nothing gives, which inference does not read)."""
    mx = import_configured()
    names = [name for name in symbol.list_arguments() if name not in args]
    feed = {name: values[name] for name in names if name in values}
    missing = [name for name in names if name not in feed]
    if missing:
        shapes, _, _ = symbol.infer_shape(**{name: value.shape for name, value in feed.items()})
        by_name = dict(zip(symbol.list_arguments(), shapes or []))
        feed.update({name: mx.nd.zeros(by_name[name]) for name in missing if by_name.get(name)})
    return feed


def _param_bytes(symbol: Any, args: Mapping[str, Any], aux: Mapping[str, Any]) -> int:
    names = [n for n in symbol.list_arguments() if n in args] + list(symbol.list_auxiliary_states())
    return sum(int(np.prod((args.get(n) if n in args else aux[n]).shape)) * 4 for n in names)


def cut_into_stages(sym: Any, args: Mapping[str, Any], aux: Mapping[str, Any], inputs: Mapping[str, Any],
                    shapes: Mapping[str, tuple[int, ...]], manifest: Manifest, name: str) -> None:
    """Record in ``manifest.partition`` how ``sym`` is cut into ``manifest.pipeline_cores`` stages."""
    requested = manifest.pipeline_cores
    if requested < 2:
        return
    graph = SymbolGraph(sym, list(shapes))
    costs, values = _profile(graph, args, aux, _example_arrays(graph.mx, inputs, shapes))
    bounds = balanced_stages(costs, requested)
    entries = []
    if len(bounds) > 1:
        for index, (start, end) in enumerate(bounds):
            symbol, _ = graph.stage_symbol(start, end)
            entries.append({
                "index": index, "first": graph.nodes[graph.units[start]]["name"],
                "last": graph.nodes[graph.units[end - 1]]["name"], "units": end - start,
                "cost": round(sum(costs[start:end]), 9), "param_bytes": _param_bytes(symbol, args, aux),
                "inputs": [list(values[n].shape) for n in symbol.list_arguments() if n not in args and n in values],
            })
    note = "" if len(bounds) >= requested else warn_fewer_stages(
        name, requested, max(1, len(entries)), f"its symbol has only {len(graph.units)} operator(s)")
    manifest.partition = partition_record(requested, entries, COST_BASIS, note)


# --------------------------------------------------------------------------- running stages


@dataclass
class MXStagePayload:
    """One stage: its symbol payload, the names of what it makes and of what leaves it, first/last."""

    symbol: PayloadPart
    made_names: list[str]
    wanted_names: list[str]
    first: bool
    last: bool


def stage_specs(sym: Any, payload: SymbolPayload) -> list[StageSpec] | None:
    """The stages of a compiled symbol, rebuilt from its partition (None: it runs whole).

    Each stage's payload is a part of ``payload`` (:meth:`SymbolPayload.part`): new
    parameter values given to the model reach its stages.
    """
    manifest = payload.manifest
    stages = manifest.partition.get("stages", [])
    if len(stages) < 2:
        return None
    graph = SymbolGraph(sym, [spec["name"] for spec in manifest.inputs])
    names = [graph.nodes[node]["name"] for node in graph.units]
    specs = []
    for index, entry in enumerate(stages):
        start = names.index(entry["first"])
        end = start + entry["units"]
        symbol, made = graph.stage_symbol(start, end)
        stage = MXStagePayload(payload.part(symbol), [graph.input_name(e) for e in made],
                               [graph.input_name(e) for e in graph.wanted_after(end)], index == 0,
                               index == len(stages) - 1)
        specs.append(StageSpec(stage, run_stage, f"{entry['first']}..{entry['last']}"))
    return specs


def _stage_binding(model: Model, core: LocalCore) -> CoreBinding:
    """Stage ``model``'s binding on ``core``: its CachedOp and its parameters there."""
    return model.replica_for(core.index, lambda: CoreBinding(model.payload.symbol))


def run_stage(model: Model, inputs: Any, core: LocalCore) -> Any:
    """Run one stage with the core's own CachedOp; hand the live values on by name (a list from the last)."""
    payload: MXStagePayload = model.payload
    binding = _stage_binding(model, core)
    if not isinstance(inputs, Mapping):
        inputs = dict(zip([spec["name"] for spec in model.manifest.inputs], inputs))
    if payload.first:
        inputs = {name: as_ndarray(name, value, model.manifest) for name, value in inputs.items()}
    outputs = binding.run({name: inputs[name] for name in payload.symbol.input_names})
    values = {**inputs, **dict(zip(payload.made_names, outputs))}
    if payload.last:
        return [values[name] for name in payload.wanted_names]
    return {name: values[name] for name in payload.wanted_names}


def run_fused(model: Model, stages: Sequence[Model], inputs: Any, cores: Sequence[LocalCore]) -> Any:
    """Every stage at once: the whole symbol as one CachedOp over the stages' own parameters
    (:class:`~ncrt.plugins.mxnet.execute.SharedBinding`; see :data:`ncrt.pipeline.FusedRunner`)."""
    payload: SymbolPayload = model.payload
    binding = model.replica_for(cores[0].index, lambda: SharedBinding(
        payload, [_stage_binding(stage, core) for stage, core in zip(stages, cores)]))
    if not isinstance(inputs, Mapping):
        inputs = dict(zip(payload.input_names, inputs))
    return binding.run({name: as_ndarray(name, value, payload.manifest) for name, value in inputs.items()})
