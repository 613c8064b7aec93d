"""MXNet models bound to NeuronCores: ``sym.bind(ctx=mx.neuron(i), ...)`` and its executor.

Binding a symbol to ``mx.neuron(index)`` places the model on the runtime (runtime 2.x
FlexEG: ``index`` is the first core of the group, and the group is as long as the model's
compiled ``--neuroncore-pipeline-cores``; an uncompiled symbol needs 1 core). A symbol
compiled by ``mx_neuron.compile`` runs on NeuronCores whatever the context, as mx-neuron's
compiled subgraph does: bound to ``mx.cpu(i)`` it is placed like ``mx.neuron(i)``. Models
sharing a core run one at a time on it and each change of model there counts as a model
switch. A model is unloaded from its cores when its executor is freed (``nrt_unload``).

:class:`NeuronExecutor` behaves like an MXNet ``Executor`` for inference: ``arg_dict``,
``aux_dict``, ``arg_arrays``, ``outputs``, ``forward(**inputs)``, ``copy_params_from``, so
``exe.copy_params_from({'data': img}); exe.forward()`` and the ``mx.mod.Module`` API
(through :func:`simple_bind`) work on neuron contexts.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from ncrt import get_runtime
from ncrt.adapters.mxnet import ADAPTER, import_mxnet, params_digest
from ncrt.batching import batch_size_of
from ncrt.errors import BadInputError
from ncrt.manifest import Manifest, verify_payload
from ncrt.model import Model, unload_when_freed
from ncrt.parallel import DataParallelRunner

from .compile import manifest_of, weights_of
from .execute import FRAMEWORK, SymbolPayload, as_ndarray, run_on_core
from .pipeline import run_fused, stage_specs
from .placement import placement_request

if TYPE_CHECKING:
    from ncrt.model import LoadedModel
    from ncrt.runtime import Runtime

__all__ = ["NeuronExecutor", "bind", "neuron_index", "simple_bind"]


class NeuronExecutor:
    """What ``sym.bind(ctx=mx.neuron(i), ...)`` returns: an Executor-like handle on ncrt cores.

    ``forward(data=...)`` runs the model on its cores (on the caller's side while they
    are idle, else in the first core's executor thread) and returns the outputs as a
    list of NDArrays, also kept in ``outputs``.
    Several threads may call ``forward`` at once: each call runs its own inputs, and
    small concurrent calls are joined into one call on the core (:mod:`ncrt.coalesce`).
    Inputs given to ``forward`` (or copied into ``arg_dict``) are remembered, so
    ``forward()`` alone reruns with the current ones.
    """

    def __init__(self, loaded: LoadedModel, ctx: Any, payload: SymbolPayload, sym: Any,
                 args: Mapping[str, Any], aux: Mapping[str, Any]) -> None:
        self._finalizer = unload_when_freed(self, loaded)  # freed by the application: nrt_unload
        self.loaded = loaded
        self.ctx = ctx
        self.payload = payload
        self._arguments = sym.list_arguments()
        self._auxiliary = sym.list_auxiliary_states()
        self.arg_dict: dict[str, Any] = {name: _ndarray(value) for name, value in args.items()}
        self.aux_dict: dict[str, Any] = {name: _ndarray(value) for name, value in aux.items()}
        self.outputs: list[Any] = []
        # Concurrent small forwards (many threads, one executor) are joined into one call on the
        # core; no padding: a core binds an executor per batch size, and runs any.
        self._runner = DataParallelRunner(loaded, ADAPTER, compiled_batch=loaded.manifest.batch_size or 1,
                                          fused=True, pad=False)

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

    @property
    def arg_arrays(self) -> list[Any]:
        return [self.arg_dict.get(name) for name in self._arguments]

    @property
    def aux_arrays(self) -> list[Any]:
        return [self.aux_dict.get(name) for name in self._auxiliary]

    @property
    def grad_arrays(self) -> list[Any]:
        return [None] * len(self._arguments)

    @property
    def grad_dict(self) -> dict[str, Any]:
        return {}

    @property
    def output_dict(self) -> dict[str, Any]:
        return dict(zip(self.output_names, self.outputs))

    def forward(self, is_train: bool = False, **inputs: Any) -> list[Any]:
        """Run the model on its cores with ``inputs`` by name; return the output NDArrays."""
        if is_train:
            raise BadInputError("is_train=True is not supported on NeuronCores; accepted: is_train=False")
        unknown = sorted(name for name in inputs if name not in self.payload.input_names)
        if unknown:
            raise BadInputError(
                f"model {self.loaded.name!r} got input(s) {unknown} it does not take; accepted: "
                f"{self.payload.input_names} as keyword arguments of forward()"
            )
        given = {name: as_ndarray(name, value, self.payload.manifest) for name, value in inputs.items()}
        self.arg_dict.update(given)
        current = self._current_inputs(given)  # this call's inputs, whatever other threads set meanwhile
        rows = batch_size_of(current, ADAPTER, 0)
        if self._runner.coalescing_limit(rows):
            outputs = self._runner(current, rows)  # joined with other threads' requests to this model
        else:
            outputs = self.loaded.run(current)
        self.outputs = outputs
        return outputs

    def _current_inputs(self, given: Mapping[str, Any] | None = None) -> dict[str, Any]:
        given = given or {}
        missing = [name for name in self.payload.input_names if name not in given and name not in self.arg_dict]
        if missing:
            raise BadInputError(
                f"model {self.loaded.name!r} has no value for input(s) {missing}; give them to forward() "
                "or copy_params_from()"
            )
        return {name: given[name] if name in given else as_ndarray(name, self.arg_dict[name], self.payload.manifest)
                for name in self.payload.input_names}

    def copy_params_from(self, arg_params: Mapping[str, Any], aux_params: Mapping[str, Any] | None = None,
                         allow_extra_params: bool = False) -> None:
        """Set inputs and parameters by name, as ``Executor.copy_params_from`` does.

        New parameter values reach every core before its next run.
        """
        aux_params = aux_params or {}
        extra = [n for n in arg_params if n not in self._arguments] + [n for n in aux_params if n not in self._auxiliary]
        if extra and not allow_extra_params:
            raise BadInputError(f"copy_params_from got {extra}, which the model does not have; "
                                f"accepted: {self._arguments + self._auxiliary} (or allow_extra_params=True)")
        params = {n: v for n, v in arg_params.items() if n in self._arguments and n not in self.payload.input_names}
        aux = {n: v for n, v in aux_params.items() if n in self._auxiliary}
        for name, value in arg_params.items():
            if name in self._arguments:
                self.arg_dict[name] = _ndarray(value)
        self.aux_dict.update({name: _ndarray(value) for name, value in aux.items()})
        if params or aux:
            self.payload.update(params, aux)

    def debug_str(self) -> str:
        """A summary in MXNet's ``Executor.debug_str`` layout (``mx.mod.Module`` reads its totals)."""
        size = sum(value.size * value.dtype.itemsize for value in self.payload.args.values())
        size += sum(value.size * value.dtype.itemsize for value in self.payload.aux.values())
        return (f"Symbol outputs: {', '.join(self.output_names)}\nPlaced on {self.placement} by ncrt\n"
                f"Total {size >> 20} MB allocated\nTotal 0 TempSpace resource requested\n")

    def unload(self) -> None:
        """Free the model's cores for other models now."""
        self._finalizer.detach()
        self.loaded.unload()

    def __repr__(self) -> str:
        return f"<NeuronExecutor {self.loaded.name} on {self.placement} via {self.ctx!r}>"


def _ndarray(value: Any) -> Any:
    return value if ADAPTER.is_tensor(value) else ADAPTER.from_numpy(value)


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


def neuron_index(ctx: Any) -> int:
    """The core index a context names: ``mx.neuron(i)`` -> i, ``mx.cpu(i)`` (compiled model) -> i."""
    index = getattr(ctx, "neuron_index", None)
    return int(index if index is not None else getattr(ctx, "device_id", 0))


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
    runtime = get_runtime()
    _verify_params(manifest_of(sym), args, aux, runtime)
    return _place(runtime, sym, ctx, args, aux)


def _place(runtime: Runtime, sym: Any, ctx: Any, args: Mapping[str, Any], aux: Mapping[str, Any]) -> NeuronExecutor:
    manifest = manifest_of(sym)
    payload = SymbolPayload(sym, args, aux, manifest)
    # each core runs its own CachedOp, one call at a time (execute.CoreBinding)
    model = Model(model_name(sym, list(payload.args)), FRAMEWORK, manifest, payload, runner=run_on_core,
                  stages=stage_specs(sym, payload), fused=run_fused)
    loaded = runtime.place(model, placement_request(neuron_index(ctx), manifest.pipeline_cores))
    return NeuronExecutor(loaded, ctx, payload, sym, args, aux)


def simple_bind(sym: Any, ctx: Any, grad_req: Any = "write", type_dict: Mapping[str, Any] | None = None,
                stype_dict: Any = None, group2ctx: Any = None, shared_arg_names: Any = None,
                shared_exec: Any = None, shared_buffer: Any = None, **shapes: Any) -> NeuronExecutor:
    """``sym.simple_bind(ctx=mx.neuron(i), data=(1, 3, 224, 224))``: zero-filled arrays, then placed.

    What ``mx.mod.Module.bind`` calls; the parameters arrive later through
    ``copy_params_from`` (``Module.set_params``). ``shared_*`` are MXNet memory-sharing
    hints with no meaning here.
    """
    if group2ctx is not None:
        _check_bind_options(None, None, group2ctx)
    mx = import_mxnet()
    try:
        arg_shapes, _, aux_shapes = sym.infer_shape(**shapes)
    except Exception as error:  # MXNetError
        raise BadInputError(f"simple_bind cannot infer the model's shapes from {shapes}: {error}") from None
    if arg_shapes is None:
        raise BadInputError(f"simple_bind needs the shape of every input; got {shapes}")
    types = dict(type_dict or {})
    args = {name: mx.nd.zeros(shape, dtype=types.get(name, "float32"))
            for name, shape in zip(sym.list_arguments(), arg_shapes)}
    aux = {name: mx.nd.zeros(shape) for name, shape in zip(sym.list_auxiliary_states(), aux_shapes)}
    executor = _place(get_runtime(), sym, ctx, {n: v for n, v in args.items() if n not in shapes}, aux)
    executor.arg_dict.update({name: args[name] for name in shapes if name in args})  # the input buffers
    return executor


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
        params = weights_of(args, {spec["name"] for spec in manifest.inputs})
        verify_payload(manifest, params_digest(params, aux), True)
