"""Seed 001 "DataParallel with dim != 0": split along dim 2 over four cores; dynamic batching is off.

DataParallel warns that dynamic batching cannot be enabled, and the batch along dim 2
must be 4 x the compiled size (8).
# env: NCRT_INSTANCE_TYPE=inf1.xlarge
"""

from __future__ import annotations

import warnings

import ncrt.compat  # noqa: F401  (torch.neuron, torch_neuron)
import torch
import torch_neuron  # noqa: F401


class Model(torch.nn.Module):
    """The seed's example model."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 3, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) + 1


def main() -> None:
    model = Model()
    model.eval()
    image = torch.rand([1, 3, 8, 8])
    model_neuron = torch.neuron.trace(model, image)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model_parallel = torch.neuron.DataParallel(model_neuron, device_ids=[0, 1, 2, 3], dim=2)
    for warning in caught:
        if "dynamic batching" in str(warning.message):
            print(f"warning: {warning.message}")
    print(f"model_parallel -> {model_parallel.placement_label}")
    batch_size = 4 * 8
    image_batched = torch.rand([1, 3, batch_size, 8])
    output = model_parallel(image_batched)
    with torch.no_grad():
        expected = torch.cat([model(part) for part in image_batched.split(8, dim=2)], dim=2)
    torch.testing.assert_close(output, expected)
    print(f"output {tuple(output.shape)} matches the plain model on each slice")


if __name__ == "__main__":
    main()
