"""Seed 000 with NeuronCore Groups: PyTorch models compiled for 2, 4, 3 and 4 cores, loaded in order.

torch_ncg_legacy.py is the Neuron Runtime 1.x application: NEURONCORE_GROUP_SIZES=2,4,3,4, and each
model loaded fills the next group. torch_ncg_migrated.py is exactly what ``ncrt migrate code``
makes of it: NEURON_RT_NUM_CORES=13, where each model takes the next free group of its size.
``ncrt migrate check`` proves that both place model0-3 on NC0-1, NC2-5, NC6-8 and NC9-12.

# env: NCRT_INSTANCE_TYPE=inf1.6xlarge
"""

from __future__ import annotations

import os

os.environ['NEURONCORE_GROUP_SIZES'] = '2,4,3,4'

from _models import quiet, torch_model, workdir  # noqa: E402


def main() -> None:
    quiet()
    import torch

    directory = workdir()
    compiled = [torch_model(directory, f"model{i}", cores) for i, cores in enumerate((2, 4, 3, 4))]
    models = [torch.jit.load(path) for _, path in compiled]  # each fills the next group
    inputs = torch.rand([1, 8])
    for index, (model, (reference, _)) in enumerate(zip(models, compiled)):
        with torch.no_grad():
            torch.testing.assert_close(model(inputs), reference(inputs))
        print(f"model{index} -> {model.placement_label}")


if __name__ == "__main__":
    main()
