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
    print(f"{'ratio'.ljust(width)}  {'value':>8} {'goal':>8}  {'met':>4}  {'load':>5}  note")
    missed = 0
    for row in rows:
        name = f"{row['benchmark']}: {row['ratio']}"
        unit, at_most = row.get("unit", "x"), row.get("at_most", False)
        ok = row["value"] <= row["goal"] if at_most else row["value"] >= row["goal"]
        missed += not ok
        goal = f"{'<=' if at_most else '>='}{row['goal']:g}{unit}"
        print(f"{name.ljust(width)}  {row['value']:>6.2f}{unit:<2} {goal:>8}  {'yes' if ok else 'NO':>4}  "
              f"{row['load']:>5.2f}  {row['note']}")
    print(f"{len(rows) - missed} of {len(rows)} goals met (load: the 1-minute load average when measured)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else ""))
