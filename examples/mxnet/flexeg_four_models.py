"""Seed 002 (FlexEG): models A, B, C, D compiled to 2, 4, 3, 4 cores at mx.neuron(0), (2), (6), (9).

No two models share a NeuronCore, so all four can run in parallel.

# env: NCRT_INSTANCE_TYPE=inf1.6xlarge
"""

from __future__ import annotations

import os
import tempfile

os.environ.setdefault("NCRT_INSTANCE_TYPE", "inf1.6xlarge")

import ncrt
import ncrt.compat  # noqa: F401 - mx.neuron, mx.contrib.neuron (and numpy.bool for MXNet 1.9.1)

from _seed_models import load_and_run  # noqa: E402


def main() -> None:
    with tempfile.TemporaryDirectory() as directory:
        load_and_run(directory, [("modelA", 2, 0), ("modelB", 4, 2), ("modelC", 3, 6), ("modelD", 4, 9)])
        print("model switches:", sum(c.model_switches for c in ncrt.get_runtime().counters))


if __name__ == "__main__":
    main()
