"""``ncrt ls`` and the runtime's reservation, with real application processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

APP = Path(__file__).with_name("app.py")


@pytest.fixture
def start_app(python_env):
    processes = []

    def start(*models, **env):
        process = subprocess.Popen(
            [sys.executable, str(APP), *models], env={**python_env, **env},
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        processes.append(process)
        line = process.stdout.readline().strip()
        return process, line

    yield start
    for process in processes:
        process.kill()
        process.wait()


def ncrt_ls(python_env, *args):
    result = subprocess.run([sys.executable, "-m", "ncrt", "ls", *args], env=python_env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.slow
def test_ls_shows_holders_and_their_models(start_app, python_env):
    env = {"NCRT_INSTANCE_TYPE": "inf1.6xlarge"}
    first, ready = start_app("resnet:2", "bert:1", NEURON_RT_NUM_CORES="3", **env)
    assert ready == "READY 0,1,2"
    second, ready = start_app("yolo:4", NEURON_RT_VISIBLE_CORES="8-11", **env)
    assert ready == "READY 8,9,10,11"
    rows = json.loads(ncrt_ls(python_env, "--json", "--instance-type", "inf1.6xlarge"))["cores"]
    by_index = {row["index"]: row for row in rows}
    assert [by_index[i]["pid"] for i in (0, 1, 2)] == [first.pid] * 3
    assert by_index[0]["models"] == ["resnet"] and by_index[2]["models"] == ["bert"]
    assert by_index[9]["pid"] == second.pid and by_index[9]["models"] == ["yolo"]
    assert "app.py" in by_index[9]["command"]
    assert by_index[5]["pid"] is None and by_index[5]["chip"] == 1
    text = ncrt_ls(python_env, "--instance-type", "inf1.6xlarge")
    assert "inf1.6xlarge: 16 NeuronCore(s) on 4 chip(s)" in text and "resnet" in text


@pytest.mark.slow
def test_seed_004_five_processes_of_three_then_a_sixth_fails(start_app):
    env = {"NCRT_INSTANCE_TYPE": "inf1.6xlarge", "NEURON_RT_NUM_CORES": "3"}
    holders = [start_app(**env) for _ in range(5)]
    reserved = [set(line.split()[1].split(",")) for _, line in holders]
    assert all(line.startswith("READY") for _, line in holders)
    assert len(set().union(*reserved)) == 15
    sixth, line = start_app(**env)
    assert line.startswith("FAIL NeuronCore(s) not available")
    assert "Available:1" in line and "nc15" in line and str(holders[0][0].pid) in line
    assert sixth.wait(30) == 3


@pytest.mark.slow
def test_a_killed_applications_cores_and_record_are_free_at_once(start_app, python_env):
    env = {"NCRT_INSTANCE_TYPE": "inf1.xlarge"}
    victim, ready = start_app("m:4", **env)
    assert ready == "READY 0,1,2,3"
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    rows = json.loads(ncrt_ls(python_env, "--json", "--instance-type", "inf1.xlarge"))["cores"]
    assert all(row["pid"] is None and row["models"] == [] for row in rows)
    _, ready = start_app(**env)
    assert ready == "READY 0,1,2,3"


def test_ls_lists_the_calling_process_models(runtime_env, capsys):
    from ncrt.cli import main

    runtime = runtime_env(NCRT_INSTANCE_TYPE="inf1.xlarge", NEURON_RT_NUM_CORES="2")
    runtime.load(lambda: 0, name="local-model")
    assert main(["ls", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["cores"]
    assert rows[0]["pid"] == os.getpid() and rows[0]["models"] == ["local-model"]
    assert rows[3]["pid"] is None
