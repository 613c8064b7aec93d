"""torch-neuron core-placement guide, "Explicit Core Placement: Explicit Replication".

With NEURON_RT_NUM_CORES=8, a model compiled for 2 cores loaded inside
``neuron_cores_context(start_nc=2, nc_count=4)`` is replicated floor(4 / 2) = 2 times,
on nc2-nc3 and nc4-nc5.
# env: NCRT_INSTANCE_TYPE=inf1.6xlarge NEURON_RT_NUM_CORES=8
"""

from __future__ import annotations

import tempfile

import ncrt.compat  # noqa: F401  (torch_neuron, torch.jit.load places models)
import torch
import torch_neuron

from _cnn import check, compile_and_save


def main() -> None:
    path = compile_and_save(tempfile.mkdtemp(), "model-with-2-neuron-pipeline-cores", 2)
    with torch_neuron.experimental.neuron_cores_context(start_nc=2, nc_count=4):
        m0 = torch.jit.load(path)  # Loads replications to nc2-nc5
    check(m0)
    replicas = ", ".join(f"NC{r[0]}-{r[-1]}" for r in m0.placed().placement.replicas)
    print(f"m0 -> {m0.placement_label} (replicas {replicas})")


if __name__ == "__main__":
    main()
