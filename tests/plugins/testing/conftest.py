"""Helpers for the pytest plugin's tests (pytester itself is enabled in tests/conftest.py)."""

from __future__ import annotations

import numpy  # noqa: F401  (imported once here: pytester's in-process runs would import it again)
import pytest

from ncrt.manager import plugin_manager

plugin_manager()  # the built-in plugin modules, imported once for the same reason


@pytest.fixture
def inner(pytester, monkeypatch):
    """A pytester whose inner runs see no Neuron variables of the outer test."""
    for name in ("NCRT_INSTANCE_TYPE", "NEURON_RT_NUM_CORES", "NEURON_RT_VISIBLE_CORES", "NEURONCORE_GROUP_SIZES"):
        monkeypatch.delenv(name, raising=False)
    return pytester
