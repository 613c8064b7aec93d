"""Seed 001 "Specifying NeuronCores": DataParallel on the first three cores, by 'nc:#' or int ids.

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
    # Equivalent to model_parallel = torch.neuron.DataParallel(model_neuron, device_ids=[0, 1, 2])
    model_parallel = torch.neuron.DataParallel(model_neuron, device_ids=["nc:0", "nc:1", "nc:2"])
    batch_size = 5
    image_batched = torch.rand([batch_size, 3, 32, 32])
    output = model_parallel(image_batched)
    with torch.no_grad():
        torch.testing.assert_close(output, model(image_batched))
    print(f"model_parallel -> {model_parallel.placement_label}")
    print(f"output {tuple(output.shape)} matches the plain model")


if __name__ == "__main__":
    main()
