"""Helpers of the Ray tests: a node's environment, an actor, a writable ``/opt/aws/neuron/bin``.

Ray's workers import this module by name (``node_environment`` puts its folder on their
``PYTHONPATH``), so the actor class below is the same in the test and in the workers.

Ray runs ``/opt/aws/neuron/bin/neuron-ls``; a test must not write there on the host. The
command runs in a private user and mount namespace (``unshare``) where ``/opt`` is an
overlay over the real one, so ``ncrt ray link-neuron-ls`` (the documented step) can make
its link exactly where Ray looks, and the link vanishes with the namespace.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np

import ncrt
from ncrt.plugins import ray as neuron_ray

HERE = Path(__file__).resolve().parent

# What a Ray node's processes must not inherit from the test process.
_DROPPED_PREFIXES = ("NEURON_RT_", "NEURONCORE_", "NCRT_", "NEURON_MAX", "RAY_ADDRESS")


def node_environment(**extra: str) -> dict[str, str]:
    """This process's environment without Neuron/ncrt settings, plus ``extra``."""
    env = {name: value for name, value in os.environ.items() if not name.startswith(_DROPPED_PREFIXES)}
    path = os.pathsep.join(filter(None, [str(HERE), env.get("PYTHONPATH")]))
    env.update(PYTHONPATH=path, PYTHONWARNINGS="ignore::DeprecationWarning", **extra)
    return env


class CoreWorker:
    """An application process: its runtime reserves the cores Ray gave it; a model runs on them."""

    def __init__(self) -> None:
        weights = np.arange(16, dtype="float32").reshape(4, 4)
        self.model = ncrt.load(lambda x: x @ weights, name="matmul")

    def info(self) -> dict:
        return neuron_ray.describe_worker()

    def infer(self) -> list:
        return self.model(np.ones((2, 4), dtype="float32")).tolist()


SCRIPT = """
set -e
scratch=$(mktemp -d)
mkdir -p "$scratch/upper" "$scratch/work"
mount -t overlay overlay -o "lowerdir=/opt,upperdir=$scratch/upper,workdir=$scratch/work" /opt
exec "$@"
"""


def namespaced(command: list[str]) -> list[str]:
    """``command`` wrapped to run with a private, writable ``/opt``."""
    return ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", SCRIPT, "sh", *command]


@functools.lru_cache(maxsize=1)
def unavailable_reason() -> str | None:
    """Why namespaced commands cannot run here (None when they can)."""
    if shutil.which("unshare") is None:
        return "unshare (util-linux) is not installed"
    probe = subprocess.run(namespaced(["mkdir", "-p", "/opt/aws/neuron/bin"]), capture_output=True, text=True,
                           timeout=30)
    if probe.returncode != 0:
        return f"no private user+mount namespace with an overlay /opt here: {probe.stderr.strip()[:200]}"
    return None
