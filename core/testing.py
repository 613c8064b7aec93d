"""Helpers for testing Neuron applications: ``from ncrt.testing import assert_same_placement``.

The names live in :mod:`ncrt.plugins.testing` (the pytest plugin's package) and are
loaded from there on first access, by module name: the core never imports
``ncrt.plugins``, and ``import ncrt`` does not import this module at all.

* :func:`assert_same_placement(legacy, migrated, cores="process")` fails, with ``ncrt
  migrate check``'s side-by-side table, unless two runs place every model alike;
  ``cores="global"`` compares global cores instead of per-process ones.
* :class:`NeuronRun`, :class:`ProcessPlacement`, :class:`ModelPlacement`: what the
  ``neuron_process`` fixture returns (exit status, output, each model's cores).
* :class:`NeuronProcesses`, :class:`RunningProcess`: start programs under ncrt outside
  pytest (``NeuronProcesses(state_dir, workdir).run("app.py", num_cores=2)``).
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "ModelPlacement",
    "NeuronProcesses",
    "NeuronRun",
    "ProcessPlacement",
    "RunningProcess",
    "assert_same_placement",
]

_IMPLEMENTATION = "ncrt.plugins.testing"  # named as a string: the core never imports ncrt.plugins


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_IMPLEMENTATION), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
