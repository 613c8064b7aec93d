"""Seed 000 "Running multiple models on the same NeuronCore group" (PyTorch).

With NEURON_RT_NUM_CORES=2 the process's group is NC0-1, and both models loaded with
torch.jit.load go into it. Each load puts one copy on the least-used core, as the
torch-neuron core-placement guide says ("m0 loads to nc0, m1 loads to nc1"): model0 on
NC0, model1 on NC1, so the two run in parallel without model switches.
# env: NEURON_RT_NUM_CORES=2
"""

from __future__ import annotations

import os
import tempfile

import ncrt.compat  # noqa: F401  (torch.neuron, torch.jit.load places models)
import torch
import torch_neuron  # noqa: F401

from _cnn import SmallCNN


def compile_and_save(directory: str, name: str, pipeline_cores: int = 1) -> str:
    """Trace the small CNN for ``pipeline_cores`` cores and save it, as a Neuron build step would."""
    model = SmallCNN().eval()
    model_neuron = torch.neuron.trace(
        model, torch.rand([1, 3, 32, 32]), compiler_args=["--neuroncore-pipeline-cores", str(pipeline_cores)]
    )
    path = os.path.join(directory, f"{name}.pt")
    torch.jit.save(model_neuron, path)
    return path


def main() -> None:
    directory = tempfile.mkdtemp()
    model0_file = compile_and_save(directory, "model0")
    model1_file = compile_and_save(directory, "model1")
    os.environ.setdefault("NEURON_RT_NUM_CORES", "2")
    model0 = torch.jit.load(model0_file)  # loaded into the first group of NC0-NC1: NC0
    model1 = torch.jit.load(model1_file)  # loaded into the first group of NC0-NC1: NC1
    inputs0 = torch.rand([1, 3, 32, 32])
    inputs1 = torch.rand([1, 3, 32, 32])
    results0 = model0(inputs0)
    results1 = model1(inputs1)
    with torch.no_grad():
        torch.testing.assert_close(results0, SmallCNN().eval()(inputs0))
        torch.testing.assert_close(results1, SmallCNN().eval()(inputs1))
    print(f"model0 -> {model0.placement_label}")
    print(f"model1 -> {model1.placement_label}")


if __name__ == "__main__":
    main()
