"""MXNet models bound to NeuronCores: ``sym.bind(ctx=mx.neuron(i), ...)`` and its executor.

Binding a symbol to ``mx.neuron(index)`` places the model on the runtime (runtime 2.x
FlexEG: ``index`` is the first core of the group, and the group is as long as the model's
compiled ``--neuroncore-pipeline-cores``; an uncompiled symbol needs 1 core). Models
sharing a core run one at a time on it and each change of model there counts as a model
switch.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from ncrt import get_runtime
from ncrt.adapters.mxnet import params_digest
from ncrt.errors import BadInputError
from ncrt.manifest import Manifest, verify_payload
from ncrt.model import Model

from .compile import manifest_of
from .execute import FRAMEWORK, SymbolPayload, as_ndarray, run_on_core
from .pipeline import stage_specs
from .placement import placement_request

if TYPE_CHECKING:
    from ncrt.model import LoadedModel
    from ncrt.runtime import Runtime

__all__ = ["NeuronExecutor", "bind"]


class NeuronExecutor:
    """What ``sym.bind(ctx=mx.neuron(i), ...)`` returns: an Executor-like handle on ncrt cores.

    ``forward(data=...)`` runs the model on its cores (in the first core's executor
    thread) and returns the outputs as a list of NDArrays, also kept in ``outputs``.
    """

    def __init__(self, loaded: LoadedModel, ctx: Any, payload: SymbolPayload) -> None:
        self.loaded = loaded
        self.ctx = ctx
        self.payload = payload
        self.outputs: list[Any] = []

    @property
    def cores(self) -> tuple[int, ...]:
        """The per-process cores the model occupies."""
        return self.loaded.cores

    @property
    def placement(self) -> str:
        """The runtime-style label of those cores, e.g. ``NC2-5``."""
        return self.loaded.placement.label

    @property
    def output_names(self) -> list[str]:
        return list(self.payload.output_names)

    def forward(self, is_train: bool = False, **inputs: Any) -> list[Any]:
        """Run the model on its cores with ``inputs`` by name; return the output NDArrays."""
        if is_train:
            raise BadInputError("is_train=True is not supported on NeuronCores; accepted: is_train=False")
        self.outputs = self.loaded.run(self._check_inputs(inputs))
        return self.outputs

    def _check_inputs(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        expected = self.payload.input_names
        if sorted(inputs) != sorted(expected):
            raise BadInputError(
                f"model {self.loaded.name!r} got inputs {sorted(inputs)}; accepted: exactly "
                f"{expected} as keyword arguments of forward()"
            )
        return {name: as_ndarray(name, value, self.payload.manifest) for name, value in inputs.items()}

    def unload(self) -> None:
        """Free the model's cores for other models."""
        self.loaded.unload()

    def __repr__(self) -> str:
        return f"<NeuronExecutor {self.loaded.name} on {self.placement} via {self.ctx!r}>"


def model_name(sym: Any, params: Sequence[str]) -> str:
    """The Gluon prefix its parameters share (``modelB_dense0_weight`` -> ``modelB``), else its output."""
    shared = os.path.commonprefix(list(params)) if len(params) > 1 else ""
    if "_" in shared:
        return shared[: shared.rindex("_")]
    name = sym.name or sym.list_outputs()[0]
    return name[: -len("_output")] if name.endswith("_output") else name


def _check_bind_options(args_grad: Any, shared_exec: Any, group2ctx: Any) -> None:
    for option, value in (("args_grad", args_grad), ("shared_exec", shared_exec), ("group2ctx", group2ctx)):
        if value is not None:
            raise BadInputError(
                f"bind(ctx=mx.neuron(...)) got {option}={type(value).__name__}; NeuronCores run "
                f"inference only: accepted: {option}=None (grad_req='null')"
            )


def bind(sym: Any, ctx: Any, args: Mapping[str, Any] | Sequence[Any], args_grad: Any = None,
         grad_req: Any = "write", aux_states: Mapping[str, Any] | Sequence[Any] | None = None,
         group2ctx: Any = None, shared_exec: Any = None) -> NeuronExecutor:
    """``sym.bind(ctx=mx.neuron(i), ...)``: place the model from core ``i`` and return its executor.

    ``args`` are the parameters (inputs may be left out and given to ``forward``);
    ``grad_req`` is ignored (inference only).
    """
    _check_bind_options(args_grad, shared_exec, group2ctx)
    args = _named(args, sym.list_arguments(), "args")
    aux = _named(aux_states or {}, sym.list_auxiliary_states(), "aux_states")
    manifest = manifest_of(sym)
    runtime = get_runtime()
    _verify_params(manifest, args, aux, runtime)
    payload = SymbolPayload(sym, args, aux, manifest)
    # MXNet executors are not thread-safe: each is only touched by its core's executor thread.
    model = Model(model_name(sym, list(payload.args)), FRAMEWORK, manifest, payload, runner=run_on_core,
                  inline=False, stages=stage_specs(sym, args, aux, manifest))
    loaded = runtime.place(model, placement_request(ctx.neuron_index, manifest.pipeline_cores))
    return NeuronExecutor(loaded, ctx, payload)


def _named(values: Mapping[str, Any] | Sequence[Any], names: list[str], what: str) -> dict[str, Any]:
    if isinstance(values, Mapping):
        return dict(values)
    if isinstance(values, (list, tuple)) and len(values) <= len(names):
        return dict(zip(names, values))
    raise BadInputError(
        f"{what} must be a dict of NDArrays by name or a list in the symbol's order "
        f"({len(names)} names), got {type(values).__name__}"
    )


def _verify_params(manifest: Manifest, args: Mapping[str, Any], aux: Mapping[str, Any], runtime: Runtime) -> None:
    if runtime.config.validate_hash:
        params = {name: value for name, value in args.items() if name not in {i["name"] for i in manifest.inputs}}
        verify_payload(manifest, params_digest(params, aux), True)
