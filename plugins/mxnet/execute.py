"""Running an MXNet model on a core: MXNet's thread settings, the payload, per-core executors.

MXNet executors are not thread-safe, so each core binds its own executor, with its own
copy of the parameters, lazily and only in that core's executor thread; the payload
carries the symbol and host (NumPy) copies of the parameters so that no MXNet object
crosses threads.

Threads: before ncrt imports MXNet it sets ``MXNET_CPU_WORKER_NTHREADS`` to the host's
CPU count (so models on disjoint groups run in parallel in MXNet's engine) and
``MXNET_OMP_MAX_THREADS`` to the CPUs per worker (so parallel groups never oversubscribe
the host), each only when unset. When the application imported MXNet first, set them
yourself.
"""

from __future__ import annotations

import os
import sys
from types import ModuleType
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from ncrt.adapters.mxnet import ADAPTER, import_mxnet
from ncrt.errors import BadInputError
from ncrt.manifest import Manifest
from ncrt.topology import host_cpus

if TYPE_CHECKING:
    from ncrt.model import Model
    from ncrt.runtime import LocalCore

__all__ = [
    "FRAMEWORK",
    "CoreBinding",
    "SymbolPayload",
    "as_ndarray",
    "configure_thread_defaults",
    "import_configured",
    "is_label",
    "plain_bind",
    "run_on_core",
]

FRAMEWORK = "mxnet"


def is_label(name: str) -> bool:
    """``softmax_label`` and the like: a loss layer's label, not an inference input."""
    return name.endswith("_label")


def configure_thread_defaults(environ: dict[str, str] | None = None) -> None:
    """Set MXNet's engine and OpenMP thread counts for per-core execution, when unset.

    One engine worker per host CPU lets models on disjoint core groups run at the same
    time; OpenMP threads per operator = CPUs per worker keeps the total at the host's
    CPU count. MXNet reads both once, at import: this only matters before that.
    """
    environ = os.environ if environ is None else environ
    cpus = len(host_cpus())
    environ.setdefault("MXNET_CPU_WORKER_NTHREADS", str(cpus))
    given = environ["MXNET_CPU_WORKER_NTHREADS"]
    workers = int(given) if given.isascii() and given.isdigit() else cpus
    environ.setdefault("MXNET_OMP_MAX_THREADS", str(max(1, cpus // max(1, workers))))


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
        self.input_names = [name for name in sym.list_arguments()
                            if name not in self.args and (name in compiled_inputs or not is_label(name))]
        self.output_names = sym.list_outputs()
        self.manifest = manifest
        self.version = 0

    def update(self, args: Mapping[str, Any], aux: Mapping[str, Any]) -> None:
        """New values for some parameters; every core rebinds before its next run."""
        self.args = {**self.args, **{name: _host_array(value) for name, value in args.items()}}
        self.aux = {**self.aux, **{name: _host_array(value) for name, value in aux.items()}}
        self.version += 1


def _host_array(value: Any) -> Any:
    return value.asnumpy() if hasattr(value, "asnumpy") else np.asarray(value)


class CoreBinding:
    """One core's MXNet executors for one model, one per input-shape signature.

    Made and used only in that core's executor thread.
    """

    def __init__(self, payload: SymbolPayload) -> None:
        mx = import_configured()
        self.mx = mx
        self.payload = payload
        self.symbol = mx.sym.load_json(payload.symbol_json)
        self._load_params()

    def _load_params(self) -> None:
        mx, payload = self.mx, self.payload
        self.version = payload.version
        self.args = {name: mx.nd.array(value, dtype=value.dtype) for name, value in payload.args.items()}
        self.aux = {name: mx.nd.array(value, dtype=value.dtype) for name, value in payload.aux.items()}
        self.executors: dict[tuple, Any] = {}

    def _placeholders(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        """Buffers for the inputs, and zeros for any other argument without a value (labels)."""
        placeholders = {name: self.mx.nd.zeros(value.shape, dtype=value.dtype) for name, value in inputs.items()}
        missing = [name for name in self.symbol.list_arguments() if name not in self.args and name not in inputs]
        if missing:
            shapes, _, _ = self.symbol.infer_shape(**{name: value.shape for name, value in inputs.items()})
            by_name = dict(zip(self.symbol.list_arguments(), shapes or []))
            placeholders.update({name: self.mx.nd.zeros(by_name[name]) for name in missing if by_name.get(name)})
        return placeholders

    def executor_for(self, inputs: Mapping[str, Any]) -> Any:
        if self.version != self.payload.version:
            self._load_params()
        key = tuple((name, tuple(value.shape), str(value.dtype)) for name, value in sorted(inputs.items()))
        executor = self.executors.get(key)
        if executor is None:
            executor = plain_bind(self.symbol, self.mx.cpu(), args={**self.args, **self._placeholders(inputs)},
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


def as_ndarray(name: str, value: Any, manifest: Manifest) -> Any:
    """``value`` as an NDArray, checked against the compiled shape of input ``name``."""
    array = value if ADAPTER.is_tensor(value) else ADAPTER.from_numpy(value)
    compiled = next((spec["shape"] for spec in manifest.inputs if spec.get("name") == name), None)
    if compiled is not None and list(array.shape[1:]) != list(compiled[1:]):
        raise BadInputError(
            f"input {name!r} has shape {tuple(array.shape)}; the model was compiled for "
            f"{tuple(compiled)} (any batch size, the other dimensions as compiled)"
        )
    return array


def run_on_core(model: Model, inputs: Any, core: LocalCore) -> Any:
    """The runner of MXNet models: the core's own executor (inputs: NDArrays by name)."""
    binding = model.replica_for(core.index, lambda: CoreBinding(model.payload))
    if not isinstance(inputs, Mapping):
        inputs = dict(zip(model.payload.input_names, inputs))
    return binding.run({name: as_ndarray(name, value, model.manifest) for name, value in inputs.items()})
