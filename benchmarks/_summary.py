"""Ratios the benchmarks measured, collected for the one summary table ``make bench`` ends with.

A benchmark calls :func:`record` for every ratio it checks against a goal. When
``NCRT_BENCH_SUMMARY`` names a file (``make bench`` sets it), each record is appended
to it as one JSON line; ``python benchmarks/summary.py FILE`` prints the table.
"""

from __future__ import annotations

import json
import os


def record(benchmark: str, ratio_name: str, ratio: float, goal: float, note: str = "", *,
           unit: str = "x", at_most: bool = False) -> None:
    """Note that ``benchmark`` measured ``ratio`` for ``ratio_name``; the goal is at least
    ``goal`` (at most, with ``at_most``: a cost such as added microseconds, ``unit`` "us")."""
    path = os.environ.get("NCRT_BENCH_SUMMARY")
    if not path:
        return
    line = {"benchmark": benchmark, "ratio": ratio_name, "value": round(ratio, 3), "goal": goal,
            "unit": unit, "at_most": at_most, "note": note, "load": round(os.getloadavg()[0], 2)}
    with open(path, "a", encoding="utf-8") as file:
        file.write(json.dumps(line) + "\n")
