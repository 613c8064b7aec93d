"""The torch-neuron module names under ``import ncrt.compat``: torch.load, torch.neuron, experimental.

Run in a subprocess: compat patches ``torch.load`` and ``torch.jit.load`` for the whole process.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

torch = pytest.importorskip("torch")

from ncrt.plugins import torch as neuron  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

SCRIPT = """
import io, warnings
warnings.simplefilter("ignore", DeprecationWarning)
import ncrt.compat
import torch
import torch.neuron                      # the BERT tutorial's import
import torch.neuron as torch_neuron      # the shared-weights tutorial's alias
import torch_neuron.experimental
from torch_neuron.experimental import neuron_cores_context, multicore_context

def show(label, value):
    print(label, value, flush=True)

show("experimental", torch.neuron.experimental is torch_neuron.experimental is __import__("sys").modules["torch_neuron.experimental"])
show("names", sorted(n for n in dir(torch.neuron.experimental) if not n.startswith("_")))
show("available", torch.neuron.is_available())
show("optimization", torch.neuron.Optimization.FLOAT32_TO_FLOAT16.name)

loaded = torch.load(NCRT)                                    # 12 aws-neuron-samples notebooks reload this way
show("torch.load", type(loaded).__name__ + " " + loaded.placement_label + " " + str(tuple(loaded(torch.rand(1, 3, 8, 8)).shape)))
with open(NCRT, "rb") as f:
    show("file object", torch.load(f).placement_label)
show("weights_only=False", torch.load(NCRT, weights_only=False).placement_label)
with neuron_cores_context(start_nc=2, nc_count=2):
    show("in context", torch.load(NCRT, map_location="cpu").placement_label)
try:
    torch.load(NCRT, weights_only=True)
except RuntimeError as error:
    show("weights_only=True", "refused: " + str(error)[:40])
try:
    torch.load(PLAIN)
except Exception as error:
    show("plain TorchScript", type(error).__name__ + ": " + str(error)[:50])
show("plain TorchScript, weights_only=False", type(torch.load(PLAIN, weights_only=False)).__name__)
show("state dict", sorted(torch.load(STATE)))
show("saved text", torch.load(TEXT))
neuron_model = torch.neuron.trace(torch.nn.Linear(4, 2).eval(), torch.rand(1, 4), verbose=1)
"""


@pytest.mark.slow
def test_compat_names_and_torch_load(cnn, tmp_path, python_env):
    ncrt_path, plain_path = str(tmp_path / "neuron.pt"), str(tmp_path / "plain.pt")
    state_path, text_path = str(tmp_path / "state.pt"), str(tmp_path / "text.pt")
    torch.jit.save(neuron.trace(cnn, torch.rand(1, 3, 8, 8)), ncrt_path)
    torch.jit.save(torch.jit.trace(cnn, torch.rand(1, 3, 8, 8)), plain_path)
    torch.save(cnn.state_dict(), state_path)
    torch.save("print('forward')", text_path)  # the GFL sample's exec(torch.load('model_forward.pt'))
    code = textwrap.dedent(SCRIPT)
    for name, value in (("NCRT", ncrt_path), ("PLAIN", plain_path), ("STATE", state_path), ("TEXT", text_path)):
        code = code.replace(name, repr(value))
    python_env["NCRT_INSTANCE_TYPE"] = "inf1.xlarge"
    out = subprocess.run([sys.executable, "-c", code], env=python_env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[:4] == [
        "experimental True",
        "names ['multicore_context', 'neuron_cores_context', 'set_multicore', 'set_neuron_cores']",
        "available True",
        "optimization FLOAT32_TO_FLOAT16",
    ]
    assert lines[4] == "torch.load NeuronModule NC0 (1, 5)"
    # each of these is freed at once (not kept), so the next load reuses NC1
    assert lines[5:8] == ["file object NC1", "weights_only=False NC1", "in context NC2-3"]
    assert lines[8].startswith("weights_only=True refused: Cannot use ``weights_only=True``")
    assert lines[9].startswith("plain TorchScript RuntimeError: Cannot use ``weights_only=True``")  # as torch does
    assert lines[10] == "plain TorchScript, weights_only=False RecursiveScriptModule"
    assert lines[11] == f"state dict {sorted(cnn.state_dict())}"
    assert lines[12] == "saved text print('forward')"
    assert "INFO:Neuron:ncrt traced Linear: 1 operator(s) of 1 kind(s)" in out.stderr  # verbose, no logging set up
