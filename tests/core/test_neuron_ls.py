"""``neuron-ls`` / ``ncrt ls --json-output``: the Neuron tool's JSON and table for emulated devices."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from ncrt.cli import main as ncrt_main
from ncrt.neuron_ls import GIB, device_records, devices, main as neuron_ls_main, render_table
from ncrt.reservation import Reservation
from ncrt.topology import build_topology

APP = Path(__file__).with_name("app.py")
NEURON_LS = Path(sys.executable).with_name("neuron-ls")
# The fields of a device object in `neuron-ls --json-output` (Neuron tools documentation,
# neuron-ls user guide; instance_type/instance_id as recent versions print them).
DEVICE_FIELDS = {"instance_type", "instance_id", "neuron_device", "bdf", "cpu_affinity", "numa_node",
                 "connected_to", "nc_count", "memory_size", "neuroncore_ids", "neuron_processes"}


def test_one_device_object_per_chip_with_its_cores():
    found = device_records(build_topology("inf1.6xlarge"))
    assert [device["neuron_device"] for device in found] == [0, 1, 2, 3]
    assert all(set(device) == DEVICE_FIELDS for device in found)
    assert [device["neuroncore_ids"] for device in found] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11], [12, 13, 14, 15]]
    assert sum(device["nc_count"] for device in found) == 16  # what Ray sums
    assert found[0]["connected_to"] == [1, 3] and found[2]["connected_to"] == [1, 3]
    assert found[1]["memory_size"] == 8 * GIB and found[3]["instance_type"] == "inf1.6xlarge"


def test_value_shapes_match_the_real_tool():
    (device,) = device_records(build_topology("trn1.2xlarge"))
    assert device["nc_count"] == 2 and device["neuroncore_ids"] == [0, 1]
    assert device["connected_to"] is None  # null on a one-device instance, as on trn1.2xlarge
    assert isinstance(device["numa_node"], str) and isinstance(device["memory_size"], int)
    assert device["memory_size"] == 32 * GIB and device["neuron_processes"] == []


def test_the_host_topology_is_one_device_of_every_cpu():
    topology = build_topology(None, cpus=(0, 1, 2))
    (device,) = device_records(topology)
    assert device["nc_count"] == 3 and device["cpu_affinity"] == "0-2" and device["instance_type"] == "host"
    assert device["memory_size"] > 0


@pytest.fixture
def start_app(python_env):
    processes = []

    def start(**env):
        process = subprocess.Popen([sys.executable, str(APP), "m:1"], env={**python_env, **env},
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        processes.append(process)
        assert process.stdout.readline().startswith("READY")
        return process

    yield start
    for process in processes:
        process.kill()
        process.wait()


@pytest.mark.slow
def test_processes_holding_a_devices_cores_are_listed_until_killed(start_app, isolated_runtime):
    env = {"NCRT_INSTANCE_TYPE": "inf1.6xlarge"}
    first = start_app(NEURON_RT_VISIBLE_CORES="2-5", **env)
    second = start_app(NEURON_RT_VISIBLE_CORES="6", **env)
    found = devices(build_topology("inf1.6xlarge"), isolated_runtime)
    pids = [[process["pid"] for process in device["neuron_processes"]] for device in found]
    assert pids == [[first.pid], [first.pid, second.pid], [], []]
    process = found[0]["neuron_processes"][0]
    assert "app.py" in process["command"] and process["neuron_runtime_version"].startswith("ncrt-")
    first.send_signal(signal.SIGKILL)
    first.wait()
    pids = [[process["pid"] for process in device["neuron_processes"]] for device in
            devices(build_topology("inf1.6xlarge"), isolated_runtime)]
    assert pids == [[], [second.pid], [], []]


def test_this_process_appears_once_per_device(isolated_runtime):
    topology = build_topology("inf1.xlarge")
    with Reservation.acquire(topology, visible=(1, 2), state_dir=isolated_runtime):
        (device,) = devices(topology, isolated_runtime)
    assert [process["pid"] for process in device["neuron_processes"]] == [os.getpid()]


@pytest.mark.slow
def test_console_script_and_ncrt_ls_print_the_same_json(python_env):
    env = {**python_env, "NCRT_INSTANCE_TYPE": "inf2.24xlarge"}
    script = subprocess.run([str(NEURON_LS), "--json-output"], env=env, capture_output=True, text=True, timeout=60)
    ls = subprocess.run([sys.executable, "-m", "ncrt", "ls", "--json-output"], env=env,
                        capture_output=True, text=True, timeout=60)
    assert script.returncode == 0 and ls.returncode == 0, script.stderr + ls.stderr
    assert json.loads(script.stdout) == json.loads(ls.stdout)
    assert [device["nc_count"] for device in json.loads(script.stdout)] == [2] * 6


def test_table_and_wide_table(isolated_runtime, capsys, monkeypatch):
    monkeypatch.setenv("NCRT_INSTANCE_TYPE", "inf1.6xlarge")
    topology = build_topology("inf1.6xlarge")
    with Reservation.acquire(topology, visible=(4,), state_dir=isolated_runtime):
        assert neuron_ls_main([]) == 0
        table = capsys.readouterr().out
        assert neuron_ls_main(["--wide"]) == 0
        wide = capsys.readouterr().out
    assert table.startswith("instance-type: inf1.6xlarge\n")
    assert "| 1      | 4      | 4-7      | 8 GB   | 0, 2      |" in table and str(os.getpid()) not in table
    assert "RUNTIME" in wide and f"| {os.getpid()} " in wide
    assert render_table(device_records(topology)).count("\n") == table.count("\n") - 1


def test_ncrt_ls_json_output_uses_the_ls_arguments(isolated_runtime, capsys):
    assert ncrt_main(["ls", "--json-output", "--instance-type", "trn1.32xlarge"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert len(found) == 16 and found[15]["neuroncore_ids"] == [30, 31] and found[15]["connected_to"] == [0, 14]


def test_an_unknown_instance_type_is_a_clear_error(monkeypatch, capsys):
    monkeypatch.setenv("NCRT_INSTANCE_TYPE", "inf9.xlarge")
    assert neuron_ls_main(["-j"]) == 1
    error = capsys.readouterr().err
    assert "NCRT_INSTANCE_TYPE='inf9.xlarge' is not valid" in error and "inf1.xlarge" in error
