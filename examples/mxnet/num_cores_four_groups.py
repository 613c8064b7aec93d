"""Seed 000 ('For MXNet 2.x'): NEURON_RT_NUM_CORES=13 and four models at mx.neuron(0), (2), (6), (9).

# env: NCRT_INSTANCE_TYPE=inf1.6xlarge NEURON_RT_NUM_CORES=13
"""

from __future__ import annotations

import os
import tempfile

os.environ.setdefault("NCRT_INSTANCE_TYPE", "inf1.6xlarge")
os.environ['NEURON_RT_NUM_CORES'] = '13'

import ncrt
import ncrt.compat  # noqa: F401 - mx.neuron, mx.contrib.neuron (and numpy.bool for MXNet 1.9.1)

from _seed_models import load_and_run  # noqa: E402


def main() -> None:
    with tempfile.TemporaryDirectory() as directory:
        load_and_run(directory, [("model0", 2, 0), ("model1", 4, 2), ("model2", 3, 6), ("model3", 4, 9)])
        print(f"process cores: {len(ncrt.get_runtime().cores)}")


if __name__ == "__main__":
    main()
