"""Fixtures for the MXNet plugin tests: small Gluon models compiled to 2, 4, 3 and 4 cores."""

from __future__ import annotations

import numpy as np
import pytest

import ncrt.plugins.mxnet  # noqa: E402,F401 - patches MXNet (numpy.bool) when it is imported

pytest.importorskip("mxnet")

from mxnet_models import SEED_CORES, build_checkpoint  # noqa: E402
from ncrt.plugins.mxnet import enable  # noqa: E402


@pytest.fixture(scope="session")
def mx():
    return enable()


@pytest.fixture(scope="session")
def checkpoints(mx, tmp_path_factory):
    """Checkpoint prefixes of models A, B, C, D compiled to 2, 4, 3, 4 cores."""
    directory = tmp_path_factory.mktemp("mxnet_models")
    return {name: build_checkpoint(mx, directory, name, cores) for name, cores in SEED_CORES.items()}


@pytest.fixture
def batch(mx):
    return mx.nd.array(np.random.default_rng(7).random((3, 8)), dtype="float32")


