"""Shared by the migration examples: small compiled models for MXNet, TensorFlow and PyTorch.

The examples are about placement, so the models are tiny; each is checked against the
plain framework on the same inputs. Importing this installs the Neuron SDK names
(``import ncrt.compat``), as ``ncrt run`` would, and emulates an inf1.6xlarge.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import warnings
from pathlib import Path

os.environ.setdefault("NCRT_INSTANCE_TYPE", "inf1.6xlarge")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

import ncrt  # noqa: E402
import ncrt.compat  # noqa: E402,F401  (mx.neuron, tensorflow.neuron, torch.neuron)

__all__ = ["workdir", "mxnet_checkpoint", "check_mxnet", "tensorflow_model", "torch_model", "quiet"]


def quiet() -> None:
    """Hide the warnings the examples provoke on purpose (shown by ``ncrt migrate check``)."""
    warnings.simplefilter("ignore", DeprecationWarning)
    warnings.simplefilter("ignore", ncrt.ModelSwitchWarning)


def workdir() -> Path:
    """A temporary directory, removed at exit."""
    path = Path(tempfile.mkdtemp(prefix="ncrt-migration-"))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def mxnet_checkpoint(directory: Path, name: str, cores: int) -> str:
    """A small Gluon net compiled for ``cores`` NeuronCores, saved as checkpoint ``name``."""
    import mxnet as mx
    from mxnet import gluon

    from ncrt.adapters.mxnet import export_block

    mx.random.seed(0)
    net = gluon.nn.HybridSequential(prefix=f"{name}_")
    with net.name_scope():
        net.add(gluon.nn.Dense(16, activation="relu"), gluon.nn.Dense(4))
    net.initialize(mx.init.Xavier())
    example = mx.nd.ones((1, 8))
    sym, args, aux = export_block(net, str(directory / f"{name}-plain"), example)
    flags = ["--neuroncore-pipeline-cores", str(cores)]
    sym, args, aux = mx.contrib.neuron.compile(sym, args, aux, {"data": example}, flags=flags)
    mx.model.save_checkpoint(str(directory / name), 0, sym, args, aux)
    return str(directory / name)


def check_mxnet(prefix: str, outputs: list, inputs) -> None:
    """The outputs equal MXNet's own CPU bind of the same checkpoint (plain_bind: not on ncrt cores)."""
    from ncrt.plugins.mxnet import plain_bind
    import mxnet as mx

    sym, args, aux = mx.model.load_checkpoint(prefix, 0)
    reference = plain_bind(sym, mx.cpu(), args={**args, "data": inputs}, aux_states=aux, grad_req="null").forward()
    np.testing.assert_allclose(outputs[0].asnumpy(), reference[0].asnumpy(), rtol=1e-5, atol=1e-6)


def tensorflow_model(directory: Path):
    """A small Keras model and its ncrt-compiled 1-core SavedModel directory."""
    import tensorflow as tf
    import tensorflow.neuron as tfn

    tf.keras.utils.set_random_seed(0)
    inputs = tf.keras.Input((8,), name="input_1")
    keras_model = tf.keras.Model(inputs, tf.keras.layers.Dense(4)(tf.keras.layers.Dense(16, activation="relu")(inputs)))
    traced = tfn.trace(keras_model, np.zeros([1, 8], dtype="float32"))
    traced.save(str(directory / "model_neuron"))
    return keras_model, str(directory / "model_neuron")


def torch_model(directory: Path, name: str, cores: int):
    """A small torch model traced for ``cores`` NeuronCores and saved; returns (model, path)."""
    import torch

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4)).eval()
    compiled = torch.neuron.trace(model, torch.rand([1, 8]), compiler_args=["--neuroncore-pipeline-cores", str(cores)])
    path = str(directory / f"{name}.pt")
    torch.jit.save(compiled, path)
    return model, path
