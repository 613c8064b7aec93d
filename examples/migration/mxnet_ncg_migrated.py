"""Seed 002 migration walk-through: four MXNet models compiled for 2, 4, 3 and 4 NeuronCores.

mxnet_ncg_legacy.py is the Neuron Runtime 1.x application: NEURONCORE_GROUP_SIZES=2,4,3,4 makes
four NeuronCore Groups and ``mx.neuron(i)`` names group i. mxnet_ncg_migrated.py is exactly what
``ncrt migrate code`` makes of it: NEURON_RT_NUM_CORES=13 and ``mx.neuron(start core of group i)``.
``ncrt migrate check`` proves that both place model0-3 on NC0-1, NC2-5, NC6-8 and NC9-12.

# env: NCRT_INSTANCE_TYPE=inf1.6xlarge
"""

from __future__ import annotations

import os

os.environ['NEURON_RT_NUM_CORES'] = '13'

from _models import check_mxnet, mxnet_checkpoint, quiet, workdir  # noqa: E402

import mxnet as mx  # noqa: E402


def main() -> None:
    quiet()
    directory = workdir()
    prefixes = [mxnet_checkpoint(directory, name, cores) for name, cores in zip("ABCD", (2, 4, 3, 4))]
    inputs = mx.nd.random.uniform(shape=(2, 8))
    # loaded into the first group of NC0-NC1
    sym, args, aux = mx.model.load_checkpoint(prefixes[0], 0)
    model0 = sym.bind(ctx=mx.neuron(0), args=args, aux_states=aux, grad_req='null')
    # loaded into the second group of NC2-NC5
    sym, args, aux = mx.model.load_checkpoint(prefixes[1], 0)
    model1 = sym.bind(ctx=mx.neuron(2), args=args, aux_states=aux, grad_req='null')
    # loaded into the third group of NC6-NC8
    sym, args, aux = mx.model.load_checkpoint(prefixes[2], 0)
    model2 = sym.bind(ctx=mx.neuron(6), args=args, aux_states=aux, grad_req='null')
    # loaded into the fourth group of NC9-NC12
    sym, args, aux = mx.model.load_checkpoint(prefixes[3], 0)
    model3 = sym.bind(ctx=mx.neuron(9), args=args, aux_states=aux, grad_req='null')
    for index, (model, prefix) in enumerate(zip((model0, model1, model2, model3), prefixes)):
        check_mxnet(prefix, model.forward(data=inputs), inputs)
        print(f"model{index} -> {model.placement}")


if __name__ == "__main__":
    main()
