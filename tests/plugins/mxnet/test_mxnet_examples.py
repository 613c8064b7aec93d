"""Every MXNet example runs (with the env of its ``# env:`` line) and prints its placement."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import ncrt.plugins.mxnet  # noqa: F401 - patches MXNet (numpy.bool) when it is imported

pytest.importorskip("mxnet")

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "mxnet"

EXPECTED = {
    "flexeg_four_models.py": ["modelA -> NC0-1", "modelB -> NC2-5", "modelC -> NC6-8", "modelD -> NC9-12",
                              "model switches: 0"],
    "flexeg_reordered.py": ["modelC -> NC0-2", "modelA -> NC3-4", "modelD -> NC5-8", "modelB -> NC9-12"],
    "flexeg_shared_core.py": ["modelC -> NC5-7", "shares NeuronCores with modelB", "NC5 model switches: 5"],
    "flexeg_invalid_start.py": ["valid start indexes: 0, 1, 2", "modelX -> NC2-3"],
    "num_cores_four_groups.py": ["model3 -> NC9-12", "process cores: 13"],
    "two_models_one_group.py": ["model0 -> NC0-1", "model1 -> NC0-1", "NC0 model switches: 1"],
    "mixed_groups.py": ["model0 -> NC0-1", "model1 -> NC2-5", "model2 -> NC2-5", "model3 -> NC2-5"],
    "ncg_group_index.py": ["modelA -> NC0-1", "modelB -> NC2-5", "modelC -> NC6-8", "modelD -> NC9-12"],
}


def example_env(path, base: dict[str, str]) -> dict[str, str]:
    """``base`` plus the variables of the example's ``# env:`` line."""
    line = re.search(r"^# env: (.*)$", path.read_text(), re.MULTILINE)
    assert line, f"{path.name} has no '# env:' line"
    return {**base, **dict(item.split("=", 1) for item in line.group(1).split())}


def test_every_example_is_covered():
    assert sorted(p.name for p in EXAMPLES.glob("*.py") if not p.name.startswith("_")) == sorted(EXPECTED)


@pytest.fixture(scope="module")
def example_runs(tmp_path_factory) -> dict[str, subprocess.CompletedProcess]:
    """Run every example at once (each in its own process with its env); collect the results."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("NEURON", "NCRT_"))}
    processes = {}
    for name in sorted(EXPECTED):  # a state dir each: every example reserves all its cores
        env = {**example_env(EXAMPLES / name, base), "NCRT_STATE_DIR": str(tmp_path_factory.mktemp("state"))}
        processes[name] = subprocess.Popen([sys.executable, str(EXAMPLES / name)], env=env,
                                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return {name: subprocess.CompletedProcess(p.args, p.wait(timeout=240), *p.communicate())
            for name, p in processes.items()}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example(name, example_runs):
    result = example_runs[name]
    assert result.returncode == 0, result.stderr[-2000:]
    assert "outputs match a CPU bind" in result.stdout
    for expected in EXPECTED[name]:
        assert expected in result.stdout, result.stdout
