"""Seed 002 (choosing the starting core): a 2-core model at mx.neuron(3) on an inf1.xlarge (4 cores) fails.

The error lists the valid start indexes (0, 1, 2); mx.neuron(2) then works.

# env: NCRT_INSTANCE_TYPE=inf1.xlarge
"""

from __future__ import annotations

import os
import tempfile

os.environ.setdefault("NCRT_INSTANCE_TYPE", "inf1.xlarge")

import ncrt
import ncrt.compat  # noqa: F401 - mx.neuron, mx.contrib.neuron (and numpy.bool for MXNet 1.9.1)
import mxnet as mx  # noqa: E402

from _seed_models import build_checkpoint, load_and_run  # noqa: E402


def main() -> None:
    with tempfile.TemporaryDirectory() as directory:
        prefix = build_checkpoint(directory, "modelX", 2)
        sym, args, aux = mx.model.load_checkpoint(prefix, 0)
        try:
            sym.bind(ctx=mx.neuron(3), args=args, aux_states=aux, grad_req="null")
        except ncrt.errors.PlacementError as error:
            print(f"mx.neuron(3) failed: {error}")
        load_and_run(directory, [("modelX", 2, 2)])


if __name__ == "__main__":
    main()
