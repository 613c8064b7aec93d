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
