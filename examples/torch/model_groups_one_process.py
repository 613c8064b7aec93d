"""Seed 000 "Running multiple models using single process": models compiled for 2, 4, 3 and 4 cores.

With NEURON_RT_NUM_CORES=13 on an inf1.6xlarge, loading A, B, C, D in sequence places them on
NC0-1, NC2-5, NC6-8 and NC9-12.
# env: NCRT_INSTANCE_TYPE=inf1.6xlarge NEURON_RT_NUM_CORES=13
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
    files = [compile_and_save(directory, name, cores) for name, cores in zip("ABCD", (2, 4, 3, 4))]
    os.environ.setdefault("NEURON_RT_NUM_CORES", "13")
    models = [torch.jit.load(path) for path in files]
    reference = SmallCNN().eval()
    for index, model in enumerate(models):
        inputs = torch.rand([1, 3, 32, 32])
        with torch.no_grad():
            torch.testing.assert_close(model(inputs), reference(inputs))
        print(f"model{index} -> {model.placement_label}")


if __name__ == "__main__":
    main()
