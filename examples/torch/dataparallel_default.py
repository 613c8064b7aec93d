"""Seed 001 "Default usage": DataParallel replicates a compiled model on every core of the process.

The seed's ResNet-50 is replaced by a small CNN (there is no torchvision here); the rest
is the seed code, run through ncrt's torch-neuron names.
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
    batch_size = 5
    image_batched = torch.rand([batch_size, 3, 32, 32])
    output = model_parallel(image_batched)
    with torch.no_grad():
        torch.testing.assert_close(output, model(image_batched))
    print(f"model_parallel -> {model_parallel.placement_label}")
    print(f"output {tuple(output.shape)} matches the plain model")


if __name__ == "__main__":
    main()
