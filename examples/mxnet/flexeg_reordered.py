"""Seed 002 (FlexEG): the same four models in another layout, without restarting anything:
C at mx.neuron(0), A at mx.neuron(3), D at mx.neuron(5), B at mx.neuron(9).

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
        load_and_run(directory, [("modelC", 3, 0), ("modelA", 2, 3), ("modelD", 4, 5), ("modelB", 4, 9)])


if __name__ == "__main__":
    main()
