"""Running a TensorFlow model on a core: importing TF, its thread pools, the payload, the runner.

TensorFlow is imported by :func:`import_tf`, which also fixes TF's process-wide thread
pools the first time (see :func:`configure_threads`). Every replica of a model runs the
one loaded ``ncrt_infer`` function (:class:`TFPayload`) from its core's executor thread.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import numpy as np

from ncrt import current_runtime
from ncrt.adapters.tensorflow import is_tf_tensor
from ncrt.config import Config, parse_config
from ncrt.errors import BadInputError, FrameworkMissingError
from ncrt.logs import get_logger
from ncrt.topology import build_topology, host_cpus

if TYPE_CHECKING:
    from types import ModuleType

    from ncrt.model import Model
    from ncrt.runtime import LocalCore

__all__ = [
    "CC_FLAGS_VARIABLE",
    "ENTRY",
    "INTER_OP_VARIABLE",
    "INTRA_OP_VARIABLE",
    "FRAMEWORK",
    "TFPayload",
    "ThreadSettings",
    "configure_threads",
    "import_tf",
    "load_saved_model",
    "neuron_cc_flags",
    "output_tensors",
    "run_on_core",
    "thread_settings",
    "to_tensor",
]

FRAMEWORK = "tensorflow"
ENTRY = "ncrt_infer"
log = get_logger("NRT")


@dataclass
class ThreadSettings:
    """The TF thread pools ncrt asked for, and whether TF accepted them."""

    intra_op: int = 0
    inter_op: int = 0
    applied: bool = False
    reason: str = ""


_threads = ThreadSettings()
_tf: ModuleType | None = None


def thread_settings() -> ThreadSettings:
    """What :func:`configure_threads` chose (``applied`` False if TF was initialised first)."""
    return _threads


INTRA_OP_VARIABLE = "NCRT_TF_INTRA_OP_THREADS"
INTER_OP_VARIABLE = "NCRT_TF_INTER_OP_THREADS"
CC_FLAGS_VARIABLE = "NEURON_CC_FLAGS"
"""tensorflow-neuron's tracing options (tracing API page): ``--neuroncore-pipeline-cores=4 ...``."""


def _config() -> Config:
    """The runtime's configuration, or one parsed now when no runtime exists yet."""
    runtime = current_runtime()
    return runtime.config if runtime is not None else parse_config()


def neuron_cc_flags() -> str:
    """``NEURON_CC_FLAGS`` as set (empty when unset)."""
    return str(_config().setting(CC_FLAGS_VARIABLE) or "")


def load_saved_model(directory: Any) -> Any:
    """TensorFlow's own ``tf.saved_model.load`` (never the compat wrapper that places models)."""
    tf = import_tf()
    load = getattr(tf.saved_model.load, "__ncrt_original__", tf.saved_model.load)
    return load(str(directory))


def _cpus_per_core(config: Config) -> int:
    """Host CPUs behind one core of this process's topology (the runtime's, if started)."""
    runtime = current_runtime()
    topology = runtime.topology if runtime is not None else build_topology(config.instance_type)
    return max(1, min(len(core.cpus) for core in topology.cores))


def _threads_setting(config: Config, name: str, default: int) -> int:
    value = config.setting(name)
    return default if value is None else int(value)  # type: ignore[arg-type]


def configure_threads(tf: ModuleType | None = None) -> ThreadSettings:
    """Size TF's process-wide pools for per-core executors; only possible before TF runs an op.

    intra-op = the CPUs behind one core (each core's executor then uses only its CPUs),
    inter-op = the host's CPUs (so the executors of different cores run side by side).
    ``NCRT_TF_INTRA_OP_THREADS`` / ``NCRT_TF_INTER_OP_THREADS`` override them.
    """
    tf = tf or import_tf()
    if _threads.applied or _threads.reason:
        return _threads
    config = _config()
    _threads.intra_op = _threads_setting(config, INTRA_OP_VARIABLE, _cpus_per_core(config))
    _threads.inter_op = _threads_setting(config, INTER_OP_VARIABLE, len(host_cpus()))
    try:
        tf.config.threading.set_intra_op_parallelism_threads(_threads.intra_op)
        tf.config.threading.set_inter_op_parallelism_threads(_threads.inter_op)
        _threads.applied = True
    except RuntimeError as error:
        _threads.reason = f"TensorFlow was initialised before ncrt: {error}"
        log.info("keeping TensorFlow's thread pools: %s", _threads.reason)
    return _threads


def import_tf() -> ModuleType:
    """``tensorflow``, imported on first use; FrameworkMissingError when not installed."""
    global _tf
    if _tf is None:
        try:
            import tensorflow as tf
        except ImportError:
            raise FrameworkMissingError("tensorflow", "tensorflow") from None
        _tf = tf
        configure_threads(tf)
    return _tf


@dataclass
class TFPayload:
    """The one loaded copy of a model's weights and its inference function.

    Every replica of the model runs this same function from its core's executor thread
    (TF functions are thread-safe for inference), so N replicas cost one load.
    """

    function: Any
    holder: Any
    input_dtypes: list[str] = field(default_factory=list)

    def run(self, inputs: Sequence[Any]) -> dict[str, np.ndarray]:
        tf = import_tf()
        if len(inputs) != len(self.input_dtypes):
            raise BadInputError(
                f"the model takes {len(self.input_dtypes)} input(s), got {len(inputs)}"
            )
        tensors = [to_tensor(tf, x, d) for x, d in zip(inputs, self.input_dtypes)]
        outputs = self.function(*tensors)
        return {name: value.numpy() for name, value in outputs.items()}


def to_tensor(tf: ModuleType, value: Any, dtype: str) -> Any:
    """``value`` as a tensor of ``dtype`` (cast when it holds another dtype)."""
    if is_tf_tensor(value):
        return value if value.dtype.name == dtype else tf.cast(value, dtype)
    return tf.constant(np.asarray(value, dtype=dtype))


def output_tensors(outputs: Mapping[str, Any]) -> dict[str, Any]:
    """Outputs as TF tensors, as tensorflow-neuron returns them (tensors already are kept).

    On every request's path: each array is copied into a new eager tensor, as
    ``tf.constant`` does, but without its dispatch (a third of the cost).
    """
    make = _eager_tensor_maker()
    return {name: value if is_tf_tensor(value) else make(value) for name, value in outputs.items()}


_make_eager_tensor: Callable[[Any], Any] | None = None


def _eager_tensor_maker() -> Callable[[Any], Any]:
    """``tf.constant`` for NumPy arrays, by TensorFlow's own ``EagerTensor`` where it has one."""
    global _make_eager_tensor
    if _make_eager_tensor is None:
        tf = import_tf()
        try:
            from tensorflow.python.eager import context
            from tensorflow.python.framework.ops import EagerTensor
        except ImportError:  # another TensorFlow layout: the public way
            _make_eager_tensor = tf.constant
        else:
            def make(value: Any) -> Any:
                if type(value) is not np.ndarray or value.dtype.hasobject:
                    return tf.constant(value)  # lists, strings and the like: TF's own conversion
                return EagerTensor(value.copy(), context.context().device_name, None)
            _make_eager_tensor = make
    return _make_eager_tensor


def run_on_core(model: Model, inputs: Any, core: LocalCore) -> Any:
    """The runner of TensorFlow models: the shared TF function, in this core's executor thread."""
    return model.payload.run(inputs)
