"""PyTorch on ncrt: the torch-neuron API on NeuronCores of the ncrt runtime (seeds 000, 001).

- :func:`trace` traces a model to TorchScript and records an ncrt manifest (compiled batch
  size, input/output signature, ``--neuroncore-pipeline-cores``); it returns a
  :class:`NeuronModule` that runs on cores when called.
- ``torch.jit.save`` keeps the manifest; :func:`load` (or ``torch.jit.load`` after
  ``import ncrt.compat``) places the model at once.
- :class:`DataParallel` (seed 001) splits batches over replicas on several cores.
- :func:`set_neuron_cores`, :func:`set_multicore`, :func:`neuron_cores_context` and
  :func:`multicore_context` place explicitly (``torch_neuron.experimental``).
- :func:`analyze_model` and :func:`get_supported_operations` say what a traced graph holds.
- A module or DataParallel freed by the application is unloaded from its cores.

Modules: ``compile`` (trace), ``options`` (trace's torch-neuron options), ``analyze``
(operators of a traced graph), ``model`` (NeuronModule, save, load), ``placement``,
``parallel`` (DataParallel), ``execute`` (how a core runs a replica), ``compat``
(``torch_neuron`` / ``torch.neuron``), ``hooks`` (the registered plugin). Importing this
package does not import torch.
"""

from __future__ import annotations

from .analyze import analyze_model, get_supported_operations, is_available
from .compile import trace
from .execute import FRAMEWORK, TorchCall, TorchPayload
from .model import NeuronModule, as_neuron_module, check_inputs, load, manifest_of, save, set_multicore, set_neuron_cores
from .options import IgnoredOptionWarning, Optimization
from .parallel import DataParallel, DynamicBatchingWarning, resolve_device_ids, weight_bytes
from .placement import multicore_context, neuron_cores_context, placement_request

__all__ = [
    "DataParallel",
    "DynamicBatchingWarning",
    "FRAMEWORK",
    "IgnoredOptionWarning",
    "NeuronModule",
    "Optimization",
    "TorchCall",
    "TorchPayload",
    "analyze_model",
    "as_neuron_module",
    "check_inputs",
    "get_supported_operations",
    "is_available",
    "load",
    "manifest_of",
    "multicore_context",
    "neuron_cores_context",
    "placement_request",
    "resolve_device_ids",
    "save",
    "set_multicore",
    "set_neuron_cores",
    "trace",
    "weight_bytes",
]
