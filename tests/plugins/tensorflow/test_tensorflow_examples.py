"""Every TensorFlow example runs (in its own process, with its ``# env:`` line) and prints its placement.

The examples start together (each imports TensorFlow, which takes seconds) with private
state directories, so their core reservations never collide; each test waits for one.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("tensorflow")

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "tensorflow"

EXPECTED = {
    "four_models_13_cores": ["model0 -> NC0-1", "model1 -> NC2-5", "model2 -> NC6-8", "model3 -> NC9-12"],
    "two_models_one_group": ["model0 -> NC0-1 (2 replicas)", "model1 -> NC0-1 (2 replicas)",
                             "shared group warned: True"],
    "auto_multicore": ["auto_multicore -> NC0-3 (4 replicas)", "tf-auto-multicore -> NC0-1 (2 replicas)",
                       "default replication -> NC0-3 (4 replicas)", "pipelined model refused"],
    "performance_tuning": ["batch 5 dynamic -> NC0-3 (4 replicas)", "pipeline 16 cores -> NC0-15 (1 replica)"],
}


def example_env(script: Path, state_dir: Path) -> dict[str, str]:
    """This process's environment without Neuron variables, plus the example's ``# env:`` line."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NEURON_", "NCRT_", "NEURONCORE_"))}
    env.update(NCRT_STATE_DIR=str(state_dir), TF_CPP_MIN_LOG_LEVEL="2")
    for line in script.read_text().splitlines():
        if line.startswith("# env:"):
            env.update(item.split("=", 1) for item in line[len("# env:"):].split())
    return env


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    started = {}
    for name in EXPECTED:
        script = EXAMPLES / f"{name}.py"
        env = example_env(script, tmp_path_factory.mktemp(f"state_{name}"))
        started[name] = subprocess.Popen([sys.executable, str(script)], env=env, text=True,
                                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    yield started
    for process in started.values():
        if process.poll() is None:
            process.kill()


def test_every_example_is_listed():
    assert sorted(p.stem for p in EXAMPLES.glob("*.py") if not p.stem.startswith("_")) == sorted(EXPECTED)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_prints_its_placement(runs, name):
    output, _ = runs[name].communicate(timeout=180)
    assert runs[name].returncode == 0, output
    for line in EXPECTED[name]:
        assert line in output, output
    text = (EXAMPLES / f"{name}.py").read_text()
    assert "def main()" in text and text.rstrip().endswith('main()') and "seeds/00" in text
