"""Small torch models shared by the torch plugin tests (imported by name: pytest puts this folder on sys.path)."""

from __future__ import annotations

import numpy as np

from typing import Dict, List, Tuple

import torch

__all__ = ["SmallCNN", "DictModel", "ListOutputModel", "ScaledModel", "FailingModel", "plain"]


class SmallCNN(torch.nn.Module):
    """Two convolutions and a linear head: enough to make replicas and chunking real."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv1 = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = torch.nn.Conv2d(8, 8, 3, padding=1)
        self.head = torch.nn.Linear(8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv1(x))
        x = torch.relu(self.conv2(x))
        return self.head(x.mean(dim=(2, 3)))


class DictModel(torch.nn.Module):
    """Takes a dict of five tensors: every key must reach the model."""

    def forward(self, inputs: Dict[str, torch.Tensor]) -> torch.Tensor:
        return inputs["a"] + 2 * inputs["b"] + 3 * inputs["c"] + 4 * inputs["d"] + 5 * inputs["e"]


class ListOutputModel(torch.nn.Module):
    """Returns ``Tuple[List[Tensor]]`` (a torch-neuron DataParallel bug case)."""

    def forward(self, x: torch.Tensor) -> Tuple[List[torch.Tensor]]:
        return ([x + 1, x * 2, x.sum(dim=1, keepdim=True)],)


class ScaledModel(torch.nn.Module):
    """Takes a nested tuple of tensors and a non-tensor argument."""

    def forward(self, pair: Tuple[torch.Tensor, torch.Tensor], scale: float) -> Dict[str, torch.Tensor]:
        return {"sum": (pair[0] + pair[1]) * scale, "diff": pair[0] - pair[1]}


class FailingModel(torch.nn.Module):
    """Raises for a negative input sample."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if bool(x.min() < 0):
            raise ValueError("negative input")
        return x * 2


def plain(model: torch.nn.Module, *args):
    with torch.no_grad():
        return model.eval()(*args)


def close(actual, expected):
    """ncrt's output equals the plain model's, within float tolerance."""
    np.testing.assert_allclose(actual.numpy(), expected.numpy(), rtol=1e-5, atol=1e-6)
