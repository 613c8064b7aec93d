"""What the timeout tests share: the timeouts tried, the bound a caller must get its error within,
and the event never-returning models wait on (the ``hang`` fixture in conftest.py)."""

from __future__ import annotations

TIMEOUTS = [0.5, 1.0, 2.0]


def bound(timeout: float) -> float:
    """The most a caller may wait for its ExecTimeoutError (the issue's goal)."""
    return 1.1 * timeout + 0.05
