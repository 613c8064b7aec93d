"""The models of the MXNet seed examples: small Gluon nets exported as compiled checkpoints.

Shared by the scripts beside it (each sets its environment before importing this).
"""

from __future__ import annotations

import os

import numpy as np

import ncrt.compat  # noqa: F401 - mx.neuron, mx.contrib.neuron (and numpy.bool for MXNet 1.9.1)
import mxnet as mx  # noqa: E402
from mxnet import gluon  # noqa: E402

from ncrt.adapters.mxnet import export_block  # noqa: E402
from ncrt.plugins.mxnet import plain_bind  # noqa: E402


def build_checkpoint(directory: str, name: str, cores: int) -> str:
    """Export a small Gluon net as checkpoint ``name``, compiled for ``cores`` NeuronCores."""
    net = gluon.nn.HybridSequential(prefix=f"{name}_")
    with net.name_scope():
        net.add(gluon.nn.Dense(32, activation="relu"), gluon.nn.Dense(4))
    net.initialize(mx.init.Xavier())
    example = mx.nd.ones((1, 16))
    sym, args, aux = export_block(net, os.path.join(directory, f"{name}-plain"), example)
    flags = ["--neuroncore-pipeline-cores", str(cores)]
    sym, args, aux = mx.contrib.neuron.compile(sym, args, aux, {"data": example}, flags=flags)
    mx.model.save_checkpoint(os.path.join(directory, name), 0, sym, args, aux)
    return os.path.join(directory, name)


def check_against_cpu(prefix: str, outputs: list, inputs) -> None:
    """The neuron outputs equal MXNet's own CPU bind of the same checkpoint (plain_bind: a compiled
    symbol bound to mx.cpu() would run on ncrt cores, as under mx-neuron)."""
    sym, args, aux = mx.model.load_checkpoint(prefix, 0)
    reference = plain_bind(sym, mx.cpu(), args={**args, "data": inputs}, aux_states=aux, grad_req="null").forward()
    np.testing.assert_allclose(outputs[0].asnumpy(), reference[0].asnumpy(), rtol=1e-5, atol=1e-6)


def load_and_run(directory: str, models: list[tuple[str, int, int]]) -> dict:
    """Compile, load with ``mx.neuron(index)`` as the seed does, run, print the placement."""
    inputs = mx.nd.random.uniform(shape=(4, 16))
    bound = {}
    for name, cores, index in models:
        prefix = build_checkpoint(directory, name, cores)
        sym, args, aux = mx.model.load_checkpoint(prefix, 0)
        model = sym.bind(ctx=mx.neuron(index), args=args, aux_states=aux, grad_req="null")
        check_against_cpu(prefix, model.forward(data=inputs), inputs)
        print(f"{name} -> {model.placement}")
        bound[name] = model
    print("outputs match a CPU bind of the same checkpoints")
    return bound
