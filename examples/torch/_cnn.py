"""The small CNN of the PyTorch examples (there is no torchvision here): it stands in
for the seeds' ResNet-50. The benchmark and the tests use the same network."""

from __future__ import annotations

import torch


class SmallCNN(torch.nn.Module):
    """A small image classifier standing in for ResNet-50."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.features = torch.nn.Sequential(
            torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
            torch.nn.Conv2d(16, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
        )
        self.classifier = torch.nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).flatten(1))


def compile_and_save(directory: str, name: str, pipeline_cores: int = 1) -> str:
    """Trace the small CNN for ``pipeline_cores`` cores and save it, as a Neuron build step would.

    Needs ``import ncrt.compat`` (``torch.neuron``) first.
    """
    import os

    model_neuron = torch.neuron.trace(
        SmallCNN().eval(), torch.rand([1, 3, 32, 32]), compiler_args=["--neuroncore-pipeline-cores", str(pipeline_cores)]
    )
    path = os.path.join(directory, f"{name}.pt")
    torch.jit.save(model_neuron, path)
    return path


def check(model: object) -> None:
    """The model's output on a random image equals the plain CNN's."""
    image = torch.rand([1, 3, 32, 32])
    with torch.no_grad():
        torch.testing.assert_close(model(image), SmallCNN().eval()(image))
