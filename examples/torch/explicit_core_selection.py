"""torch-neuron core-placement guide, "Explicit Core Placement: Manual Core Selection".

With NEURON_RT_NUM_CORES=4, each model is loaded inside
``torch_neuron.experimental.neuron_cores_context(start)`` and goes to the cores from that
start, whatever the load order: models of 2, 3, 2 and 1 cores load to nc2-nc3, nc0-nc2,
nc0-nc1 and nc3 (they overlap on purpose: the guide shows placement, not a good layout).
# env: NCRT_INSTANCE_TYPE=inf1.6xlarge NEURON_RT_NUM_CORES=4
"""

from __future__ import annotations

import tempfile
import warnings

import ncrt
import ncrt.compat  # noqa: F401  (torch_neuron, torch.jit.load places models)
import torch
import torch_neuron

from _cnn import check, compile_and_save


def main() -> None:
    directory = tempfile.mkdtemp()
    files = {cores: compile_and_save(directory, f"model-with-{cores}-neuron-pipeline-cores", cores) for cores in (1, 2, 3)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ncrt.ModelSwitchWarning)  # the models overlap, as in the guide
        load_and_run(files)


def load_and_run(files: dict[int, str]) -> None:
    # NOTE: Order of loads does NOT matter
    with torch_neuron.experimental.neuron_cores_context(2):
        m1 = torch.jit.load(files[2])  # Loads to nc2-nc3
    with torch_neuron.experimental.neuron_cores_context(0):
        m2 = torch.jit.load(files[3])  # Loads to nc0-nc2
    with torch_neuron.experimental.neuron_cores_context(0):
        m0 = torch.jit.load(files[2])  # Loads to nc0-nc1
    with torch_neuron.experimental.neuron_cores_context(3):
        m3 = torch.jit.load(files[1])  # Loads to nc3

    for name, model in (("m0", m0), ("m1", m1), ("m2", m2), ("m3", m3)):
        check(model)
        print(f"{name} -> {model.placement_label}")


if __name__ == "__main__":
    main()
