"""Seed 002 (FlexEG, 'not a good configuration'): A at mx.neuron(0), B at (2), C at (5), D at (9).

B (NC2-5) and C (NC5-7) share NC5: loading warns (ncrt.ModelSwitchWarning), they cannot
run in parallel, and every change between them on NC5 is a counted model switch.

# env: NCRT_INSTANCE_TYPE=inf1.6xlarge
"""

from __future__ import annotations

import os
import tempfile
import warnings

os.environ.setdefault("NCRT_INSTANCE_TYPE", "inf1.6xlarge")

import ncrt
import ncrt.compat  # noqa: F401 - mx.neuron, mx.contrib.neuron (and numpy.bool for MXNet 1.9.1)
import mxnet as mx  # noqa: E402

from _seed_models import load_and_run  # noqa: E402


def main() -> None:
    with tempfile.TemporaryDirectory() as directory:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ncrt.ModelSwitchWarning)
            bound = load_and_run(directory, [("modelA", 2, 0), ("modelB", 4, 2), ("modelC", 3, 5), ("modelD", 4, 9)])
        for warning in caught:
            print(f"warning: {warning.message}")
        inputs = mx.nd.ones((4, 16))
        for name in ("modelB", "modelC", "modelB", "modelC"):
            bound[name].forward(data=inputs)
        print(f"NC5 model switches: {ncrt.get_runtime().counters[5].model_switches}")


if __name__ == "__main__":
    main()
