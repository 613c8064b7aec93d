"""MXNet on ncrt: ``mx.neuron(index)`` contexts with FlexEG placement (seeds 000 and 002).

Unmodified mx-neuron inference code runs on ncrt cores::

    import mxnet as mx
    import ncrt.plugins.mxnet            # or: import ncrt.compat

    csym, cargs, caux = mx.contrib.neuron.compile(sym, args, aux, {"data": x},
                                                  flags=["--neuroncore-pipeline-cores", "2"])
    model = csym.bind(ctx=mx.neuron(0), args=cargs, aux_states=caux, grad_req="null")
    outputs = model.forward(data=x)      # runs on NC0-1, a list of NDArrays

``mx.neuron(index)`` is a CPU context that carries a NeuronCore index. Binding a symbol
to it places the model on the runtime (runtime 2.x FlexEG: ``index`` is the first core
of the group, and the group is as long as the model's compiled
``--neuroncore-pipeline-cores``; an uncompiled symbol needs 1 core). Binding to any other
context is MXNet's own ``bind``, untouched. Each core binds its own MXNet executor, with
its own copy of the parameters, lazily and only in that core's executor thread (MXNet
executors are not thread-safe). Models sharing a core run one at a time on it and each
change of model there counts as a model switch.

Threads: before ncrt imports MXNet it sets ``MXNET_CPU_WORKER_NTHREADS`` to the host's
CPU count (so models on disjoint groups run in parallel in MXNet's engine) and
``MXNET_OMP_MAX_THREADS`` to the CPUs per worker (so parallel groups never oversubscribe
the host), each only when unset. When the application imported MXNet first, set them
yourself.

Legacy NeuronCore Groups: under ``NEURONCORE_GROUP_SIZES`` ``mx.neuron(i)`` means group
``i``; :func:`placement_request` is the one place that decides which meaning applies.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import sys
import threading
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from ncrt.errors import BadInputError, ModelLoadError
from ncrt.hookspecs import hookimpl
from ncrt.manifest import Manifest, parse_compiler_args, verify_payload
from ncrt.model import Model
from ncrt.placement import PlacementRequest

if TYPE_CHECKING:
    from ncrt.config import Config
    from ncrt.model import LoadedModel
    from ncrt.runtime import LocalCore, Runtime

__all__ = [
    "FRAMEWORK",
    "MANIFEST_ATTR",
    "CoreBinding",
    "NeuronExecutor",
    "SymbolPayload",
    "bind",
    "compile",
    "configure_thread_defaults",
    "enable",
    "is_neuron_context",
    "manifest_of",
    "neuron",
    "patch_mxnet",
    "placement_request",
]

FRAMEWORK = "mxnet"
MANIFEST_ATTR = "__ncrt_manifest__"
NCG_GROUPS_KEY = "ncg_groups"

# --- importing and patching MXNet ------------------------------------------------------


def _host_cpu_count() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def configure_thread_defaults(environ: dict[str, str] | None = None) -> None:
    """Set MXNet's engine and OpenMP thread counts for per-core execution, when unset.

    One engine worker per host CPU lets models on disjoint core groups run at the same
    time; OpenMP threads per operator = CPUs per worker keeps the total at the host's
    CPU count. MXNet reads both once, at import: this only matters before that.
    """
    environ = os.environ if environ is None else environ
    cpus = _host_cpu_count()
    environ.setdefault("MXNET_CPU_WORKER_NTHREADS", str(cpus))
    given = environ["MXNET_CPU_WORKER_NTHREADS"]
    workers = int(given) if given.isascii() and given.isdigit() else cpus
    environ.setdefault("MXNET_OMP_MAX_THREADS", str(max(1, cpus // max(1, workers))))


def enable() -> ModuleType:
    """Import MXNet (thread defaults first, then ``numpy.bool``), patch it, return it."""
    from ncrt.adapters.mxnet import import_mxnet

    if "mxnet" not in sys.modules:
        configure_thread_defaults()
    mx = import_mxnet()
    patch_mxnet(mx)
    return mx


def patch_mxnet(mx: ModuleType | None) -> ModuleType | None:
    """Give ``mx`` the mx-neuron names: ``mx.neuron``, ``mx.contrib.neuron``, neuron ``bind``.

    Idempotent. ``Symbol.bind`` keeps its exact behaviour for every non-neuron context.
    """
    if mx is None:
        return None
    mx.neuron = neuron
    contrib = getattr(mx, "contrib", None)
    if contrib is not None and not isinstance(getattr(contrib, "neuron", None), SimpleNamespace):
        contrib.neuron = SimpleNamespace(compile=compile, __doc__="mx-neuron compile API on ncrt")
    _wrap_bind(mx.sym.Symbol)
    return mx


def _wrap_bind(symbol_class: type) -> None:
    original = symbol_class.bind
    if getattr(original, "_ncrt_neuron", False):
        return

    @functools.wraps(original)
    def neuron_aware_bind(self: Any, ctx: Any, *rest: Any, **kwargs: Any) -> Any:
        if is_neuron_context(ctx):
            return bind(self, ctx, *rest, **kwargs)
        return original(self, ctx, *rest, **kwargs)

    neuron_aware_bind._ncrt_neuron = True  # type: ignore[attr-defined]
    neuron_aware_bind._ncrt_original = original  # type: ignore[attr-defined]
    symbol_class.bind = neuron_aware_bind


class _PatchMxnetOnImport(importlib.abc.MetaPathFinder):
    """Patches ``mxnet`` right after the application imports it (plugin imported first)."""

    _busy = threading.local()

    def find_spec(self, name: str, path: Sequence[str] | None = None, target: ModuleType | None = None):
        if name != "mxnet" or getattr(self._busy, "active", False):
            return None
        self._busy.active = True
        try:
            spec = importlib.util.find_spec(name)
        finally:
            self._busy.active = False
        if spec is None or spec.loader is None:
            return None
        spec.loader = _PatchingLoader(spec.loader)
        return spec


class _PatchingLoader(importlib.abc.Loader):
    def __init__(self, real: importlib.abc.Loader) -> None:
        self.real = real

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self.real.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        from ncrt.adapters.mxnet import _supply_numpy_bool

        configure_thread_defaults()
        _supply_numpy_bool()
        self.real.exec_module(module)
        patch_mxnet(module)


def _install_import_patch() -> None:
    """Patch MXNet now if it is imported, else when it is (never importing it here)."""
    if "mxnet" in sys.modules:
        patch_mxnet(sys.modules["mxnet"])
    elif not any(isinstance(finder, _PatchMxnetOnImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, _PatchMxnetOnImport())


# --- contexts ----------------------------------------------------------------------------

_context_class: type | None = None


def _neuron_context_class() -> type:
    """``NeuronContext``: an ``mx.Context`` of type cpu that carries a NeuronCore index."""
    global _context_class
    if _context_class is None:
        mx = enable()

        class NeuronContext(mx.Context):
            """``mx.neuron(index)``: tensors made with it live on the host CPU."""

            def __init__(self, index: int) -> None:
                super().__init__("cpu", 0)
                self.neuron_index = index

            def __eq__(self, other: object) -> bool:
                return isinstance(other, NeuronContext) and other.neuron_index == self.neuron_index

            def __hash__(self) -> int:
                return hash(("neuron", self.neuron_index))

            def __repr__(self) -> str:
                return f"neuron({self.neuron_index})"

            def __str__(self) -> str:  # MXNet parses str(ctx) as a device: keep "cpu(0)"
                return super().__str__()

        _context_class = NeuronContext
    return _context_class


def neuron(index: int = 0) -> Any:
    """``mx.neuron(index)``: the context that places a bound model from NeuronCore ``index``."""
    if isinstance(index, bool) or not isinstance(index, int) or index < 0:
        raise BadInputError(
            f"mx.neuron({index!r}) is not valid; accepted: a NeuronCore index, a whole number >= 0"
        )
    return _neuron_context_class()(index)


def is_neuron_context(ctx: Any) -> bool:
    """Whether ``ctx`` came from ``mx.neuron(index)``."""
    return _context_class is not None and isinstance(ctx, _context_class)


# --- compile and manifests ---------------------------------------------------------------


def _as_shapes(inputs: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    if not isinstance(inputs, Mapping) or not inputs:
        raise BadInputError(
            f"compile inputs must name the symbol's inputs, got {type(inputs).__name__}; "
            "accepted: a dict like {'data': mx.nd.ones((1, 3, 224, 224))} (arrays or shapes)"
        )
    return {name: tuple(int(d) for d in getattr(value, "shape", value)) for name, value in inputs.items()}


def _check_arguments(sym: Any, args: Mapping[str, Any], aux: Mapping[str, Any], shapes: Mapping[str, Any]) -> None:
    missing = [n for n in sym.list_arguments() if n not in args and n not in shapes]
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
    for name, shape in zip(sym.list_arguments(), arg_shapes):
        if name in args and tuple(args[name].shape) != tuple(shape):
            raise BadInputError(
                f"parameter {name} has shape {tuple(args[name].shape)} but the graph needs {tuple(shape)} "
                f"for inputs {dict(shapes)}"
            )
    return [{"name": n, "shape": list(s)} for n, s in zip(sym.list_outputs(), out_shapes)]


def _compiler_flags(compile_args: dict[str, Any]) -> dict[str, Any]:
    flags = compile_args.pop("flags", None)
    if flags is None:
        flags = compile_args.pop("compiler_args", None)
    return parse_compiler_args(flags)


def compile(sym: Any, args: Mapping[str, Any], aux: Mapping[str, Any], inputs: Mapping[str, Any],
            **compile_args: Any) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """``mx.contrib.neuron.compile``: record what the model needs; return ``(sym, args, aux)``.

    ``inputs`` maps input names to example arrays (or shapes). ``flags`` (or
    ``compiler_args``) are neuron-cc options; ``--neuroncore-pipeline-cores N`` sets the
    cores the model occupies when bound. The returned symbol carries the manifest in its
    ``__ncrt_manifest__`` attribute, kept by ``save_checkpoint``/``load_checkpoint``.
    """
    shapes = _as_shapes(inputs)
    _check_arguments(sym, args, aux, shapes)
    manifest = _build_manifest(sym, args, aux, inputs, shapes, dict(compile_args))
    return _with_manifest(sym, manifest), dict(args), dict(aux)


def _build_manifest(sym: Any, args: Mapping[str, Any], aux: Mapping[str, Any], inputs: Mapping[str, Any],
                    shapes: Mapping[str, tuple[int, ...]], compile_args: dict[str, Any]) -> Manifest:
    from ncrt.adapters.mxnet import params_digest

    flags = _compiler_flags(compile_args)
    first = next(iter(shapes.values()))
    return Manifest(
        framework=FRAMEWORK, batch_size=first[0] if first else None,
        inputs=[{"name": n, "shape": list(s), "dtype": _dtype_name(inputs[n])} for n, s in shapes.items()],
        outputs=_infer_outputs(sym, args, shapes), pipeline_cores=flags["pipeline_cores"],
        compiler_args=flags["args"], sha256=hashlib.sha256(params_digest(args, aux)).hexdigest(),
        extra={"compile_args": {key: repr(value) for key, value in compile_args.items()}},
    )


def _dtype_name(value: Any) -> str:
    dtype = getattr(value, "dtype", None)
    return getattr(dtype, "__name__", None) or str(dtype) if dtype is not None else "float32"


def _with_manifest(sym: Any, manifest: Manifest) -> Any:
    compiled = sym.__copy__()
    node = compiled if len(compiled.list_outputs()) == 1 else compiled[0]
    node._set_attr(**{MANIFEST_ATTR: json.dumps(json.loads(manifest.to_json()), sort_keys=True)})
    return compiled


def manifest_of(sym: Any, source: str | None = None) -> Manifest:
    """The manifest ``compile`` attached to ``sym``, or a 1-core manifest for a plain symbol.

    ``source`` (the symbol file) names it in errors."""
    for attrs in sym.attr_dict().values():
        if MANIFEST_ATTR in attrs:
            return Manifest.from_json(attrs[MANIFEST_ATTR], source=source or f"the {MANIFEST_ATTR} attribute of the symbol")
    return Manifest(framework=FRAMEWORK)


# --- placement -----------------------------------------------------------------------------


def placement_request(index: int, cores: int, runtime: Runtime) -> PlacementRequest:
    """What ``mx.neuron(index)`` asks of the runtime for a model needing ``cores`` cores.

    Runtime 2.x (FlexEG): ``index`` is the first core of the group. Under legacy
    NeuronCore Groups (the ncg plugin sets ``config.extra["ncg_groups"]``) it is the group
    index, answered by that plugin's placement.
    """
    if runtime.config.extra.get(NCG_GROUPS_KEY):
        return PlacementRequest(cores_per_replica=cores, group=index)
    return PlacementRequest(cores_per_replica=cores, start=index)


# --- binding and execution ---------------------------------------------------------------


class SymbolPayload:
    """What a neuron-bound model carries to its cores: the symbol and host copies of params.

    Parameters are held as NumPy arrays so that no MXNet object crosses threads; each core
    turns them into its own NDArrays in its executor thread.
    """

    def __init__(self, sym: Any, args: Mapping[str, Any], aux: Mapping[str, Any], manifest: Manifest) -> None:
        compiled_inputs = {spec["name"] for spec in manifest.inputs}
        self.symbol_json = sym.tojson()
        self.args = {name: _host_array(value) for name, value in args.items() if name not in compiled_inputs}
        self.aux = {name: _host_array(value) for name, value in aux.items()}
        self.input_names = [name for name in sym.list_arguments() if name not in self.args]
        self.output_names = sym.list_outputs()
        self.manifest = manifest


def _host_array(value: Any) -> Any:
    import numpy as np

    return value.asnumpy() if hasattr(value, "asnumpy") else np.asarray(value)


class CoreBinding:
    """One core's MXNet executors for one model, one per input-shape signature.

    Made and used only in that core's executor thread.
    """

    def __init__(self, payload: SymbolPayload) -> None:
        mx = enable()
        self.mx = mx
        self.payload = payload
        self.symbol = mx.sym.load_json(payload.symbol_json)
        self.args = {name: mx.nd.array(value, dtype=value.dtype) for name, value in payload.args.items()}
        self.aux = {name: mx.nd.array(value, dtype=value.dtype) for name, value in payload.aux.items()}
        self.executors: dict[tuple, Any] = {}

    def executor_for(self, inputs: Mapping[str, Any]) -> Any:
        key = tuple((name, tuple(value.shape), str(value.dtype)) for name, value in sorted(inputs.items()))
        executor = self.executors.get(key)
        if executor is None:
            placeholders = {name: self.mx.nd.zeros(value.shape, dtype=value.dtype) for name, value in inputs.items()}
            executor = self.symbol.bind(self.mx.cpu(), args={**self.args, **placeholders},
                                        aux_states=self.aux, grad_req="null")
            self.executors[key] = executor
        return executor

    def run(self, inputs: Mapping[str, Any]) -> list[Any]:
        """Forward ``inputs`` (NDArrays by input name); return finished copies of the outputs.

        Copies, because the executor's own outputs are overwritten by its next forward,
        and one job may run several chunks through the same executor (data parallelism).
        """
        outputs = self.executor_for(inputs).forward(is_train=False, **inputs)
        copies = [output.copy() for output in outputs]
        for copy in copies:
            copy.wait_to_read()
        return copies


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
        return {name: _as_ndarray(name, value, self.payload.manifest) for name, value in inputs.items()}

    def unload(self) -> None:
        """Free the model's cores for other models."""
        self.loaded.unload()

    def __repr__(self) -> str:
        return f"<NeuronExecutor {self.loaded.name} on {self.placement} via {self.ctx!r}>"


def _as_ndarray(name: str, value: Any, manifest: Manifest) -> Any:
    from ncrt.adapters.mxnet import ADAPTER

    array = value if ADAPTER.is_tensor(value) else ADAPTER.from_numpy(value)
    compiled = next((spec["shape"] for spec in manifest.inputs if spec.get("name") == name), None)
    if compiled is not None and list(array.shape[1:]) != list(compiled[1:]):
        raise BadInputError(
            f"input {name!r} has shape {tuple(array.shape)}; the model was compiled for "
            f"{tuple(compiled)} (any batch size, the other dimensions as compiled)"
        )
    return array


def _model_name(sym: Any, params: Sequence[str]) -> str:
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
    import ncrt

    _check_bind_options(args_grad, shared_exec, group2ctx)
    args = _named(args, sym.list_arguments(), "args")
    aux = _named(aux_states or {}, sym.list_auxiliary_states(), "aux_states")
    manifest = manifest_of(sym)
    runtime = ncrt.get_runtime()
    _verify_params(manifest, args, aux, runtime)
    payload = SymbolPayload(sym, args, aux, manifest)
    # MXNet executors are not thread-safe: each is only touched by its core's executor thread.
    model = Model(_model_name(sym, list(payload.args)), FRAMEWORK, manifest, payload, inline=False)
    loaded = runtime.place(model, placement_request(ctx.neuron_index, manifest.pipeline_cores, runtime))
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
    from ncrt.adapters.mxnet import params_digest

    if runtime.config.validate_hash:
        params = {name: value for name, value in args.items() if name not in {i["name"] for i in manifest.inputs}}
        verify_payload(manifest, params_digest(params, aux), True)


# --- hooks ---------------------------------------------------------------------------------


def _checkpoint_prefix(artifact: Any) -> tuple[str, int] | None:
    """``(prefix, epoch)`` when ``artifact`` names an MXNet checkpoint, else None."""
    if not isinstance(artifact, (str, Path)):
        return None
    prefix = str(artifact)
    if not Path(f"{prefix}-symbol.json").is_file():
        return None
    epochs = sorted(int(p.name[-len("0000.params"):-len(".params")])
                    for p in Path(prefix).parent.glob(f"{Path(prefix).name}-[0-9][0-9][0-9][0-9].params"))
    if not epochs:
        raise ModelLoadError(f"MXNet checkpoint {prefix} has a symbol but no {prefix}-NNNN.params file")
    return prefix, epochs[-1]


@hookimpl
def ncrt_load(artifact: Any, config: Config) -> Model | None:
    """An MXNet checkpoint prefix (``prefix-symbol.json`` + ``prefix-NNNN.params``, latest epoch)."""
    found = _checkpoint_prefix(artifact)
    if found is None:
        return None
    from ncrt.adapters.mxnet import params_digest

    sym, args, aux = enable().model.load_checkpoint(*found)
    manifest = manifest_of(sym, source=f"{found[0]}-symbol.json")
    if manifest.framework != FRAMEWORK:
        raise ModelLoadError(f"the ncrt manifest of {found[0]}-symbol.json names framework {manifest.framework!r}, "
                             f"but the file is an MXNet checkpoint; recompile the model with ncrt")
    if config.validate_hash:
        verify_payload(manifest, params_digest(args, aux), True)
    return Model(Path(found[0]).name, FRAMEWORK, manifest, SymbolPayload(sym, args, aux, manifest), inline=False)


@hookimpl
def ncrt_read_manifest(path: str) -> Manifest | None:
    """The manifest of an MXNet checkpoint prefix, read from its symbol JSON (no MXNet import)."""
    symbol_file = Path(f"{path}-symbol.json")
    if not isinstance(path, (str, Path)) or not symbol_file.is_file():
        return None
    try:
        nodes = json.loads(symbol_file.read_text()).get("nodes", [])
    except ValueError as error:
        raise ModelLoadError(f"{symbol_file} is not MXNet symbol JSON: {error}") from None
    for node in nodes:
        text = (node.get("attrs") or {}).get(MANIFEST_ATTR)
        if text:
            return Manifest.from_json(text, source=symbol_file)
    return Manifest(framework=FRAMEWORK)


@hookimpl
def ncrt_execute(model: Model, inputs: Any, core: LocalCore) -> Any:
    """Run an MXNet model on ``core`` with its per-core executor (inputs: NDArrays by name)."""
    if model.framework != FRAMEWORK:
        return None
    binding = model.replica_for(core.index, lambda: CoreBinding(model.payload))
    if not isinstance(inputs, Mapping):
        inputs = dict(zip(model.payload.input_names, inputs))
    return binding.run({name: _as_ndarray(name, value, model.manifest) for name, value in inputs.items()})


@hookimpl
def ncrt_compat_modules() -> dict[str, Callable[[ModuleType | None], ModuleType | None]]:
    """``mx.neuron`` and ``mx.contrib.neuron`` on the real ``mxnet`` module."""
    return {"mxnet": patch_mxnet}


_install_import_patch()
