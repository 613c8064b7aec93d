"""Seed 000 "Running multiple models using multiple processes" (PyTorch).

Two processes run with NEURON_RT_NUM_CORES=2 each, at the same time: the first takes
the first two free cores, the second the next two. Each loads a model and prints where
it went, in per-process (NC0) and global (nc0 / nc2) terms: one copy per load, on the
process's first free core.
# env: NCRT_INSTANCE_TYPE=inf1.xlarge
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile


def child(model_file: str) -> None:
    """One application process: load the model, run it, report, hold the cores until told."""
    import ncrt
    import ncrt.compat  # noqa: F401
    import torch
    from ncrt.config import format_nc_range

    model0 = torch.jit.load(model_file)
    model0(torch.rand([1, 3, 32, 32]))
    global_cores = [ncrt.get_runtime().cores[index].global_index for index in model0.placed().cores]
    cores = ncrt.get_runtime().cores
    held = f"nc{cores[0].global_index}-nc{cores[-1].global_index}"
    print(f"pid {os.getpid()}: model0 -> {model0.placement_label} (global {format_nc_range(global_cores)}; "
          f"the process holds {held})", flush=True)
    sys.stdin.readline()  # keep the cores reserved until the parent says so


def compile_model(directory: str) -> str:
    import ncrt.compat  # noqa: F401
    import torch
    import torch_neuron  # noqa: F401

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                                torch.nn.Flatten(), torch.nn.Linear(8, 10)).eval()
    path = os.path.join(directory, "model.pt")
    torch.jit.save(torch.neuron.trace(model, torch.rand([1, 3, 32, 32])), path)
    return path


def main() -> None:
    model_file = compile_model(tempfile.mkdtemp())
    env = dict(os.environ, NEURON_RT_NUM_CORES="2", PYTHONWARNINGS="ignore")
    processes = []
    for _ in range(2):
        process = subprocess.Popen([sys.executable, __file__, "--child", model_file], env=env,
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        print(process.stdout.readline().strip(), flush=True)
        processes.append(process)
    for process in processes:
        process.communicate("done\n")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        child(sys.argv[2])
    else:
        main()
