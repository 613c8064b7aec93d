"""Seed 000 (multiple models in one process group): NEURON_RT_NUM_CORES=2, two models at mx.neuron(0).

Both are loaded into NC0-1 and take turns there (model switches are counted).

# env: NCRT_INSTANCE_TYPE=inf1.6xlarge NEURON_RT_NUM_CORES=2
"""

from __future__ import annotations

import os
import tempfile
import warnings

os.environ.setdefault("NCRT_INSTANCE_TYPE", "inf1.6xlarge")
os.environ['NEURON_RT_NUM_CORES'] = '2'

import ncrt
import ncrt.compat  # noqa: F401 - mx.neuron, mx.contrib.neuron (and numpy.bool for MXNet 1.9.1)

from _seed_models import load_and_run  # noqa: E402


def main() -> None:
    with tempfile.TemporaryDirectory() as directory:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ncrt.ModelSwitchWarning)
            load_and_run(directory, [("model0", 2, 0), ("model1", 2, 0)])
        print(f"NC0 model switches: {ncrt.get_runtime().counters[0].model_switches}")


if __name__ == "__main__":
    main()
