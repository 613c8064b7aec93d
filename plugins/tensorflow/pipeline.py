"""NeuronCore Pipeline for TensorFlow: cut a Keras layer graph into stages, and run them on their cores.

``tfn.trace(keras_model, example, compiler_args=['--neuroncore-pipeline-cores', 'N'])`` of a
functional or sequential Keras model cuts its layer graph: the layer calls (graph nodes)
in topological order are timed one by one on the example input (eager, the fastest of
five runs) and cut into ``N`` runs whose slowest one is as fast as possible
(:func:`ncrt.pipeline.balanced_stages`). Stage ``k`` is a ``tf.function``
(``ncrt_stage_k`` on the traced module, saved in the SavedModel beside ``ncrt_infer``)
that takes the tensors live into it and returns those live out of it; the last one
returns the model's named outputs, like ``ncrt_infer``. The manifest records the
partition.

A model without a Keras layer graph (a subclassed model, a plain ``tf.function``, a
SavedModel compiled with ``saved_model.compile``), or with fewer layers than ``N``, gets
fewer stages and one :class:`~ncrt.pipeline.PipelineStagesWarning` naming why.

At run time every stage runs its function from its own core's executor thread; the
weights are TensorFlow's one loaded copy (each stage touches only its own layers).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from ncrt.manifest import Manifest
from ncrt.pipeline import StageSpec, balanced_stages, partition_record, warn_fewer_stages

from .calling import InputStructure
from .execute import import_tf, to_tensor

if TYPE_CHECKING:
    from ncrt.model import Model
    from ncrt.runtime import LocalCore

__all__ = ["STAGE_ENTRY", "TFStagePayload", "check_pipeline_replicas", "cut_into_stages", "no_layer_graph",
           "record_uncut", "run_stage", "stage_specs"]

STAGE_ENTRY = "ncrt_stage_"
PROFILE_RUNS = 5
COST_BASIS = "eager time per Keras layer call on the example input (fastest of 5 runs)"


def _flatten(structure: Any) -> list[Any]:
    import keras

    return list(keras.tree.flatten(structure))


class _LayerGraph:
    """The layer calls of a functional (or built sequential) Keras model, in topological order."""

    def __init__(self, model: Any) -> None:
        self.inputs = list(model.inputs)
        self.output_structure = getattr(model, "output", None)
        if self.output_structure is None:
            self.output_structure = list(model.outputs)
        self.outputs = _flatten(self.output_structure)
        self.nodes = self._topological_nodes()
        self.position = {id(node): index for index, node in enumerate(self.nodes)}
        self.produced_by = {id(t): self.position[id(node)] for node in self.nodes for t in _flatten(node.outputs)}
        self.tensors = {id(t): t for t in self.inputs}
        self.tensors.update({id(t): t for node in self.nodes for t in _flatten(node.outputs)})
        self.last_use = self._last_uses()

    @staticmethod
    def _node_of(tensor: Any) -> Any:
        operation, node_index, _ = tensor._keras_history
        return operation._inbound_nodes[node_index]

    def _topological_nodes(self) -> list[Any]:
        """Every non-input node the outputs depend on, each after the nodes it reads (iterative DFS)."""
        order, done, stack = [], set(), [(self._node_of(t), False) for t in reversed(self.outputs)]
        while stack:
            node, expanded = stack.pop()
            if id(node) in done or node.is_input:
                continue
            if expanded:
                done.add(id(node))
                order.append(node)
                continue
            stack.append((node, True))
            stack.extend((self._node_of(t), False) for t in reversed(_flatten(node.input_tensors)))
        return order

    def _last_uses(self) -> dict[int, int]:
        uses: dict[int, int] = {}
        for index, node in enumerate(self.nodes):
            for tensor in _flatten(node.input_tensors):
                uses[id(tensor)] = max(uses.get(id(tensor), -1), index)
        for tensor in self.outputs:
            uses[id(tensor)] = len(self.nodes)
        return uses

    def live_across(self, cut: int) -> list[Any]:
        """Tensors made before node ``cut`` (or model inputs) and read at or after it, in a fixed order."""
        return [tensor for key, tensor in self.tensors.items()
                if self.produced_by.get(key, -1) < cut <= self.last_use.get(key, -1)]

    def run(self, start: int, end: int, values: dict[int, Any]) -> dict[int, Any]:
        """Run nodes ``start..end-1`` on ``values`` (tensors by KerasTensor id); return them updated."""
        for node in self.nodes[start:end]:
            self._run_node(node, values)
        return values

    def _run_node(self, node: Any, values: dict[int, Any]) -> None:
        args, kwargs = node.arguments.fill_in(values)
        outputs = node.operation(*args, **kwargs)
        for tensor, value in zip(_flatten(node.outputs), _flatten(outputs)):
            values[id(tensor)] = value

    def profile(self, examples: Sequence[Any]) -> tuple[list[float], dict[int, Any]]:
        """Seconds per node (its fastest of a few eager runs), and every tensor's example value."""
        timings: list[list[float]] = [[] for _ in self.nodes]
        values: dict[int, Any] = {}
        for _ in range(PROFILE_RUNS + 1):
            values = {id(t): x for t, x in zip(self.inputs, examples)}
            for index, node in enumerate(self.nodes):
                start = time.perf_counter()
                self._run_node(node, values)
                timings[index].append(time.perf_counter() - start)
        return [min(times[1:]) for times in timings], values


def no_layer_graph(source: Any) -> str:
    """Why ``source`` has no Keras layer graph to cut ("" when it has one)."""
    if not hasattr(source, "layers"):
        return f"it is a {type(source).__name__}, not a functional or sequential Keras model (no layer graph to cut)"
    try:
        if not list(source.inputs) or not list(source.outputs):
            raise AttributeError("no inputs or outputs")
    except (AttributeError, ValueError):
        return f"it is a subclassed Keras model ({type(source).__name__}): it has no layer graph to cut"
    return ""


def _param_bytes(nodes: Sequence[Any]) -> int:
    seen: dict[int, int] = {}
    for node in nodes:
        for variable in getattr(node.operation, "weights", []):
            seen[id(variable)] = int(np.prod(variable.shape)) * np.dtype(variable.dtype).itemsize
    return sum(seen.values())


def _spec(tf: Any, value: Any, dynamic: bool) -> Any:
    shape = list(value.shape)
    return tf.TensorSpec([None if dynamic else shape[0], *shape[1:]], value.dtype)


def _stage_function(tf: Any, graph: _LayerGraph, start: int, end: int, live_in: list[Any],
                    live_out: list[Any] | None, name_outputs: Callable[[Any], dict[str, Any]],
                    specs: list[Any]) -> Any:
    """``ncrt_stage_k``: the live-in tensors in, the live-out ones out (the named outputs for the last)."""
    import keras

    def stage(*tensors: Any) -> Any:
        values = graph.run(start, end, {id(t): x for t, x in zip(live_in, tensors)})
        if live_out is None:
            return name_outputs(keras.tree.map_structure(lambda t: values[id(t)], graph.output_structure))
        return [values[id(t)] for t in live_out]

    return tf.function(stage, input_signature=specs)


@dataclass
class _Plan:
    graph: _LayerGraph | None
    bounds: list[tuple[int, int]]
    reason: str
    costs: list[float]
    values: dict[int, Any]


def _inputs_in_call_order(graph: _LayerGraph, structure: InputStructure) -> list[Any] | None:
    """The graph's input tensors in the order the traced model takes its inputs (None: no match).

    A tensor, list or tuple of examples reaches a Keras model's inputs in order; a dict
    reaches them by name (the Keras input's name, or its ``Input`` layer's).
    """
    if structure.kind != "dict":
        return graph.inputs if len(graph.inputs) == len(structure.input_names()) else None
    by_name: dict[str, Any] = {}
    for tensor in graph.inputs:
        for name in (getattr(tensor, "name", None), tensor._keras_history[0].name):
            if name:
                by_name.setdefault(str(name).split(":", 1)[0], tensor)
    ordered = [by_name.get(name) for name in structure.names]
    return ordered if None not in ordered and len(set(map(id, ordered))) == len(graph.inputs) else None


def _plan(source: Any, structure: InputStructure, examples: Sequence[Any], requested: int) -> _Plan:
    reason = no_layer_graph(source)
    if reason:
        return _Plan(None, [], reason, [], {})
    try:
        graph = _LayerGraph(source)
        ordered = _inputs_in_call_order(graph, structure)
        if ordered is None:
            return _Plan(None, [], f"its example inputs ({', '.join(structure.input_names())}) do not match its "
                                   f"{len(graph.inputs)} Keras input(s) one to one", [], {})
        graph.inputs = ordered
        costs, values = graph.profile(examples)
    except Exception as error:  # noqa: BLE001 - an unreadable graph means "cannot cut"
        return _Plan(None, [], f"its Keras layer graph cannot be read ({type(error).__name__}: {error})"[:240], [], {})
    bounds = balanced_stages(costs, requested)
    reason = "" if len(bounds) >= requested else f"its layer graph has only {len(graph.nodes)} layer call(s)"
    return _Plan(graph, bounds, reason, costs, values)


def _entries(plan: _Plan) -> list[dict[str, Any]]:
    graph = plan.graph
    assert graph is not None
    entries = []
    for index, (start, end) in enumerate(plan.bounds):
        live_in = graph.inputs if start == 0 else graph.live_across(start)
        entries.append({
            "index": index, "first": graph.nodes[start].operation.name, "last": graph.nodes[end - 1].operation.name,
            "units": end - start, "cost": round(sum(plan.costs[start:end]), 9),
            "param_bytes": _param_bytes(graph.nodes[start:end]),
            "inputs": [list(plan.values[id(t)].shape) for t in live_in],
        })
    return entries


def _attach(tf: Any, module: Any, plan: _Plan, examples: Sequence[Any], dynamic: bool,
            name_outputs: Callable[[Any], dict[str, Any]]) -> list[Any]:
    """Put ``ncrt_stage_k`` functions on ``module``; return the stages' outputs on the examples."""
    graph = plan.graph
    assert graph is not None
    values: Any = list(examples)
    for index, (start, end) in enumerate(plan.bounds):
        live_in = graph.inputs if start == 0 else graph.live_across(start)
        live_out = None if end == len(graph.nodes) else graph.live_across(end)
        specs = [_spec(tf, plan.values[id(t)], dynamic) for t in live_in]
        function = _stage_function(tf, graph, start, end, live_in, live_out, name_outputs, specs)
        setattr(module, f"{STAGE_ENTRY}{index}", function)
        values = function(*values)
    return values


def _same_outputs(ours: dict[str, Any], reference: dict[str, Any]) -> bool:
    return set(ours) == set(reference) and all(
        np.allclose(np.asarray(ours[key]), np.asarray(reference[key]), rtol=1e-4, atol=1e-5) for key in ours)


def cut_into_stages(module: Any, source: Any, structure: InputStructure, examples: Sequence[Any],
                    manifest: Manifest, name: str, name_outputs: Callable[[Any], dict[str, Any]],
                    reference: dict[str, Any]) -> None:
    """Cut ``source`` into ``manifest.pipeline_cores`` stages on ``module``; record the partition.

    ``structure``: how the examples were given (so stage 0 takes the inputs in the traced
    model's order); ``examples``: the example input tensors in that order; ``reference``:
    ``ncrt_infer``'s outputs on them (the stages must reproduce them). Warns once when
    there are fewer stages.
    """
    requested = manifest.pipeline_cores
    if requested < 2:
        return
    tf = import_tf()
    plan = _plan(source, structure, examples, requested)
    entries: list[dict[str, Any]] = []
    if plan.graph is not None and len(plan.bounds) > 1:
        outputs = _attach(tf, module, plan, examples, manifest.dynamic_batching, name_outputs)
        if _same_outputs(outputs, reference):
            entries = _entries(plan)
        else:
            plan.reason = "its stages do not reproduce the model's outputs"
            for index in range(len(plan.bounds)):
                delattr(module, f"{STAGE_ENTRY}{index}")
    note = warn_fewer_stages(name, requested, len(entries) or 1, plan.reason) if plan.reason else ""
    manifest.partition = partition_record(requested, entries, COST_BASIS, note)


def record_uncut(manifest: Manifest, name: str, reason: str) -> None:
    """A model compiled for N > 1 cores that cannot be cut at all: warn once, record why."""
    if manifest.pipeline_cores > 1:
        note = warn_fewer_stages(name, manifest.pipeline_cores, 1, reason)
        manifest.partition = partition_record(manifest.pipeline_cores, [], COST_BASIS, note)


def check_pipeline_replicas(cores: int, manifest: Manifest, replicas: int | None,
                            device_ids: Sequence[int] | None) -> None:
    """PlacementError when whole replicas of a pipelined model cannot fit where the load asks.

    A model compiled for N > 1 cores is replicated as whole N-core pipelines: ``device_ids``
    must name a multiple of N cores, ``replicas`` x N must fit the process's ``cores``.
    """
    from ncrt.errors import PlacementError

    width = manifest.pipeline_cores
    if width < 2:
        return
    what = f"a model compiled for NeuronCore Pipeline over {width} cores (--neuroncore-pipeline-cores={width})"
    if device_ids is not None and (not device_ids or len(device_ids) % width):
        raise PlacementError(
            f"{what} is replicated as whole {width}-core pipelines, but device_ids={list(device_ids)} names "
            f"{len(device_ids)} core(s); accepted: a multiple of {width} cores"
        )
    if replicas and replicas * width > cores:
        raise PlacementError(
            f"{replicas} replica(s) of {what} need {replicas * width} NeuronCores but this process has {cores}; "
            f"accepted: replicas from 1 to {max(1, cores // width)}, or raise NEURON_RT_NUM_CORES"
        )


# --------------------------------------------------------------------------- running stages


@dataclass
class TFStagePayload:
    """One stage's function; stage 0 converts the call's inputs, the last one returns NumPy outputs."""

    function: Any
    input_dtypes: list[str] | None
    last: bool


def stage_specs(holder: Any, manifest: Manifest) -> list[StageSpec] | None:
    """The stages of a traced module or loaded SavedModel (None for a model that runs whole)."""
    count = manifest.stage_count
    functions = [getattr(holder, f"{STAGE_ENTRY}{index}", None) for index in range(count)]
    if count < 2 or any(function is None for function in functions):
        return None
    dtypes = [spec["dtype"] for spec in manifest.inputs]
    entries = manifest.partition["stages"]
    return [StageSpec(TFStagePayload(function, dtypes if index == 0 else None, index == count - 1), run_stage,
                      f"{entry['first']}..{entry['last']}")
            for index, (function, entry) in enumerate(zip(functions, entries))]


def run_stage(model: Model, inputs: Any, core: LocalCore) -> Any:
    """Run one stage's function in its core's executor thread."""
    payload: TFStagePayload = model.payload
    if payload.input_dtypes is not None:
        from ncrt.errors import BadInputError

        if len(inputs) != len(payload.input_dtypes):
            raise BadInputError(f"the model takes {len(payload.input_dtypes)} input(s), got {len(inputs)}")
        tf = import_tf()
        inputs = [to_tensor(tf, x, d) for x, d in zip(inputs, payload.input_dtypes)]
    outputs = payload.function(*inputs)
    if payload.last:
        return {name: value.numpy() for name, value in outputs.items()}
    return list(outputs)
