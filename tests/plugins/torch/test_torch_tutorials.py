"""The torch-neuron tutorials, in their code shapes with small random models (no downloads).

Each script in ``tutorials/`` follows one official tutorial cell by cell (see its
docstring for what stands in for the downloads) and asserts as it goes; this test runs
them all in one interpreter (torch and transformers are imported once), each with the
environment of its ``# env:`` line and a fresh runtime, and checks what they print.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")  # the `tutorials` extra (part of `dev`)

TUTORIALS = Path(__file__).resolve().parent / "tutorials"

EXPECTED = {
    # aws-neuron-sdk src/examples/pytorch
    "resnet50.py": ["top-5 equal, model_neuron -> NC0", "model_neuron_parallel -> NC0-15",
                    "batch sizes 2-7 per core ran", "batch 5 per core on NC0-15; placed: ['NC0-15']"],
    "resnet50_partition.py": ["stages on NC0, NC1, NC2, NC3; one execution each per inference",
                              "torch.jit.trace of the partitioned model: same results"],
    "bert_pretrained.py": ["BERT says they are", "16 models on NC0..NC15, one per core",
                           "NeuronSimpleDataParallel, batch 6: 16 models, one per core"],
    "bert_shared_weights.py": ["one load on NC0-15: 16 replicas, every core ran; replicas hold 1x the weights "
                               "(shared weights on)"],
    "bert_pipeline.py": ["pipeline model on NC0-15: 60 inferences from 12 threads",
                         "data parallel: 16 loads on NC0..NC15, 64 inferences"],
    "bert_sagemaker_byoc.py": ["inference.py answered 2 requests; the model -> NC0"],
    "yolo_v4.py": ["builder: 5 of 21 operators for Neuron", "yolo_v4_neuron.pt -> NC0"],
    # aws-neuron-samples torch-neuron/inference
    "neuron_samples.py": ["vision: torch.load -> NeuronModule on NC0", "roberta: dynamic batch size ran",
                          "trocr: forward_neuron runs on", "gfl: exec(torch.load(...)) forward runs"],
    # developer guides (app notes)
    "app_notes.py": ["bucketing: buckets on NC0, NC1, NC2", "lstm: fixed-length and packed sequences"],
}

STDERR = {
    "bert_pipeline.py": ["INFO:Neuron:compiled batch size 1, --neuroncore-pipeline-cores 16"],
}

DRIVER = """
import os, runpy, sys, warnings
warnings.simplefilter("ignore")
import ncrt
sys.path.insert(0, TUTORIALS)
base, cwd = dict(os.environ), os.getcwd()
for name, assignments in zip(sys.argv[1::2], sys.argv[2::2]):
    os.environ.clear()
    os.environ.update(base)
    os.environ.update(dict(item.split("=", 1) for item in assignments.split()))
    ncrt.reset_runtime()
    print("=== " + name, flush=True)
    print("=== " + name, file=sys.stderr, flush=True)
    runpy.run_path(os.path.join(TUTORIALS, name), run_name="__main__")
    os.chdir(cwd)
"""


def tutorial_env(path: Path) -> dict[str, str]:
    line = next(line for line in path.read_text().splitlines() if line.startswith("# env:"))
    return dict(re.findall(r"(\w+)=(\S+)", line))


def test_every_tutorial_is_checked():
    assert sorted(EXPECTED) == sorted(p.name for p in TUTORIALS.glob("*.py") if not p.name.startswith("_"))


@pytest.fixture(scope="module")
def tutorial_outputs(tmp_path_factory) -> dict[str, tuple[str, str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NEURON", "NCRT_"))}
    env.update(NCRT_STATE_DIR=str(tmp_path_factory.mktemp("state")), PYTHONWARNINGS="ignore", USE_TF="0",
               TOKENIZERS_PARALLELISM="false")
    args = []
    for name in sorted(EXPECTED):
        args += [name, " ".join(f"{k}={v}" for k, v in tutorial_env(TUTORIALS / name).items())]
    code = DRIVER.replace("TUTORIALS", repr(str(TUTORIALS)))
    out = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-4000:]
    stdout = dict(zip(*[iter(re.split(r"^=== (\S+)$", out.stdout, flags=re.M)[1:])] * 2))
    stderr = dict(zip(*[iter(re.split(r"^=== (\S+)$", out.stderr, flags=re.M)[1:])] * 2))
    return {name: (stdout[name], stderr.get(name, "")) for name in stdout}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_tutorial_runs_in_its_code_shape(name, tutorial_outputs):
    stdout, stderr = tutorial_outputs[name]
    for expected in EXPECTED[name]:
        assert expected in stdout, stdout[-3000:]
    for expected in STDERR.get(name, []):
        assert expected in stderr, stderr[-3000:]
