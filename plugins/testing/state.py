"""Where a test's core locks live: a private state directory per test, or one shared one.

By default every test that uses the plugin gets a state directory of its own, made under
a folder private to the pytest process, so pytest-xdist workers (separate processes)
never see each other's reservations. With ``--neuron-shared-state`` every test of the run,
in every worker, uses one directory, made by the controlling process and handed to the
workers through xdist's ``workerinput``: workers then contend for cores the way several
servers on one host do. ``--neuron-state-dir DIR`` names that shared directory.
"""

from __future__ import annotations

import itertools
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from ncrt.reservation import ensure_state_dir

__all__ = ["WORKER_INPUT_KEY", "StateDirs"]

WORKER_INPUT_KEY = "ncrt_shared_state_dir"
"""The ``workerinput`` entry through which xdist workers learn the shared directory."""


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:48]


class StateDirs:
    """The state directories of one pytest process: ``shared``, or a new one per test."""

    def __init__(self, shared: Path | None = None, *, owns_shared: bool = False) -> None:
        self.shared = shared
        self._owns_shared = owns_shared
        self._root: Path | None = None
        self._serial = itertools.count(1)

    @classmethod
    def from_config(cls, config: Any) -> StateDirs:
        """The policy the options ask for, in a controlling process, a worker, or a plain run."""
        named = config.getoption("neuron_state_dir")
        if named:
            return cls(ensure_state_dir(Path(named).resolve()))
        if not config.getoption("neuron_shared_state"):
            return cls()
        handed = getattr(config, "workerinput", {}).get(WORKER_INPUT_KEY)
        if handed:
            return cls(Path(handed))
        return cls(Path(tempfile.mkdtemp(prefix="ncrt-shared-state-")), owns_shared=True)

    def for_test(self, name: str) -> Path:
        """The state directory of a test: the shared one, or a new private one."""
        if self.shared is not None:
            return self.shared
        if self._root is None:
            self._root = Path(tempfile.mkdtemp(prefix="ncrt-pytest-"))
        path = self._root / f"{next(self._serial):04d}-{_safe(name)}"
        return ensure_state_dir(path)

    def close(self) -> None:
        """Remove the directories this process made (never a named or handed-down one)."""
        if self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)
        if self._owns_shared and self.shared is not None:
            shutil.rmtree(self.shared, ignore_errors=True)
