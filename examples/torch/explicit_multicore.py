"""torch-neuron core-placement guide, "Explicit Core Placement: Automatic Multicore".

With NEURON_RT_NUM_CORES=8, one ``torch.jit.load`` inside
``torch_neuron.experimental.multicore_context()`` replicates the model on nc0-nc7; calls
go round-robin to the replicas (here eight calls, one per core).
# env: NCRT_INSTANCE_TYPE=inf1.6xlarge NEURON_RT_NUM_CORES=8
"""

from __future__ import annotations

import tempfile

import ncrt
import ncrt.compat  # noqa: F401  (torch_neuron, torch.jit.load places models)
import torch
import torch_neuron

from _cnn import check, compile_and_save


def main() -> None:
    path = compile_and_save(tempfile.mkdtemp(), "model-with-1-neuron-pipeline-cores")
    with torch_neuron.experimental.multicore_context():
        m0 = torch.jit.load(path)  # Loads replications to nc0-nc7
    for _ in range(8):
        check(m0)
    print(f"m0 -> {m0.placement_label} ({len(m0.placed().replicas)} replicas)")
    print("executions per core:", [counter.executions for counter in ncrt.get_runtime().counters])


if __name__ == "__main__":
    main()
