"""``torch.neuron.DataParallel`` on ncrt (seed 001).

The model is replicated on the process's cores (all of them, or ``device_ids``), one
replica per core; a batch is split along ``dim`` and the outputs are gathered in order.
With ``dim == 0`` dynamic batching is on: any batch size is cut into compiled-batch
chunks (the last padded) dealt out to the cores. ``disable_dynamic_batching()``, or
``dim != 0``, requires ``input.shape[dim] / len(device_ids) == compiled batch``.

DataParallel takes the model's placement over: a model already placed (by
``torch.jit.load`` under compat) is unloaded from its core and then runs on the
DataParallel's replicas, so the cores do not hold it twice. The replicas are unloaded
when the DataParallel is garbage-collected.
"""

from __future__ import annotations

import re
import warnings
from typing import Any, Sequence

from ncrt.adapters.torch import ADAPTER
from ncrt.config import format_core_set
from ncrt.errors import BadInputError, PlacementError
from ncrt.model import LoadedModel, unload_when_freed
from ncrt.placement import PlacementRequest
from ncrt.parallel import DataParallelRunner
from ncrt.runtime import Runtime, get_runtime

from .execute import TorchCall, remember_caller_threads
from .model import NeuronModule, as_neuron_module, check_inputs
from .pipeline import stage_replicas

__all__ = ["DataParallel", "DynamicBatchingWarning", "resolve_device_ids", "weight_bytes"]

_NC_PATTERN = re.compile(r"^nc:(\d+)$")
_ACCEPTED_IDS = "ints (0, 1, ...) or 'nc:#' strings ('nc:0', 'nc:1', ...), per-process and zero-based"


class DynamicBatchingWarning(UserWarning):
    """DataParallel could not enable dynamic batching on a model."""


def _device_index(device: Any) -> int:
    if isinstance(device, int) and not isinstance(device, bool) and device >= 0:
        return device
    match = _NC_PATTERN.match(device.strip()) if isinstance(device, str) else None
    if match is None:
        raise ValueError(f"device_ids entry {device!r} is not valid; accepted: {_ACCEPTED_IDS}")
    return int(match.group(1))


def _visible_range(runtime: Runtime) -> str:
    global_cores = format_core_set(core.global_index for core in runtime.cores)
    return (f"this process sees nc:0-nc:{len(runtime.cores) - 1} "
            f"(global NeuronCores {global_cores}, indexed from 0 in each process)")


def resolve_device_ids(device_ids: Sequence[Any] | None, runtime: Runtime) -> tuple[int, ...]:
    """Per-process core indexes for ``device_ids`` (``None``: every core of the process)."""
    if device_ids is None:
        return tuple(range(len(runtime.cores)))
    if isinstance(device_ids, (str, int)) or not len(device_ids):
        raise ValueError(f"device_ids={device_ids!r} is not valid; accepted: a non-empty list of {_ACCEPTED_IDS}")
    indexes = tuple(_device_index(device) for device in device_ids)
    for index, device in zip(indexes, device_ids):
        if index >= len(runtime.cores):
            raise PlacementError(f"device_ids entry {device!r} is not available: {_visible_range(runtime)}")
    if len(set(indexes)) != len(indexes):
        raise ValueError(f"device_ids={list(device_ids)!r} names a NeuronCore twice; give each core once")
    return indexes


def weight_bytes(loaded: LoadedModel) -> int:
    """Bytes of parameters and buffers held by a model's core replicas (shared storage counted once)."""
    seen: dict[int, int] = {}
    for module in [*loaded.model.replicas.values(), *stage_replicas(loaded)]:
        for tensor in list(module.parameters()) + list(module.buffers()):
            storage = tensor.untyped_storage()
            seen[storage.data_ptr()] = storage.nbytes()
    return sum(seen.values())


class DataParallel:
    """Data-parallel inference of an ncrt-compiled model over NeuronCores (seed 001).

    ``model``: the result of ``trace`` (or of loading a saved one). ``device_ids``: ints
    or ``'nc:#'`` strings, per process and zero-based; default: every core of the
    process. ``dim``: the dimension the inputs are split along. Thread-safe.
    """

    def __init__(self, model: Any, device_ids: Sequence[Any] | None = None, dim: int = 0) -> None:
        self.module: NeuronModule = as_neuron_module(model)
        manifest = self.module.manifest
        if manifest.pipeline_cores > 1:
            raise BadInputError(
                f"DataParallel does not support models compiled with NeuronCore Pipeline "
                f"(--neuroncore-pipeline-cores={manifest.pipeline_cores}); accepted: models compiled "
                "for 1 NeuronCore (seed 001: \"DataParallel does not currently support models that have been "
                "compiled with NeuronCore Pipeline\"). Place copies of a pipeline model with "
                "torch_neuron.experimental.neuron_cores_context or NEURONCORE_GROUP_SIZES groups instead"
            )
        if not isinstance(dim, int) or isinstance(dim, bool):
            raise ValueError(f"dim={dim!r} is not valid; accepted: an int")
        remember_caller_threads()
        runtime = get_runtime()
        self.device_ids = resolve_device_ids(device_ids, runtime)
        self.dim = dim
        self.compiled_batch = self._compiled_batch(dim)
        dynamic = self._dynamic_allowed(dim)
        self.module.unload()  # taken over: its cores are not held twice
        self.loaded = runtime.place(self.module.to_model(), PlacementRequest(
            cores_per_replica=1, replicas=len(self.device_ids), device_ids=self.device_ids))
        self._finalizer = unload_when_freed(self, self.loaded)
        self.module.adopt(self.loaded)
        self.runner = DataParallelRunner(self.loaded, ADAPTER, dim=dim, compiled_batch=self.compiled_batch,
                                         dynamic=dynamic)

    def _compiled_batch(self, dim: int) -> int:
        shape = self.module.manifest.inputs[0]["shape"]
        if not -len(shape) <= dim < len(shape):
            raise ValueError(
                f"dim={dim} is out of range for the compiled input shape {tuple(shape)}; "
                f"accepted: {-len(shape)} to {len(shape) - 1}"
            )
        return int(shape[dim])

    def _dynamic_allowed(self, dim: int) -> bool:
        if dim != 0:
            reason = f"dim={dim} (dynamic batching is only possible along dim 0)"
        elif not self.module.manifest.dynamic_batching:
            reason = "the model's inputs and outputs do not all carry the batch on dim 0"
        else:
            return True
        warnings.warn(
            f"DataParallel cannot enable dynamic batching: {reason}; input.shape[{dim}] / "
            f"len(device_ids) must equal the compiled size {self.compiled_batch}",
            DynamicBatchingWarning, stacklevel=3,
        )
        return False

    @property
    def dynamic_batching(self) -> bool:
        return self.runner.dynamic

    def disable_dynamic_batching(self) -> None:
        """Require ``input.shape[dim] / len(device_ids) == compiled batch`` from now on."""
        self.runner.dynamic = False

    def enable_dynamic_batching(self) -> None:
        """Turn dynamic batching back on (only possible with ``dim == 0``)."""
        self.runner.dynamic = self._dynamic_allowed(self.dim)

    @property
    def placement_label(self) -> str:
        return self.loaded.placement.label

    def weight_bytes(self) -> int:
        """Bytes of weights the replicas hold (see NEURON_RT_MULTI_INSTANCE_SHARED_WEIGHTS)."""
        return weight_bytes(self.loaded)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        inputs = TorchCall(args, kwargs)
        return self.runner(inputs, check_inputs(self.module.manifest, inputs, self.dim, any_batch=True))

    forward = __call__

    def eval(self) -> DataParallel:
        return self

    def __repr__(self) -> str:
        mode = "dynamic batching" if self.runner.dynamic else "static batching"
        return f"<DataParallel {self.module.name} on {self.placement_label} dim={self.dim} {mode}>"
