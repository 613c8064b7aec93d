"""examples/migration: each legacy app, migrated with `ncrt migrate code`, proven with `ncrt migrate check`."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from ncrt.plugins.ncg.migrate_code import migrate_python

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "migration"
PLACEMENTS = {
    "mxnet_ncg": ["model0 -> NC0-1", "model1 -> NC2-5", "model2 -> NC6-8", "model3 -> NC9-12"],
    "torch_ncg": ["model0 -> NC0-1", "model1 -> NC2-5", "model2 -> NC6-8", "model3 -> NC9-12"],
    "tensorflow_4x1": ["model -> NC0-3 (4 replicas)"],
}
FRAMEWORKS = {"mxnet_ncg": "mxnet", "torch_ncg": "torch", "tensorflow_4x1": "tensorflow"}


def needs(framework: str):
    missing = importlib.util.find_spec(framework) is None
    return pytest.mark.skipif(missing, reason=f"{framework} is not installed")


PAIRS = [pytest.param(name, marks=[needs(FRAMEWORKS[name]), pytest.mark.slow]) for name in PLACEMENTS]


@pytest.mark.parametrize("name", list(PLACEMENTS))
def test_migrated_file_is_exactly_what_migrate_code_writes(name):
    legacy = (EXAMPLES / f"{name}_legacy.py").read_text()
    migration = migrate_python(f"{name}_legacy.py", legacy)
    assert migration.findings == []
    assert migration.rewritten == (EXAMPLES / f"{name}_migrated.py").read_text()
    assert "NEURONCORE_GROUP_SIZES'" not in migration.rewritten


@pytest.mark.parametrize("name", PAIRS)
def test_migrate_check_proves_the_same_placement(name, python_env):
    env = dict(python_env, NCRT_INSTANCE_TYPE="inf1.6xlarge", TF_CPP_MIN_LOG_LEVEL="2")
    migrated = f"{sys.executable} {EXAMPLES / f'{name}_migrated.py'}"
    result = subprocess.run(
        [sys.executable, "-m", "ncrt", "migrate", "check", "--migrated", migrated, "--",
         sys.executable, str(EXAMPLES / f"{name}_legacy.py")],
        env=env, capture_output=True, text=True, timeout=280,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    printed = [line for line in result.stdout.splitlines() if " -> " in line]
    assert printed == PLACEMENTS[name] * 2  # the legacy run, then the migrated run
    assert f"{len(PLACEMENTS[name])} model(s), 0 placed differently" in result.stdout
    assert "DeprecationWarning" not in result.stdout
