"""Testing Neuron applications without Inferentia: the pytest plugin and what it returns.

The pytest plugin itself is :mod:`ncrt.plugins.testing.plugin` (entry point ``pytest11:
ncrt``): the ``neuron`` marker, the ``neuron_process`` and ``neuron_state_dir`` fixtures,
``--neuron-instance`` and the pytest-xdist state-directory options. The names below need
no pytest; :mod:`ncrt.testing` exposes them without importing this package up front.
"""

from __future__ import annotations

from .placements import ModelPlacement, NeuronRun, ProcessPlacement, assert_same_placement
from .processes import DEFAULT_TIMEOUT, NeuronProcesses, RunningProcess
from .settings import NeuronSettings

__all__ = [
    "DEFAULT_TIMEOUT",
    "ModelPlacement",
    "NeuronProcesses",
    "NeuronRun",
    "NeuronSettings",
    "ProcessPlacement",
    "RunningProcess",
    "assert_same_placement",
]
