"""Watch NeuronCore use across processes and tune a model: seed 000 (neuron-top) and seed 003.

Seed 000 identifies the NeuronCores each application uses with neuron-top; seed 003 tunes
batch size, replicas and feeding threads by experiment. This script starts a second
process holding 2 NeuronCores (NEURON_RT_NUM_CORES=2) running a model, loads two models of
its own into two groups of this process's cores, prints one frame of ``ncrt top --once``,
then runs a short ``ncrt bench`` sweep of a numpy model and writes its plot.

# env: NCRT_INSTANCE_TYPE=inf1.6xlarge NEURON_RT_NUM_CORES=4
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

import ncrt
from ncrt.cli import main as ncrt_main

WEIGHTS = np.random.default_rng(0).standard_normal((256, 256)).astype("float32")


def dense(x: np.ndarray) -> np.ndarray:
    """A 1-core numpy model: one dense layer with tanh."""
    return np.tanh(x @ WEIGHTS)


SIBLING = (
    "import time, numpy as np, ncrt\n"
    "model = ncrt.load(lambda x: np.tanh(x @ x.T), name='sibling')\n"
    "print('READY', flush=True)\n"
    "end = time.monotonic() + 30\n"
    "while time.monotonic() < end: model(np.ones((64, 64), dtype='float32'))\n"
)


def start_sibling() -> subprocess.Popen:
    env = dict(os.environ, NEURON_RT_NUM_CORES="2", NEURON_PROCESS_TAG="sibling-app")
    process = subprocess.Popen([sys.executable, "-c", SIBLING], env=env, stdout=subprocess.PIPE, text=True)
    process.stdout.readline()
    return process


def feed(model: ncrt.LoadedModel, seconds: float) -> None:
    batch = np.ones((16, 256), dtype="float32")
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        model(batch)


def main() -> None:
    sibling = start_sibling()
    try:
        model0 = ncrt.load(dense, name="model0", replicas=2)
        model1 = ncrt.load(dense, name="model1", replicas=2)
        for name, model in (("model0", model0), ("model1", model1)):
            print(f"{name} -> {model.placement.label}")
        feeders = [threading.Thread(target=feed, args=(m, 1.5)) for m in (model0, model1)]
        for thread in feeders:
            thread.start()
        time.sleep(1.0)
        ncrt_main(["top", "--once", "--width", "120", "--no-color"])
        for thread in feeders:
            thread.join()
    finally:
        sibling.kill()
        sibling.wait()
    plot = Path(tempfile.gettempdir()) / "ncrt-bench-example.png"
    ncrt.reset_runtime()
    ncrt_main(["bench", "top_and_bench:dense",
               "--input-shape", "256", "--duration", "0.3", "--batch-sizes", "16,64", "--replicas", "1,2,4",
               "--threads", "1,4", "--plot", str(plot)])


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
