"""Framework adapters: how each framework's tensors and models look to ncrt.

One module per framework, the same names in ``ncrt.plugins`` and ``ncrt.adapters``.
Every adapter implements the contract of :class:`ncrt.adapters.base.Adapter`; importing
an adapter module imports no framework, its methods do.
"""

from __future__ import annotations

import importlib

from .base import Adapter

__all__ = ["Adapter", "get_adapter"]

_MODULES = {"numpy": "numpy", "torch": "torch", "tensorflow": "tensorflow", "mxnet": "mxnet"}


def get_adapter(framework: str) -> Adapter:
    """The adapter instance for ``framework`` (``numpy``, ``torch``, ``tensorflow``, ``mxnet``)."""
    if framework not in _MODULES:
        raise ValueError(f"no adapter for framework {framework!r}; accepted: {', '.join(_MODULES)}")
    module = importlib.import_module(f"{__name__}.{_MODULES[framework]}")
    return module.ADAPTER
