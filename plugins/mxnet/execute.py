"""Running an MXNet model on a core: MXNet's engine and thread settings, the payload, per-core ops.

Each core runs a model through its own ``mx.nd.CachedOp`` of the symbol, with its own
copy of the parameters, made lazily in the thread that first runs the model there; the
payload carries the symbol and host (NumPy) copies of the parameters. A core runs one
job at a time, so a core's CachedOp is never used by two threads at once (MXNet's
graph executors and CachedOps are not thread-safe; used one call at a time from any
thread, they are). A CachedOp allocates fresh outputs on every call, so a call's
outputs are its own: nothing is copied out.

Engine and threads: before ncrt imports MXNet it sets, each only when unset,

- ``MXNET_ENGINE_TYPE=NaiveEngine``: every operator runs in the thread that calls the
  model -- the core's thread, on the core's CPUs -- instead of being handed to MXNet's
  engine workers and waited for. That handoff cost about 0.2 ms per operator on the
  2-CPU test host (a 4-layer MLP at batch 32: 1.1-1.3 ms a call with the threaded
  engine, 0.45 ms without it); the cores' own threads give the parallelism.
- ``MXNET_CPU_WORKER_NTHREADS`` to the host's CPU count (for an application that
  chooses a threaded engine: models on disjoint groups then still run side by side),
  and ``MXNET_OMP_MAX_THREADS`` to the CPUs per worker, so that parallel groups never
  oversubscribe the host.

MXNet reads them once, at import: when the application imported MXNet first, set
them yourself.
"""

from __future__ import annotations

import os
import sys
from types import ModuleType
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from ncrt.adapters.mxnet import ADAPTER, import_mxnet
from ncrt.errors import BadInputError
from ncrt.manifest import Manifest
from ncrt.topology import host_cpus

from .openmp import limit_this_thread

if TYPE_CHECKING:
    from ncrt.model import Model
    from ncrt.runtime import LocalCore

__all__ = [
    "FRAMEWORK",
    "CoreBinding",
    "PayloadPart",
    "SharedBinding",
    "SymbolPayload",
    "as_ndarray",
    "configure_thread_defaults",
    "import_configured",
    "is_label",
    "plain_bind",
    "run_on_core",
]

FRAMEWORK = "mxnet"


STATIC_FLAGS = (("static_alloc", "true"), ("static_shape", "true"))
"""CachedOp flags: memory planned once per input shapes (each signature gets its own op).
Outputs are still fresh arrays on every call (a test holds MXNet to that)."""


def is_label(name: str) -> bool:
    """``softmax_label`` and the like: a loss layer's label, not an inference input."""
    return name.endswith("_label")


def configure_thread_defaults(environ: dict[str, str] | None = None) -> None:
    """Set MXNet's engine and thread counts for per-core execution, when unset.

    The naive engine runs each operator in the calling (core) thread; with a threaded
    engine chosen instead, one worker per host CPU lets models on disjoint core groups
    run at the same time. OpenMP threads per operator = CPUs per worker keeps the total
    at the host's CPU count. MXNet reads them once, at import: this only matters before.
    """
    environ = os.environ if environ is None else environ
    cpus = len(host_cpus())
    environ.setdefault("MXNET_ENGINE_TYPE", "NaiveEngine")
    environ.setdefault("MXNET_CPU_WORKER_NTHREADS", str(cpus))
    given = environ["MXNET_CPU_WORKER_NTHREADS"]
    workers = int(given) if given.isascii() and given.isdigit() else cpus
    environ.setdefault("MXNET_OMP_MAX_THREADS", str(max(1, cpus // max(1, workers))))


_naive_engine: list[bool] = []  # once known: whether MXNet runs the naive engine


def engine_is_naive(environ: Mapping[str, str] | None = None) -> bool:
    """Whether this process's MXNet runs operators in the calling thread (``NaiveEngine``),
    as MXNet read its own ``MXNET_ENGINE_TYPE`` when it started: read once, after MXNet is
    imported (``environ``: another mapping than ``os.environ``, read afresh, for tests)."""
    if environ is not None:
        return environ.get("MXNET_ENGINE_TYPE") == "NaiveEngine"
    if not _naive_engine:
        _naive_engine.append(engine_is_naive(os.environ))
    return _naive_engine[0]


def import_configured() -> ModuleType:
    """``mxnet``, with the thread defaults set first when it is not imported yet."""
    if "mxnet" not in sys.modules:
        configure_thread_defaults()
    return import_mxnet()


def plain_bind(sym: Any, ctx: Any, *args: Any, **kwargs: Any) -> Any:
    """MXNet's own ``Symbol.bind``, whatever ``sym`` carries (never placed on ncrt cores)."""
    bind = type(sym).bind
    return getattr(bind, "_ncrt_original", bind)(sym, ctx, *args, **kwargs)


class SymbolPayload:
    """What a neuron-bound model carries to its cores: the symbol and host copies of params.

    Parameters are held as NumPy arrays so that no MXNet object crosses threads; each core
    turns them into its own NDArrays in its executor thread. :meth:`update` replaces some
    (``copy_params_from``); the cores rebind with the new values on their next run.
    Inputs are the arguments without a value, except labels (``softmax_label``), which a
    core fills with zeros when no value is given (inference does not read them).
    """

    def __init__(self, sym: Any, args: Mapping[str, Any], aux: Mapping[str, Any], manifest: Manifest) -> None:
        compiled_inputs = {spec["name"] for spec in manifest.inputs}
        self.symbol_json = sym.tojson()
        self.args = {name: _host_array(value) for name, value in args.items() if name not in compiled_inputs}
        self.aux = {name: _host_array(value) for name, value in aux.items()}
        self.input_names = _input_names(sym, self.args, manifest)
        self.output_names = sym.list_outputs()
        self.manifest = manifest
        self.version = 0

    def update(self, args: Mapping[str, Any], aux: Mapping[str, Any]) -> None:
        """New values for some parameters; every core rebinds before its next run."""
        self.args = {**self.args, **{name: _host_array(value) for name, value in args.items()}}
        self.aux = {**self.aux, **{name: _host_array(value) for name, value in aux.items()}}
        self.version += 1

    def part(self, sym: Any) -> PayloadPart:
        """The payload of a part of the model (a pipeline stage): ``sym``, and this payload's
        values of the parameters it reads (so :meth:`update` reaches the part too)."""
        return PayloadPart(self, sym)


class PayloadPart:
    """A part of a model's payload: its own symbol, its parent's current parameter values.

    Has what :class:`CoreBinding` reads of a :class:`SymbolPayload`; ``args``, ``aux`` and
    ``version`` follow the parent, so ``copy_params_from`` on the model reaches every part.
    """

    def __init__(self, parent: SymbolPayload, sym: Any) -> None:
        self.parent = parent
        self.symbol_json = sym.tojson()
        self._arguments = set(sym.list_arguments())
        self._auxiliary = set(sym.list_auxiliary_states())
        self.input_names = _input_names(sym, parent.args, parent.manifest)
        self.output_names = sym.list_outputs()
        self.manifest = parent.manifest

    @property
    def version(self) -> int:
        return self.parent.version

    @property
    def args(self) -> dict[str, Any]:
        return {name: value for name, value in self.parent.args.items() if name in self._arguments}

    @property
    def aux(self) -> dict[str, Any]:
        return {name: value for name, value in self.parent.aux.items() if name in self._auxiliary}


def _input_names(sym: Any, params: Mapping[str, Any], manifest: Manifest) -> list[str]:
    """The arguments of ``sym`` a call gives: those without a value, except labels (unless compiled as inputs)."""
    compiled_inputs = {spec["name"] for spec in manifest.inputs}
    return [name for name in sym.list_arguments()
            if name not in params and (name in compiled_inputs or not is_label(name))]


def _host_array(value: Any) -> Any:
    return value.asnumpy() if hasattr(value, "asnumpy") else np.asarray(value)


class CoreBinding:
    """One core's runnable copy of one model: a CachedOp of its symbol and its parameters.

    Used by one thread at a time (the one running the core's current job).
    """

    def __init__(self, payload: SymbolPayload | PayloadPart) -> None:
        mx = import_configured()
        self.mx = mx
        self.payload = payload
        self.symbol = mx.sym.load_json(payload.symbol_json)
        self._order = self.symbol.list_inputs()  # what a CachedOp takes: arguments and aux states
        self._ops: dict[tuple, Any] = {}  # one CachedOp per input-shape signature
        self._load_params()

    def _load_params(self) -> None:
        mx, payload = self.mx, self.payload
        self.version = payload.version
        values = {**payload.args, **payload.aux}
        self.params = {name: mx.nd.array(value, dtype=value.dtype) for name, value in values.items()}
        self._fillers: dict[tuple, dict[str, Any]] = {}

    def refresh(self) -> None:
        """Take the payload's new parameter values, if it has any."""
        if self.version != self.payload.version:
            self._load_params()

    def _labels(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        """Zeros for the arguments neither a parameter nor given (labels), by input shapes."""
        key = tuple((name, ADAPTER.shape(value)) for name, value in sorted(inputs.items()))
        fillers = self._fillers.get(key)
        if fillers is None:
            missing = [name for name in self._order if name not in self.params and name not in inputs]
            fillers = {}
            if missing:
                shapes, _, _ = self.symbol.infer_shape(**{name: value.shape for name, value in inputs.items()})
                by_name = dict(zip(self.symbol.list_arguments(), shapes or []))
                fillers = {name: self.mx.nd.zeros(by_name[name]) for name in missing if by_name.get(name)}
            self._fillers[key] = fillers
        return fillers

    def _with_labels(self, inputs: Mapping[str, Any]) -> list[Any]:
        given = {**self._labels(inputs), **inputs, **self.params}
        missing = [name for name in self._order if name not in given]
        if missing:
            raise BadInputError(f"the model needs input(s) {missing}; got {sorted(inputs)} "
                                f"(accepted: every input of {self.payload.input_names})")
        return [given[name] for name in self._order]

    def run(self, inputs: Mapping[str, Any]) -> list[Any]:
        """Run the model on ``inputs`` (NDArrays by input name); return its finished outputs."""
        limit_this_thread()
        self.refresh()
        params = self.params
        try:
            values = [params[name] if name in params else inputs[name] for name in self._order]
        except KeyError:
            values = self._with_labels(inputs)
        key = tuple([ADAPTER.shape(value) for value in inputs.values()])  # the inputs' shapes (not the params')
        op = self._ops.get(key)
        if op is None:
            op = self._ops[key] = self.mx.nd.CachedOp(self.symbol, flags=STATIC_FLAGS)
        outputs = op(*values)
        if not isinstance(outputs, (list, tuple)):
            outputs = [outputs]
        if not engine_is_naive():  # (the naive engine ran every operator in op(), errors included)
            for output in outputs:
                output.wait_to_read()  # errors surface here, on the core
        return list(outputs)


class SharedBinding(CoreBinding):
    """The whole model as one CachedOp over the parameters of its parts' bindings.

    A pipelined model's fused run (:mod:`ncrt.pipeline`): the stages' own NDArrays, on
    their cores, are the whole model's parameters, so its weights stay resident once.
    """

    def __init__(self, payload: SymbolPayload, parts: Sequence[CoreBinding]) -> None:
        self.parts = list(parts)
        super().__init__(payload)

    def _load_params(self) -> None:
        for part in self.parts:
            part.refresh()
        self.version = self.payload.version
        self.params = {name: value for part in self.parts for name, value in part.params.items()}
        self._fillers = {}


def as_ndarray(name: str, value: Any, manifest: Manifest) -> Any:
    """``value`` as an NDArray, checked against the compiled shape of input ``name``."""
    array = value if ADAPTER.is_tensor(value) else ADAPTER.from_numpy(value)
    compiled = next((spec["shape"] for spec in manifest.inputs if spec.get("name") == name), None)
    if compiled is None:
        return array
    shape = ADAPTER.shape(array)
    if list(shape[1:]) != list(compiled[1:]):
        raise BadInputError(
            f"input {name!r} has shape {shape}; the model was compiled for "
            f"{tuple(compiled)} (any batch size, the other dimensions as compiled)"
        )
    return array


def run_on_core(model: Model, inputs: Any, core: LocalCore) -> Any:
    """The runner of MXNet models: the core's own executor (inputs: NDArrays by name)."""
    binding = model.replica_for(core.index, lambda: CoreBinding(model.payload))
    if not isinstance(inputs, Mapping):
        inputs = dict(zip(model.payload.input_names, inputs))
    return binding.run({name: as_ndarray(name, value, model.manifest) for name, value in inputs.items()})
