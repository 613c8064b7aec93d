"""Leak checks with real framework models: a model the test drops is free, a cached one is a leak.

The inner pytest runs happen in this process (pytester), after the framework is imported
here, so the framework is imported once.
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow

LOADERS = {
    "torch": '''
def make():
    import torch
    model = torch.nn.Sequential(torch.nn.Linear(8, 4)).eval()
    traced = torch.neuron.trace(model, torch.rand([1, 8]))
    traced(torch.rand([1, 8]))
    parallel = torch.neuron.DataParallel(traced)
    parallel(torch.rand([4, 8]))
    return parallel
''',
    "tensorflow": '''
def make():
    import numpy as np
    import tensorflow as tf
    import tensorflow.neuron as tfn
    inputs = tf.keras.Input((8,))
    traced = tfn.trace(tf.keras.Model(inputs, tf.keras.layers.Dense(4)(inputs)), np.zeros([1, 8], dtype="float32"))
    traced.save(str(WORKDIR / "model"))
    model = tf.keras.models.load_model(str(WORKDIR / "model"))
    model(np.zeros([2, 8], dtype="float32"))
    return model
''',
    "mxnet": '''
def make():
    import mxnet as mx
    from mxnet import gluon
    from ncrt.adapters.mxnet import export_block
    net = gluon.nn.HybridSequential(prefix="net_")
    with net.name_scope():
        net.add(gluon.nn.Dense(4))
    net.initialize()
    example = mx.nd.ones((1, 8))
    sym, args, aux = export_block(net, str(WORKDIR / "plain"), example)
    sym, args, aux = mx.contrib.neuron.compile(sym, args, aux, {"data": example})
    executor = sym.bind(ctx=mx.neuron(1), args=args, aux_states=aux, grad_req="null")
    executor.forward(data=example)
    return executor
''',
}

TESTS = '''
import warnings
from pathlib import Path
import pytest
import ncrt.compat

WORKDIR = Path({workdir!r})
{loader}
KEPT = []

@pytest.mark.neuron(instance="inf1.xlarge")
def test_drops_its_model():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        make()

@pytest.mark.neuron(instance="inf1.xlarge")
def test_keeps_its_model():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        KEPT.append(make())
'''


@pytest.mark.parametrize("framework", list(LOADERS))
def test_framework_models_are_leaks_only_while_referenced(inner, tmp_path, framework):
    pytest.importorskip(framework)
    inner.makepyfile(test_framework=TESTS.format(workdir=str(tmp_path), loader=LOADERS[framework]))
    result = inner.runpytest("-p", "no:randomly")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*ERROR at teardown of test_keeps_its_model*"])
    output = result.stdout.str()
    assert f"[{framework}] on NC" in output and "is still referenced after the test" in output
    assert "ERROR at teardown of test_drops_its_model" not in output
