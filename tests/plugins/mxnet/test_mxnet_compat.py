"""How unmodified mx-neuron code gets ``mx.neuron``, and the legacy NCG group meaning."""

from __future__ import annotations

import subprocess
import textwrap
import warnings

import numpy as np
import pytest

import ncrt.plugins.mxnet  # noqa: F401 - patches MXNet (numpy.bool) when it is imported

pytest.importorskip("mxnet")

from mxnet_models import bind_at, cpu_outputs  # noqa: E402

SCRIPTS = {
    "compat": "import ncrt.compat\nimport mxnet as mx\n",
    "plugin first": "import sys, ncrt.plugins.mxnet\nassert 'mxnet' not in sys.modules\nimport mxnet as mx\n",
    "enable": "from ncrt.plugins.mxnet import enable\nmx = enable()\n",
}
CHECK = textwrap.dedent("""
    import os, sys
    sym = mx.sym.FullyConnected(mx.sym.var("data"), num_hidden=2, name="fc")
    args = {"fc_weight": mx.nd.ones((2, 3)), "fc_bias": mx.nd.zeros((2,))}
    model = sym.bind(ctx=mx.neuron(1), args=args, aux_states={}, grad_req="null")
    print(model.placement, model.forward(data=mx.nd.ones((1, 3)))[0].asnumpy().tolist(),
          os.environ["MXNET_CPU_WORKER_NTHREADS"], hasattr(mx.contrib.neuron, "compile"))
""")


@pytest.mark.slow
@pytest.mark.parametrize("how", sorted(SCRIPTS))
def test_unmodified_code_gets_mx_neuron(how, python, python_env):
    python_env.pop("MXNET_CPU_WORKER_NTHREADS", None)
    python_env["NCRT_INSTANCE_TYPE"] = "inf1.xlarge"
    result = subprocess.run([python, "-c", SCRIPTS[how] + CHECK], env=python_env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split(" ", 1)[0] == "NC1" and "[[3.0, 3.0]]" in result.stdout and result.stdout.strip().endswith("True")


def test_ncg_group_sizes_make_the_index_a_group(mx, checkpoints, batch, runtime_env):
    import ncrt.plugins.ncg  # noqa: F401 - the legacy shim answers group placement

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        runtime_env(NCRT_INSTANCE_TYPE="inf1.6xlarge", NEURONCORE_GROUP_SIZES="2,4,3,4")
    models = {name: bind_at(mx, checkpoints[name], group) for group, name in enumerate("ABCD")}
    assert [m.placement for m in models.values()] == ["NC0-1", "NC2-5", "NC6-8", "NC9-12"]
    got = models["C"].forward(data=batch)[0].asnumpy()
    np.testing.assert_allclose(got, cpu_outputs(mx, checkpoints["C"], batch)[0], rtol=1e-5)
