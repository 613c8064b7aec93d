"""`make demo`: run every example scenario, then every benchmark in quick mode.

Each example states the environment it needs on a line ``# env: NAME=value ...``; it runs
in its own process with that environment and a private state directory, so it reserves
cores exactly as the seed scenario describes. Prints each example's placement output
and each benchmark's throughput figures, then a summary; exits non-zero on a failure.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENV_LINE = re.compile(r"^# env:(.*)$", re.MULTILINE)


def example_env(script: Path) -> dict[str, str]:
    """The variables an example's ``# env:`` line asks for."""
    match = ENV_LINE.search(script.read_text())
    pairs = shlex.split(match.group(1)) if match else []
    return dict(pair.split("=", 1) for pair in pairs)


def child_env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NEURON_RT_", "NEURONCORE_", "NCRT_"))}
    env.update(TF_CPP_MIN_LOG_LEVEL="2", PYTHONWARNINGS="ignore::DeprecationWarning")
    env["NCRT_STATE_DIR"] = tempfile.mkdtemp(prefix="ncrt-demo-")
    env.update(extra)
    return env


def run(label: str, command: list[str], env: dict[str, str], timeout: int) -> tuple[bool, float]:
    print(f"\n=== {label}", flush=True)
    started = time.monotonic()
    try:
        result = subprocess.run(command, env=env, cwd=ROOT, timeout=timeout)
        ok = result.returncode == 0
    except subprocess.TimeoutExpired:
        print(f"!!! {label}: timed out after {timeout} s")
        ok = False
    return ok, time.monotonic() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples-only", action="store_true")
    parser.add_argument("pattern", nargs="?", default="", help="run only paths containing this text")
    args = parser.parse_args(argv)
    jobs = [(str(p.relative_to(ROOT)), [sys.executable, str(p)], example_env(p), 300)
            for p in sorted(ROOT.glob("examples/*/*.py")) if not p.name.startswith("_")]
    if not args.examples_only:
        jobs += [(str(p.relative_to(ROOT)) + " --quick", [sys.executable, str(p), "--quick"], {}, 600)
                 for p in sorted(ROOT.glob("benchmarks/bench_*.py"))]
    results = [(label, *run(label, command, child_env(env), timeout))
               for label, command, env, timeout in jobs if args.pattern in label]
    print("\n=== summary")
    for label, ok, seconds in results:
        print(f"{'ok  ' if ok else 'FAIL'} {seconds:6.1f} s  {label}")
    failed = sum(not ok for _, ok, _ in results)
    print(f"{len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
