"""Helpers for the MXNet plugin tests: small Gluon models, CPU reference outputs, binds.

Named uniquely (not ``conftest``) so tests can import it whatever other conftest modules
pytest has loaded.
"""

from __future__ import annotations

import numpy as np

import ncrt.plugins.mxnet  # noqa: F401 - patches MXNet (numpy.bool) when it is imported
from ncrt.adapters.mxnet import export_block
from ncrt.plugins.mxnet import plain_bind

SEED_CORES = {"A": 2, "B": 4, "C": 3, "D": 4}


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


def cpu_outputs(mx, prefix: str, batch) -> list[np.ndarray]:
    """The outputs of MXNet's own CPU bind of the same checkpoint (plain_bind: not on ncrt cores)."""
    sym, args, aux = mx.model.load_checkpoint(prefix, 0)
    executor = plain_bind(sym, mx.cpu(), args={**args, "data": batch}, aux_states=aux, grad_req="null")
    return [output.asnumpy() for output in executor.forward(is_train=False)]


def bind_at(mx, prefix: str, index: int):
    """The seed's code: load_checkpoint, then bind to ``mx.neuron(index)``."""
    sym, args, aux = mx.model.load_checkpoint(prefix, 0)
    return sym.bind(ctx=mx.neuron(index), args=args, aux_states=aux, grad_req="null")
