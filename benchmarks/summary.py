"""Print the summary table of every ratio the benchmarks recorded (``make bench`` ends with it).

Run: ``python benchmarks/summary.py FILE`` where FILE is the ``NCRT_BENCH_SUMMARY`` file the
benchmarks appended to. Exits 0 whether or not goals are met: the table says which are.
"""

from __future__ import annotations

import json
import sys


def main(path: str) -> int:
    try:
        with open(path, encoding="utf-8") as file:
            rows = [json.loads(line) for line in file if line.strip()]
    except FileNotFoundError:
        rows = []
    if not rows:
        print("no benchmark recorded a ratio")
        return 0
    width = max(len(f"{row['benchmark']}: {row['ratio']}") for row in rows)
    print()
    print("summary: every ratio measured in this run, against its goal")
    print(f"{'ratio'.ljust(width)}  {'value':>7}  {'goal':>6}  {'met':>4}  {'load':>5}  note")
    for row in rows:
        name = f"{row['benchmark']}: {row['ratio']}"
        met = "yes" if row["value"] >= row["goal"] else "NO"
        print(f"{name.ljust(width)}  {row['value']:>6.2f}x  {row['goal']:>5.2f}x  {met:>4}  {row['load']:>5.2f}  "
              f"{row['note']}")
    missed = sum(row["value"] < row["goal"] for row in rows)
    print(f"{len(rows) - missed} of {len(rows)} goals met (load: the 1-minute load average when measured)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else ""))
