"""Writing sets of core indices compactly: the one formatter every message and label uses.

``format_cores([0, 1, 2, 5])`` is ``0-2,5`` (what :func:`ncrt.config.parse_core_set` reads
back); with a prefix it is the runtime's ``nc0-nc2,nc5``, and placement labels write the
prefix once per run (``NC0-2,NC5``).
"""

from __future__ import annotations

from typing import Iterable

__all__ = ["runs", "format_cores"]


def runs(cores: Iterable[int]) -> list[tuple[int, int]]:
    """Consecutive runs of the sorted distinct cores, as ``(first, last)`` pairs."""
    found: list[tuple[int, int]] = []
    for index in sorted(set(cores)):
        if found and found[-1][1] == index - 1:
            found[-1] = (found[-1][0], index)
        else:
            found.append((index, index))
    return found


def format_cores(cores: Iterable[int], prefix: str = "", *, prefix_both_ends: bool = True) -> str:
    """``0-2,5``; ``prefix="nc"``: ``nc0-nc2,nc5``; ``prefix_both_ends=False``: ``NC0-2,NC5``.

    An empty set gives an empty string.
    """
    end = prefix if prefix_both_ends else ""
    return ",".join(
        f"{prefix}{first}" if first == last else f"{prefix}{first}-{end}{last}" for first, last in runs(cores)
    )
