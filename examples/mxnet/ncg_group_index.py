"""Seed 002 (migration from NeuronCore Groups): NEURONCORE_GROUP_SIZES=2,4,3,4, mx.neuron(i) is group i.

Models A, B, C, D at mx.neuron(0), (1), (2), (3) land on NC0-1, NC2-5, NC6-8, NC9-12: the same
layout FlexEG gives with start cores 0, 2, 6, 9. The legacy variable is deprecated (warned).

# env: NCRT_INSTANCE_TYPE=inf1.6xlarge NEURONCORE_GROUP_SIZES=2,4,3,4
"""

from __future__ import annotations

import os
import tempfile
import warnings

os.environ.setdefault("NCRT_INSTANCE_TYPE", "inf1.6xlarge")
os.environ['NEURONCORE_GROUP_SIZES'] = '2,4,3,4'

import ncrt
import ncrt.compat  # noqa: F401 - mx.neuron, mx.contrib.neuron (and numpy.bool for MXNet 1.9.1)

from _seed_models import load_and_run  # noqa: E402


def main() -> None:
    with tempfile.TemporaryDirectory() as directory:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            ncrt.get_runtime()
        load_and_run(directory, [("modelA", 2, 0), ("modelB", 4, 1), ("modelC", 3, 2), ("modelD", 4, 3)])


if __name__ == "__main__":
    main()
