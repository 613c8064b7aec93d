"""Seed 003 "Compiling for pipeline optimization": a model compiled for 2 NeuronCores runs as 2 stages.

``--neuroncore-pipeline-cores 2`` cuts the model into two stages, one per core of its
group; feeding threads keep both stages busy (request k+1 in stage 0 while request k is in
stage 1). The seed's ResNet-50 is replaced by the examples' small CNN.
# env: NCRT_INSTANCE_TYPE=inf1.xlarge
"""

from __future__ import annotations

import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import ncrt.compat  # noqa: F401  (torch.neuron, and torch.jit.load places ncrt models)
import torch
import torch_neuron  # noqa: F401

from _cnn import SmallCNN


def main() -> None:
    model = SmallCNN().eval()
    example = torch.rand([1, 3, 32, 32])
    compiled = torch.neuron.trace(model, example, compiler_args=["--neuroncore-pipeline-cores", "2"])
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "cnn_pipeline.pt"
        torch.jit.save(compiled, str(path))
        model_neuron = torch.jit.load(str(path))  # placed on the next free group of 2 cores
    print(f"model_neuron -> {model_neuron.placement_label}")
    for stage in model_neuron.manifest.partition["stages"]:
        print(f"stage {stage['index']} on NC{stage['index']}: {stage['first']} .. {stage['last']}")
    images = [torch.rand([1, 3, 32, 32]) for _ in range(16)]
    with ThreadPoolExecutor(4) as pool:  # seed 003: more feeding threads than cores
        outputs = list(pool.map(model_neuron, images))
    with torch.no_grad():
        for image, output in zip(images, outputs):
            torch.testing.assert_close(output, model(image))
    busy = [f"NC{s['core']} {s['executions']} runs" for s in model_neuron.loaded.describe()["stages"]]
    print(f"16 requests streamed through both stages ({', '.join(busy)}); outputs match the plain model")


if __name__ == "__main__":
    main()
