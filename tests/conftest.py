"""Shared fixtures: every test gets its own state directory and a fresh runtime."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

import ncrt

# pytester tests the pytest plugin (tests/plugins/testing); pytest accepts pytest_plugins only
# in a top-level conftest, and pytester does nothing for tests that do not ask for it.
pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parents[1]

_RUNTIME_VARIABLES = [
    name for name in os.environ
    if name.startswith(("NEURON_RT_", "NCRT_", "NEURONCORE_", "NEURON_MAX"))
]


@pytest.fixture(autouse=True)
def isolated_runtime(request, tmp_path_factory, monkeypatch):
    """No inherited Neuron variables, a private state dir, no runtime left behind.

    A test with the ``neuron`` marker gets all of that from the ncrt pytest plugin instead.
    """
    if request.node.get_closest_marker("neuron") is not None:
        yield Path(os.environ["NCRT_STATE_DIR"])
        return
    for name in _RUNTIME_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    state_dir = tmp_path_factory.mktemp("state")
    monkeypatch.setenv("NCRT_STATE_DIR", str(state_dir))
    ncrt.reset_runtime()
    yield state_dir
    ncrt.reset_runtime()


@pytest.fixture
def runtime_env(monkeypatch):
    """Set runtime variables and get a fresh runtime: ``runtime_env(NEURON_RT_NUM_CORES="2")``."""
    def make(**variables: str) -> ncrt.Runtime:
        for name, value in variables.items():
            monkeypatch.setenv(name, value)
        ncrt.reset_runtime()
        return ncrt.get_runtime()
    return make


@pytest.fixture
def python_env(isolated_runtime):
    """Environment for subprocesses: this interpreter's, plus the test's state dir."""
    env = {k: v for k, v in os.environ.items()}
    env["NCRT_STATE_DIR"] = str(isolated_runtime)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "tests"), env.get("PYTHONPATH")]))
    return env


@pytest.fixture
def python():
    return sys.executable
