"""A process that runs a small numpy model in a loop; the tools' tests watch it.

Prints ``READY <global cores>`` once its model is placed and has run once, then keeps
calling it from ``--threads`` threads until ``--seconds`` pass (or it is killed), and
prints ``DONE <calls> <errors>``.
"""

from __future__ import annotations

import argparse
import threading
import time

import numpy as np

import ncrt
import toolmodels


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", choices=("dense", "failing", "piped"), default="dense")
    parser.add_argument("--name", default=None)
    parser.add_argument("--replicas", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=60.0)
    return parser.parse_args()


def feed(model: ncrt.LoadedModel, batch: np.ndarray, deadline: float, counts: list[int]) -> None:
    while time.monotonic() < deadline:
        try:
            model(batch)
            counts[0] += 1
        except ncrt.errors.ExecutionError:
            counts[1] += 1


def main() -> None:
    args = parse_args()
    artifact = toolmodels.pipelined() if args.model == "piped" else getattr(toolmodels, args.model)
    model = ncrt.load(artifact, name=args.name or args.model, replicas=args.replicas)
    batch = np.ones((8, 32), dtype="float32")
    counts = [0, 0]
    feed(model, batch, time.monotonic() + 0.05, counts)
    cores = [ncrt.get_runtime().cores[index].global_index for index in model.cores]
    print("READY " + ",".join(map(str, cores)), flush=True)
    deadline = time.monotonic() + args.seconds
    threads = [threading.Thread(target=feed, args=(model, batch, deadline, counts)) for _ in range(args.threads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(f"DONE {counts[0]} {counts[1]}", flush=True)


if __name__ == "__main__":
    main()
