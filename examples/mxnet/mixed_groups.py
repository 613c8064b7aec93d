"""Seed 000 FAQ: several models in one group and a single model in another (MXNet only).

NEURON_RT_NUM_CORES=6: model0 alone at mx.neuron(0) (NC0-1); models 1, 2, 3 at mx.neuron(2) (NC2-5).

# env: NCRT_INSTANCE_TYPE=inf1.6xlarge NEURON_RT_NUM_CORES=6
"""

from __future__ import annotations

import os
import tempfile
import warnings

os.environ.setdefault("NCRT_INSTANCE_TYPE", "inf1.6xlarge")
os.environ['NEURON_RT_NUM_CORES'] = '6'

import ncrt
import ncrt.compat  # noqa: F401 - mx.neuron, mx.contrib.neuron (and numpy.bool for MXNet 1.9.1)

from _seed_models import load_and_run  # noqa: E402


def main() -> None:
    with tempfile.TemporaryDirectory() as directory:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ncrt.ModelSwitchWarning)
            load_and_run(directory, [("model0", 2, 0), ("model1", 4, 2), ("model2", 4, 2), ("model3", 4, 2)])


if __name__ == "__main__":
    main()
