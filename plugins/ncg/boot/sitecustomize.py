"""Imported by Python at start-up in processes started by ``ncrt run``.

``ncrt run`` puts this folder first on ``PYTHONPATH``; Python then imports this module
as ``sitecustomize`` before the application's code, and it installs the Neuron SDK
compatibility names (:mod:`ncrt.compat`). A ``sitecustomize`` that was already on the
path (a virtual environment's or a distribution's) still runs afterwards.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys

__all__: list[str] = []

_HERE = os.path.dirname(os.path.abspath(__file__))


def _chain_previous() -> None:
    """Run the ``sitecustomize`` this one shadows, if any."""
    others = [path for path in sys.path if os.path.abspath(path or os.curdir) != _HERE]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", others)
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    sys.modules["_ncrt_previous_sitecustomize"] = module
    spec.loader.exec_module(module)


def _install() -> None:
    import ncrt.compat  # noqa: F401  (installs the names on import)


if __name__ == "sitecustomize":
    _install()
    _chain_previous()
