"""Fixtures for the MXNet plugin tests: small Gluon models compiled to 2, 4, 3 and 4 cores."""

from __future__ import annotations

import numpy as np
import pytest

import ncrt.plugins.mxnet  # noqa: E402,F401 - patches MXNet (numpy.bool) when it is imported

pytest.importorskip("mxnet")

from ncrt.adapters.mxnet import export_block  # noqa: E402
from ncrt.plugins.mxnet import enable  # noqa: E402

SEED_CORES = {"A": 2, "B": 4, "C": 3, "D": 4}


@pytest.fixture(scope="session")
def mx():
    return enable()


def build_checkpoint(mx, directory, name: str, cores: int | None, width: int = 16) -> str:
    """Export a small Dense/BatchNorm Gluon net; compile it for ``cores`` (None: uncompiled)."""
    from mxnet import gluon

    net = gluon.nn.HybridSequential(prefix=f"model{name}_")
    with net.name_scope():
        net.add(gluon.nn.Dense(width, activation="relu"), gluon.nn.BatchNorm(), gluon.nn.Dense(4))
    net.initialize(mx.init.Xavier(), force_reinit=True)
    example = mx.nd.array(np.random.default_rng(len(name)).random((2, 8)), dtype="float32")
    sym, args, aux = export_block(net, str(directory / f"plain_{name}"), example)
    if cores is not None:
        flags = ["--neuroncore-pipeline-cores", str(cores)]
        sym, args, aux = mx.contrib.neuron.compile(sym, args, aux, {"data": example}, flags=flags)
    prefix = str(directory / f"model{name}")
    mx.model.save_checkpoint(prefix, 0, sym, args, aux)
    return prefix


@pytest.fixture(scope="session")
def checkpoints(mx, tmp_path_factory):
    """Checkpoint prefixes of models A, B, C, D compiled to 2, 4, 3, 4 cores."""
    directory = tmp_path_factory.mktemp("mxnet_models")
    return {name: build_checkpoint(mx, directory, name, cores) for name, cores in SEED_CORES.items()}


@pytest.fixture
def batch(mx):
    return mx.nd.array(np.random.default_rng(7).random((3, 8)), dtype="float32")


def cpu_outputs(mx, prefix: str, batch) -> list[np.ndarray]:
    """The outputs of a plain CPU bind of the same checkpoint."""
    sym, args, aux = mx.model.load_checkpoint(prefix, 0)
    executor = sym.bind(mx.cpu(), args={**args, "data": batch}, aux_states=aux, grad_req="null")
    return [output.asnumpy() for output in executor.forward(is_train=False)]


def bind_at(mx, prefix: str, index: int):
    """The seed's code: load_checkpoint, then bind to ``mx.neuron(index)``."""
    sym, args, aux = mx.model.load_checkpoint(prefix, 0)
    return sym.bind(ctx=mx.neuron(index), args=args, aux_states=aux, grad_req="null")
