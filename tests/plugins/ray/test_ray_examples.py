"""Every examples/ray script runs against a real local Ray cluster and prints what it checked."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from ray_helpers import node_environment

pytestmark = pytest.mark.slow

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "ray"
CHECKED = ("serve_dataparallel.py", "two_nodes.py")
REFUSALS = ["refused: an actor asking for 5 neuron_cores cannot be placed: the largest node emulates 4",
            "refused: no node of the Ray cluster emulates inf2.xlarge"]


def run_example(name: str) -> str:
    result = subprocess.run([sys.executable, str(EXAMPLES / name)], env=node_environment(), cwd=EXAMPLES,
                            capture_output=True, text=True, timeout=420)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return result.stdout


def test_every_example_is_checked():
    assert sorted(CHECKED) == sorted(path.name for path in EXAMPLES.glob("*.py") if not path.name.startswith("_"))


def ls_rows(output: str) -> dict[int, tuple[int, str]]:
    """``ncrt ls`` rows of the output: core -> (pid, models)."""
    section = output.split("--- ncrt ls\n")[1].split("--- ncrt top")[0]
    rows = re.findall(r"^\s+(\d+)\s+\d+\s+\S+\s+(\d+)\s+(\S+)", section, flags=re.M)
    return {int(core): (int(pid), models) for core, pid, models in rows}


def test_serve_replicas_answer_http_with_the_models_outputs_on_their_own_cores():
    output = run_example("serve_dataparallel.py")
    assert "32 requests over HTTP from 127.0.0.1: every output equals the model's own" in output
    rows = ls_rows(output)
    assert sorted(rows) == [0, 1, 2, 3] and all("classifier" in models for _, models in rows.values())
    pids = {core: pid for core, (pid, _) in rows.items()}
    assert pids[0] == pids[1] != pids[2] == pids[3]  # two replicas, two NeuronCores each
    replicas = re.findall(r"^replica pid (\d+): NEURON_RT_VISIBLE_CORES=(\d),(\d) -> reserved nc(\d)-(\d)$",
                          output, flags=re.M)
    assert replicas, output
    for pid, first, second, low, high in replicas:
        assert (first, second) == (low, high) and pids[int(first)] == pids[int(second)] == int(pid)
    top = output.split("--- ncrt top --once\n")[1]
    assert re.search(rf"│ {pids[0]}\s+│ \S+\s+│ 0,1 ", top) and re.search(rf"│ {pids[2]}\s+│ \S+\s+│ 2,3 ", top)
    assert all(refusal in output for refusal in REFUSALS)


def test_two_nodes_each_hold_their_cores_and_a_killed_actors_core_goes_to_the_next():
    output = run_example("two_nodes.py")
    assert "8 actors on 2 nodes" in output
    nodes = re.findall(r"^node \d \(inf1\.xlarge, (\w+)\): (.*)$", output, flags=re.M)
    assert len(nodes) == 2
    pids = [re.findall(r"nc(\d): pid (\d+)", held) for _, held in nodes]
    assert all([core for core, _ in held] == ["0", "1", "2", "3"] for held in pids)
    assert len({pid for held in pids for _, pid in held}) == 8
    killed = re.search(r"^killed pid (\d+): nc(\d) of node (\w+) free after", output, flags=re.M)
    successor = re.search(r"^the next actor, pid (\d+), holds nc(\d) of node (\w+)$", output, flags=re.M)
    assert killed and successor, output
    assert successor.group(2, 3) == killed.group(2, 3) and successor.group(1) != killed.group(1)
    assert all(refusal in output for refusal in REFUSALS)
