"""Fixtures of the PyTorch plugin tests."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")

from torch_test_models import SmallCNN  # noqa: E402


@pytest.fixture
def cnn():
    """The small CNN of the examples, in eval mode."""
    return SmallCNN().eval()
