"""Seed 001 "Dynamic batching disabled": the batch must be len(device_ids) x the compiled batch.

A small CNN stands in for ResNet-50. Batch 8 on 4 cores fails, batch 4 works.
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
    model_parallel = torch.neuron.DataParallel(model_neuron, device_ids=[0, 1, 2, 3], dim=0)
    model_parallel.disable_dynamic_batching()
    print(f"model_parallel -> {model_parallel.placement_label}")
    try:
        model_parallel(torch.rand([8, 3, 32, 32]))
    except ValueError as error:  # 8 / 4 cores != compiled batch 1
        print(f"batch 8 refused: {error}")
    image_batched = torch.rand([4, 3, 32, 32])
    output = model_parallel(image_batched)
    with torch.no_grad():
        torch.testing.assert_close(output, model(image_batched))
    print(f"batch 4: output {tuple(output.shape)} matches the plain model")


if __name__ == "__main__":
    main()
