"""The built wheel holds every module of the three mapped folders (STYLE.md's pitfall:
a subpackage missing from ``packages`` still imports in a lenient editable install)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FOLDERS = {"core": "ncrt", "plugins": "ncrt/plugins", "adapters": "ncrt/adapters"}


def source_modules() -> set[str]:
    found = set()
    for folder, package in FOLDERS.items():
        for path in (REPO / folder).rglob("*.py"):
            relative = path.relative_to(REPO / folder).as_posix()
            if "__pycache__" not in relative:
                found.add(f"{package}/{relative}")
    return found


@pytest.mark.slow
def test_the_wheel_contains_every_module(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), str(REPO)],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    wheel = next(tmp_path.glob("ncrt-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = sorted(source_modules() - names)
    assert not missing, f"modules missing from the wheel: {missing}"
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "ncrt = ncrt.cli:main" in text
    assert "neuron-ls = ncrt.neuron_ls:main" in text
    assert "[pytest11]\nncrt = ncrt.plugins.testing.plugin" in text
    assert "tf-neuron-auto-multicore = ncrt.plugins.tensorflow.commands:main" in text
