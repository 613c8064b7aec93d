"""Models freed by the application are unloaded, and DataParallel takes a loaded model over.

On Neuron, a model the framework frees is unloaded from its cores. Three ``torch.jit.load``s
of one file, each deleted before the next, all load to NC0 (no model-switch warning names a
dead model). ``torch.neuron.DataParallel(torch.jit.load(path))`` places the model once, on
the DataParallel's cores, not a second time on NC0.
# env: NCRT_INSTANCE_TYPE=inf1.xlarge
"""

from __future__ import annotations

import gc
import tempfile
import warnings

import ncrt
import ncrt.compat  # noqa: F401  (torch.neuron, torch.jit.load places models)
import torch
import torch_neuron  # noqa: F401

from _cnn import check, compile_and_save


def placed() -> list[str]:
    return [model.placement.label for model in ncrt.get_runtime().models]


def main() -> None:
    path = compile_and_save(tempfile.mkdtemp(), "model")
    with warnings.catch_warnings():
        warnings.simplefilter("error", ncrt.ModelSwitchWarning)  # none is expected
        run(path)


def run(path: str) -> None:
    for attempt in range(3):
        model = torch.jit.load(path)
        check(model)
        print(f"load {attempt} -> {model.placement_label}")
        del model
        gc.collect()
    model = torch.jit.load(path)
    model_parallel = torch.neuron.DataParallel(model)
    model_parallel(torch.rand([5, 3, 32, 32]))
    print(f"DataParallel over a loaded model: placed {placed()}")
    del model, model_parallel
    gc.collect()
    print(f"after both are freed: placed {placed()}")


if __name__ == "__main__":
    main()
