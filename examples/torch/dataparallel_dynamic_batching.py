"""Seed 001 "Dynamic batching": one compiled model runs batch sizes 2 to 6 without recompiling.

A small CNN stands in for ResNet-50.
# env: NCRT_INSTANCE_TYPE=inf1.xlarge
"""

from __future__ import annotations

import ncrt.compat  # noqa: F401  (torch.neuron, torch_neuron)
import torch
import torch_neuron  # noqa: F401

from _cnn import SmallCNN


def main() -> None:
    model = SmallCNN()
    model.eval()
    image = torch.rand([1, 3, 32, 32])
    model_neuron = torch.neuron.trace(model, image)
    model_parallel = torch.neuron.DataParallel(model_neuron)
    print(f"model_parallel -> {model_parallel.placement_label}")
    batch_sizes = [2, 3, 4, 5, 6]
    for batch_size in batch_sizes:
        image_batched = torch.rand([batch_size, 3, 32, 32])
        output = model_parallel(image_batched)
        with torch.no_grad():
            torch.testing.assert_close(output, model(image_batched))
        print(f"batch {batch_size}: output {tuple(output.shape)} matches the plain model")


if __name__ == "__main__":
    main()
