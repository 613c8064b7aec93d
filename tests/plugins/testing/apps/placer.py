"""A Neuron-style application for the plugin's tests: loads models, runs them, prints placements.

``placer.py A B@2 Cx2`` loads model A on the next free core, B at FlexEG start core 2 and
C with 2 replicas, runs each once and prints ``<name> -> <label> global <cores>``. Options:
``--hold PATH`` prints ``READY`` once loaded and waits for PATH to exist before exiting;
``--exit N`` exits with status N after printing; ``--sleep S`` sleeps S seconds first.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import ncrt


def model(value: float):
    def run(x: float) -> float:
        return x + value
    return run


def load(spec: str, index: int) -> ncrt.LoadedModel:
    name, _, replicas = spec.partition("x")
    name, _, start = name.partition("@")
    return ncrt.load(model(index), name=name, start=int(start) if start else None, replicas=int(replicas or 1))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("models", nargs="*")
    parser.add_argument("--hold", type=Path)
    parser.add_argument("--exit", type=int, default=0)
    parser.add_argument("--sleep", type=float, default=0.0)
    args = parser.parse_args()
    time.sleep(args.sleep)
    print("compat installed:", "ncrt.compat" in sys.modules, flush=True)
    loaded = [load(spec, index) for index, spec in enumerate(args.models)]
    for index, item in enumerate(loaded):
        assert item(1.0) == 1.0 + index
        cores = [item.runtime.cores[core].global_index for core in item.cores]
        print(f"{item.name} -> {item.placement.label} global {cores}", flush=True)
    if args.hold is not None:
        print("READY", flush=True)
        while not args.hold.exists():
            time.sleep(0.02)
    return args.exit


if __name__ == "__main__":
    sys.exit(main())
