"""``trace``: a torch model to TorchScript with an ncrt manifest (``torch.neuron.trace``).

The manifest records the compiled batch size (the example's first dimension), the input
and output signature, ``--neuroncore-pipeline-cores`` from ``compiler_args`` and whether
the model can be batched dynamically. Importing this module does not import torch.
"""

from __future__ import annotations

from typing import Any

from ncrt.adapters.torch import ADAPTER
from ncrt.batching import tensors_in
from ncrt.errors import BadInputError
from ncrt.manifest import Manifest, parse_compiler_args

from .execute import FRAMEWORK, import_torch, remember_caller_threads
from .model import NeuronModule, attach_manifest
from .pipeline import cut_into_stages

__all__ = ["trace"]


def _signature(structure: Any) -> list[dict[str, Any]]:
    return [{"shape": list(t.shape), "dtype": str(t.dtype).replace("torch.", "")}
            for t in tensors_in(structure, ADAPTER)]


def _batch_eligible(inputs: list[dict[str, Any]], outputs: list[dict[str, Any]], batch: int) -> bool:
    """Dynamic batching needs every input and output to carry the batch on dim 0."""
    return bool(outputs) and all(spec["shape"][:1] == [batch] for spec in inputs + outputs)


def _build_manifest(args: tuple, outputs: Any, compiler_args: Any, dynamic_batch_size: bool) -> Manifest:
    options = parse_compiler_args(compiler_args)
    inputs = _signature(args)
    if not inputs or not inputs[0]["shape"]:
        raise BadInputError(
            "trace needs example inputs holding at least one tensor with a batch dimension; "
            f"got {type(args[0]).__name__ if args else 'nothing'}"
        )
    batch = inputs[0]["shape"][0]
    output_signature = _signature(outputs)
    return Manifest(
        framework=FRAMEWORK, batch_size=batch, batch_dim=0, inputs=inputs, outputs=output_signature,
        pipeline_cores=options["pipeline_cores"],
        dynamic_batching=_batch_eligible(inputs, output_signature, batch),
        compiler_args=options["args"],
        extra={"dynamic_batch_size": bool(dynamic_batch_size), "torch_version": import_torch().__version__},
    )


def trace(model: Any, example_inputs: Any, compiler_args: Any = None, *,
          dynamic_batch_size: bool = False, name: str | None = None, **trace_kwargs: Any) -> NeuronModule:
    """Compile ``model`` for ncrt NeuronCores, like ``torch.neuron.trace``.

    ``example_inputs``: a tensor or a tuple of positional arguments (tensors, nests of
    tensors). ``compiler_args``: neuron-cc arguments; ``--neuroncore-pipeline-cores N``
    sets the cores one replica needs and cuts the model into N stages, one per core
    (:mod:`ncrt.plugins.torch.pipeline`). Extra keyword arguments go to ``torch.jit.trace``.
    """
    torch = import_torch()
    remember_caller_threads()
    args = example_inputs if isinstance(example_inputs, tuple) else (example_inputs,)
    if not isinstance(model, torch.nn.Module):
        raise BadInputError(f"trace accepts a torch.nn.Module or a ScriptModule; got {type(model).__name__}")
    model.eval()
    trace_kwargs.setdefault("strict", False)
    trace_kwargs.setdefault("check_trace", False)
    with torch.no_grad():
        traced = model if isinstance(model, torch.jit.ScriptModule) else torch.jit.trace(model, args, **trace_kwargs)
        outputs = traced(*args)
    manifest = _build_manifest(args, outputs, compiler_args, dynamic_batch_size)
    traced = cut_into_stages(model, traced, args, manifest, name or type(model).__name__, trace_kwargs)
    attach_manifest(traced, manifest)
    return NeuronModule(traced, manifest, name or type(model).__name__)
