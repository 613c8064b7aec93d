"""Fixtures for the tools' tests: worker processes running models, and the ncrt command."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


@pytest.fixture
def tools_env(python_env):
    """Subprocess environment: the test's state dir, inf1.6xlarge, these helpers importable."""
    env = dict(python_env)
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), env.get("PYTHONPATH", "")])
    env["NCRT_INSTANCE_TYPE"] = "inf1.6xlarge"
    env.pop("NEURON_PROCESS_TAG", None)
    return env


def wait_for_line(process: subprocess.Popen, prefix: str, timeout: float = 60.0) -> str:
    """The first stdout line starting with ``prefix`` (fails on exit or timeout)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if line.startswith(prefix):
            return line.strip()
        if not line and process.poll() is not None:
            raise AssertionError(f"worker exited ({process.returncode}): {process.stderr.read()}")
    raise AssertionError(f"no {prefix!r} line within {timeout} s")


@pytest.fixture
def start_worker(tools_env):
    """Start ``worker.py`` processes: ``start_worker(num_cores=2, tag="a", model="dense")``."""
    started: list[subprocess.Popen] = []

    def start(num_cores: int = 2, tag: str | None = None, **options: object) -> tuple[subprocess.Popen, list[int]]:
        env = dict(tools_env, NEURON_RT_NUM_CORES=str(num_cores))
        if tag:
            env["NEURON_PROCESS_TAG"] = tag
        argv = [sys.executable, str(HERE / "worker.py")]
        for key, value in options.items():
            argv += [f"--{key}", str(value)]
        process = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        started.append(process)
        cores = [int(c) for c in wait_for_line(process, "READY").split()[1].split(",")]
        return process, cores

    yield start
    for process in started:
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        process.stdout.close()
        process.stderr.close()


@pytest.fixture
def ncrt_command(tools_env):
    """Run ``python -m ncrt ARGS`` with the tools' environment; returns the CompletedProcess."""
    def run(*args: str, timeout: float = 120.0, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "ncrt", *args], env=dict(tools_env, **env),
                              capture_output=True, text=True, timeout=timeout)
    return run
