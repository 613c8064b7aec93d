"""NeuronCore Pipeline for torch: cut a traced model into stages, and run them on their cores.

At trace time (``trace(..., compiler_args=['--neuroncore-pipeline-cores', 'N'])``) the model
is traced with ``torch.fx``; every operation of the graph is timed on the example input
(the fastest of five runs, with the intra-op threads of one core: on a busy host the
fastest run is the one least disturbed), and the operations are cut,
in graph order, into ``N`` stages whose slowest one is as fast as possible
(:func:`ncrt.pipeline.balanced_stages`). A cut may only go where every value crossing it
is a tensor (or a nest of tensors). Each stage becomes its own ``torch.fx.GraphModule``,
traced to TorchScript on the values that reach it; the compiled artifact is one
ScriptModule holding the stages as submodules ``ncrt_stage0`` ... (its ``forward`` runs
them one after the other), so ``torch.jit.save``/``load`` keep them, and the manifest
records the partition. A model that torch.fx cannot trace, or that has too few places to
cut, gets fewer stages and one :class:`~ncrt.pipeline.PipelineStagesWarning`.

At run time each stage runs on its own core: its own copy of the stage's weights (one
shared copy under ``NEURON_RT_MULTI_INSTANCE_SHARED_WEIGHTS``), the intra-op threads of
that core's CPUs. Importing this module does not import torch.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Sequence

from ncrt import current_runtime
from ncrt.adapters.torch import ADAPTER
from ncrt.batching import tensors_in
from ncrt.config import parse_config
from ncrt.manifest import Manifest
from ncrt.pipeline import StageSpec, balanced_stages, partition_record, warn_fewer_stages
from ncrt.topology import build_topology

from .execute import TorchPayload, import_torch, intra_op_threads, run_on_core

if TYPE_CHECKING:
    from ncrt.model import LoadedModel, Model
    from ncrt.runtime import LocalCore

__all__ = ["STAGE_PREFIX", "cut_into_stages", "run_stage", "stage_modules", "stage_replicas", "stage_specs"]

STAGE_PREFIX = "ncrt_stage"
PROFILE_RUNS = 5
_UNIT_OPS = ("call_module", "call_function", "call_method")


def _cpus_per_core() -> int:
    """Host CPUs behind one core of this process's runtime (or of the configured topology)."""
    runtime = current_runtime()
    topology = runtime.topology if runtime is not None else build_topology(parse_config().instance_type)
    return max(1, min(len(core.cpus) for core in topology.cores))


# --------------------------------------------------------------------------- the graph


class _Graph:
    """A model's torch.fx graph with what partitioning needs: units, their cost, where cuts may go."""

    def __init__(self, module: Any, args: tuple) -> None:
        torch = import_torch()
        self.fx = torch.fx
        self.module = torch.fx.symbolic_trace(module)
        self.nodes = list(self.module.graph.nodes)
        self.units = [node for node in self.nodes if node.op in _UNIT_OPS]
        self.inputs = [node for node in self.nodes if node.op == "placeholder"]
        self.output = next(node for node in self.nodes if node.op == "output")
        self.position = {node: index for index, node in enumerate(self.units)}
        self.costs, self.carryable = self._profile(args)

    def _profile(self, args: tuple) -> tuple[list[float], dict[Any, bool]]:
        """Seconds of each unit (its fastest of a few runs), and which values could cross a cut."""
        torch = import_torch()
        timings: dict[Any, list[float]] = {node: [] for node in self.units}
        carryable: dict[Any, bool] = {}
        graph = self

        class Profiler(self.fx.Interpreter):
            def run_node(self, node: Any) -> Any:
                start = time.perf_counter()
                value = super().run_node(node)
                if node in timings:
                    timings[node].append(time.perf_counter() - start)
                carryable[node] = _is_tensor_nest(value)
                return value

        with intra_op_threads(_cpus_per_core()), torch.no_grad():
            for _ in range(PROFILE_RUNS + 1):
                Profiler(graph.module).run(*args)
        return [min(timings[node][1:]) for node in self.units], carryable

    def _last_use(self, node: Any) -> int:
        uses = [len(self.units) if user is self.output else self.position.get(user, -1) for user in node.users]
        return max(uses, default=-1)

    def _defined_at(self, node: Any) -> int:
        return self.position.get(node, -1)

    def values(self) -> list[Any]:
        """Values that may cross a cut: inputs and units (attributes are re-read by each stage)."""
        return self.inputs + self.units

    def live_across(self, cut: int) -> list[Any]:
        """Values defined before unit ``cut`` and used at or after it, in graph order."""
        return [node for node in self.values() if self._defined_at(node) < cut <= self._last_use(node)]

    def cut_points(self) -> list[int]:
        return [cut for cut in range(1, len(self.units))
                if all(self.carryable.get(node, False) for node in self.live_across(cut))]


def _is_tensor_nest(value: Any) -> bool:
    torch = import_torch()
    if isinstance(value, torch.Tensor):
        return True
    if isinstance(value, (tuple, list)):
        return bool(value) and all(_is_tensor_nest(item) for item in value)
    if isinstance(value, dict):
        return bool(value) and all(_is_tensor_nest(item) for item in value.values())
    return False


# --------------------------------------------------------------------------- building stages


def _stage_graph_module(graph: _Graph, start: int, end: int) -> Any:
    """Units ``start..end-1`` as a GraphModule: the values live into the stage in, those live out out."""
    fx = graph.fx
    new = fx.Graph()
    env: dict[Any, Any] = {}
    for node in (graph.inputs if start == 0 else graph.live_across(start)):
        env[node] = new.placeholder(node.name)

    def lookup(node: Any) -> Any:
        if node not in env and node.op == "get_attr":
            env[node] = new.node_copy(node, lookup)
        return env[node]

    for node in graph.units[start:end]:
        env[node] = new.node_copy(node, lookup)
    if end == len(graph.units):
        new.output(fx.node.map_arg(graph.output.args[0], lookup))
    else:
        new.output(tuple(lookup(node) for node in graph.live_across(end)))
    return fx.GraphModule(graph.module, new)


def _param_bytes(module: Any) -> int:
    seen = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes()
            for t in list(module.parameters()) + list(module.buffers())}
    return sum(seen.values())


class _Stages:
    """The pipelined artifact: stage ScriptModules in order, ``forward`` runs them one after the other."""

    @staticmethod
    def build(stages: Sequence[Any]) -> Any:
        torch = import_torch()

        class Stages(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                for index, stage in enumerate(stages):
                    self.add_module(f"{STAGE_PREFIX}{index}", stage)

            def forward(self, *args: Any) -> Any:
                values = args
                for index in range(len(stages) - 1):
                    values = getattr(self, f"{STAGE_PREFIX}{index}")(*values)
                return getattr(self, f"{STAGE_PREFIX}{len(stages) - 1}")(*values)

        return Stages()


def _trace_stages(graph: _Graph, bounds: list[tuple[int, int]], args: tuple,
                  trace_kwargs: dict[str, Any]) -> tuple[list[Any], list[dict[str, Any]]]:
    """Each stage traced on the values that reach it; and its partition entry."""
    torch = import_torch()
    scripted, entries, values = [], [], args
    for index, (start, end) in enumerate(bounds):
        stage = _stage_graph_module(graph, start, end)
        with torch.no_grad():
            scripted.append(torch.jit.trace(stage, values, **trace_kwargs))
            entries.append({
                "index": index, "first": graph.units[start].name, "last": graph.units[end - 1].name,
                "units": end - start, "cost": round(sum(graph.costs[start:end]), 9),
                "param_bytes": _param_bytes(stage),
                "inputs": [list(t.shape) for t in tensors_in(values, ADAPTER)],
            })
            values = stage(*values)
    return scripted, entries


def _same_outputs(ours: Any, reference: Any) -> bool:
    torch = import_torch()
    left, right = tensors_in(ours, ADAPTER), tensors_in(reference, ADAPTER)
    return len(left) == len(right) and all(
        a.shape == b.shape and torch.allclose(a, b, rtol=1e-4, atol=1e-5) for a, b in zip(left, right))


def _plan(model: Any, args: tuple, requested: int) -> tuple[_Graph | None, list[tuple[int, int]], str]:
    """The graph, the stage bounds, and why there are fewer than ``requested`` (empty if not)."""
    torch = import_torch()
    if isinstance(model, torch.jit.ScriptModule):
        return None, [], "it is already TorchScript (torch.fx needs the torch.nn.Module)"
    try:
        graph = _Graph(model, args)
    except Exception as error:  # noqa: BLE001 - any tracing failure means "cannot cut"
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
        return None, [], f"torch.fx cannot trace it ({type(error).__name__}: {first_line[:160]})"
    cut_points = graph.cut_points()
    bounds = balanced_stages(graph.costs, requested, cut_points)
    if len(bounds) >= requested:
        return graph, bounds, ""
    if len(graph.units) < requested:
        return graph, bounds, f"its graph has only {len(graph.units)} operation(s)"
    return graph, bounds, (f"its graph has only {len(cut_points)} place(s) where every value crossing "
                           "the cut is a tensor")


def cut_into_stages(model: Any, traced: Any, args: tuple, manifest: Manifest, name: str,
                    trace_kwargs: dict[str, Any]) -> Any:
    """The compiled module for ``manifest.pipeline_cores``: ``traced`` itself, or the stages artifact.

    Records the partition in ``manifest.partition`` (with a note, and one warning, when
    the model is cut into fewer stages than asked for).
    """
    requested = manifest.pipeline_cores
    if requested < 2:
        return traced
    torch = import_torch()
    graph, bounds, reason = _plan(model, args, requested)
    pipelined, entries = None, []
    if graph is not None and len(bounds) > 1:
        options = {"strict": trace_kwargs.get("strict", False), "check_trace": False}
        scripted, entries = _trace_stages(graph, bounds, args, options)
        pipelined = torch.jit.trace(_Stages.build(scripted), args, **options)
        with torch.no_grad():
            if not _same_outputs(pipelined(*args), traced(*args)):
                pipelined, entries, reason = None, [], "its stages do not reproduce the traced model's outputs"
    note = warn_fewer_stages(name, requested, len(entries) or 1, reason) if reason else ""
    basis = f"fastest of 5 runs per torch.fx operation on the example input, {_cpus_per_core()} intra-op thread(s)"
    manifest.partition = partition_record(requested, entries, basis, note)
    return pipelined if pipelined is not None else traced


# --------------------------------------------------------------------------- running stages


def stage_modules(module: Any, manifest: Manifest) -> list[Any] | None:
    """The stage ScriptModules of a pipelined artifact, in order (None: it runs whole)."""
    count = manifest.stage_count
    if count < 2:
        return None
    stages = [getattr(module, f"{STAGE_PREFIX}{index}", None) for index in range(count)]
    return None if any(stage is None for stage in stages) else stages


def stage_specs(module: Any, manifest: Manifest, shared_weights: bool) -> list[StageSpec] | None:
    """The stages a torch Model hands over to the runtime (None for a model that runs whole)."""
    stages = stage_modules(module, manifest)
    if stages is None:
        return None
    entries = manifest.partition["stages"]
    return [StageSpec(TorchPayload(stage, shared_weights), run_stage, f"{entry['first']}..{entry['last']}")
            for stage, entry in zip(stages, entries)]


def run_stage(model: Model, inputs: Any, core: LocalCore) -> Any:
    """Run one stage on ``core``: that core's copy of the stage, with the intra-op threads of the
    CPUs of the cores the stage holds (one core; the last stage may hold the cores left over)."""
    return run_on_core(model, inputs, core)  # the stage model's manifest holds the stage's width


def stage_replicas(loaded: LoadedModel) -> list[Any]:
    """The per-core stage modules a placed pipelined model holds (empty when it runs whole)."""
    return [module for pipeline in loaded.pipelines or () for stage in pipeline.stages
            for module in stage.model.replicas.values()]
