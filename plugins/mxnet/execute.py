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
    "run_on_core",
]

FRAMEWORK = "mxnet"


def configure_thread_defaults(environ: dict[str, str] | None = None) -> None:
    """Set MXNet's engine and OpenMP thread counts for per-core execution, when unset.

    One engine worker per host CPU lets models on disjoint core groups run at the same
    time; OpenMP threads per operator = CPUs per worker keeps the total at the host's
    CPU count. MXNet reads both once, at import: this only matters before that.
    """
    environ = os.environ if environ is None else environ
    cpus = len(host_cpus())
    environ.setdefault("MXNET_CPU_WORKER_NTHREADS", str(cpus))
    workers = int(environ["MXNET_CPU_WORKER_NTHREADS"]) if environ["MXNET_CPU_WORKER_NTHREADS"].isdigit() else cpus
    environ.setdefault("MXNET_OMP_MAX_THREADS", str(max(1, cpus // max(1, workers))))


def import_configured() -> ModuleType:
    """``mxnet``, with the thread defaults set first when it is not imported yet."""
    if "mxnet" not in sys.modules:
        configure_thread_defaults()
    return import_mxnet()


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
