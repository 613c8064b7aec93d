"""MXNet on ncrt: ``mx.neuron(index)`` contexts with FlexEG placement (seeds 000 and 002).

Unmodified mx-neuron inference code runs on ncrt cores::

    import mxnet as mx
    import ncrt.plugins.mxnet            # or: import ncrt.compat
    import mx_neuron as neuron           # mx-neuron 1.8's module (mx.contrib.neuron in 1.5)

    csym, cargs, caux = neuron.compile(sym, args, aux, {"data": x}, **{"--neuroncore-pipeline-cores": 2})
    model = csym.bind(ctx=mx.neuron(0), args=cargs, aux_states=caux, grad_req="null")
    outputs = model.forward(data=x)      # runs on NC0-1, a list of NDArrays

Modules: ``compile`` (mx.contrib.neuron.compile, manifests on symbols), ``gluon``
(compiling Gluon blocks, compiled SymbolBlock calls), ``model`` (neuron ``bind``,
``simple_bind`` and the executor), ``placement`` (what ``mx.neuron(i)`` asks for),
``execute`` (MXNet's threads, per-core executors), ``compat`` (``mx.neuron``, patching
MXNet), ``hooks`` (the registered plugin). Importing this package does not import MXNet.
"""

from __future__ import annotations

from .compat import enable, install_import_patch, is_neuron_context, neuron, patch_mxnet
from .compile import MANIFEST_ATTR, compile, manifest_of
from .execute import FRAMEWORK, CoreBinding, SymbolPayload, configure_thread_defaults, plain_bind
from .gluon import compile_block
from .model import NeuronExecutor, bind, simple_bind
from .placement import placement_request

__all__ = [
    "FRAMEWORK",
    "MANIFEST_ATTR",
    "CoreBinding",
    "NeuronExecutor",
    "SymbolPayload",
    "bind",
    "compile",
    "compile_block",
    "configure_thread_defaults",
    "enable",
    "is_neuron_context",
    "manifest_of",
    "neuron",
    "patch_mxnet",
    "placement_request",
    "plain_bind",
    "simple_bind",
]

install_import_patch()
