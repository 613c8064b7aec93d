"""The observability and tuning tools: ``ncrt top``, ``ncrt monitor``, ``ncrt bench``, ``ncrt check-model``.

Modules: ``stats`` (the per-process statistics every runtime publishes, and their
reader), ``top`` (the neuron-top view), ``monitor`` (neuron-monitor JSON and Prometheus),
``bench`` (sweeps against the bare framework), ``check_model`` (what a compiled model
needs). Importing this package imports none of rich, matplotlib or a framework.
"""

from __future__ import annotations

from .check_model import ModelCheck, check_model
from .stats import ProcessStats, read_processes

__all__ = ["ModelCheck", "ProcessStats", "check_model", "read_processes"]
