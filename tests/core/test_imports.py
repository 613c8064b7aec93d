"""``import ncrt`` (and every plugin module, and the CLI) imports no framework."""

from __future__ import annotations

import subprocess
import sys

FRAMEWORKS = ("torch", "tensorflow", "mxnet", "keras", "jax", "ray")

PROBE = f"""
import sys
import ncrt, ncrt.cli, ncrt.compat
from ncrt.manager import DEFAULT_PLUGINS
import importlib, importlib.util
for _, module in DEFAULT_PLUGINS:
    if importlib.util.find_spec(module):
        importlib.import_module(module)
ncrt.cli.build_parser()
loaded = sorted(m for m in {FRAMEWORKS!r} if m in sys.modules)
print("LOADED", loaded)
"""


def test_importing_ncrt_and_its_plugins_imports_no_framework():
    result = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "LOADED []" in result.stdout


def test_python_dash_m_ncrt_is_the_command():
    result = subprocess.run([sys.executable, "-m", "ncrt", "--version"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.startswith("ncrt ")
