"""A small Neuron-style application: reserves cores from its environment, loads models, sleeps.

Usage: ``python app.py NAME:SIZE ...``; prints ``READY <global cores>`` once loaded, or
``FAIL <message>`` when the runtime refuses to start, then sleeps until killed.
"""

from __future__ import annotations

import sys
import time

import ncrt
from ncrt.errors import NcrtError


def main() -> None:
    try:
        runtime = ncrt.get_runtime()
    except NcrtError as error:
        print("FAIL", error, flush=True)
        sys.exit(3)
    for spec in sys.argv[1:]:
        name, _, size = spec.partition(":")
        model = ncrt.Model(name, "python", ncrt.Manifest("python", pipeline_cores=int(size or 1)), lambda: 0)
        runtime.place(model, ncrt.PlacementRequest(cores_per_replica=int(size or 1)))()
    print("READY", ",".join(str(c.global_index) for c in runtime.cores), flush=True)
    time.sleep(120)


if __name__ == "__main__":
    main()
