"""The auto multicore replication CLI: ``tf-neuron-auto-multicore`` and ``ncrt tf-auto-multicore``.

``tf-neuron-auto-multicore MODEL_DIR --num_cores N --new_model_dir NEW_MODEL_DIR`` (the
auto-replication API page) is installed as a console script of its own; ``ncrt
tf-auto-multicore`` is the same command under ``ncrt``. Both copy an ncrt-compiled
SavedModel and record N in its manifest: loading the copy replicates it on N cores.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from ncrt.errors import NcrtError

from .parallel import write_auto_multicore

__all__ = ["add_auto_multicore_arguments", "main", "run_auto_multicore"]

PROGRAM = "tf-neuron-auto-multicore"


def add_auto_multicore_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model_dir", help="an ncrt-compiled SavedModel directory (pipeline size 1)")
    parser.add_argument("--num_cores", type=int, required=True, help="cores to replicate the model on")
    parser.add_argument("--new_model_dir", required=True, help="where to write the replicating SavedModel")


def run_auto_multicore(args: argparse.Namespace) -> int:
    write_auto_multicore(args.model_dir, args.new_model_dir, args.num_cores)
    print(f"wrote {args.new_model_dir}: replicates itself on {args.num_cores} NeuronCore(s) when loaded")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``tf-neuron-auto-multicore``: exit 0 on success, 1 with the error on stderr, 2 for bad usage."""
    parser = argparse.ArgumentParser(
        prog=PROGRAM, description="Write a TensorFlow SavedModel that replicates itself on N NeuronCores when loaded."
    )
    add_auto_multicore_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run_auto_multicore(args)
    except NcrtError as error:
        print(f"{PROGRAM}: {error}", file=sys.stderr)
        return 1
