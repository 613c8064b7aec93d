"""The tools example runs as a script with the env its ``# env:`` line names."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "tools" / "top_and_bench.py"


@pytest.mark.slow
def test_top_and_bench_example(python_env, tmp_path):
    env_line = re.search(r"^# env:(.*)$", EXAMPLE.read_text(), re.MULTILINE).group(1)
    env = dict(python_env, **dict(pair.split("=", 1) for pair in shlex.split(env_line)))
    env["TMPDIR"] = str(tmp_path)
    result = subprocess.run([sys.executable, str(EXAMPLE)], env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr
    assert "model0 -> NC0-1\nmodel1 -> NC2-3\n" in result.stdout
    assert "sibling-app" in result.stdout and "model0@NC0-1, model1@NC2-3" in result.stdout
    assert "best throughput: b" in result.stdout
    assert (tmp_path / "ncrt-bench-example.png").read_bytes()[:4] == b"\x89PNG"
