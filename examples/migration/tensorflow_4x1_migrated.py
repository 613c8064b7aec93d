"""Seed 000 auto model replication: NEURONCORE_GROUP_SIZES=4x1 replicates a 1-core TensorFlow model 4 times.

tensorflow_4x1_legacy.py is the Neuron Runtime 1.x application: it sets NEURONCORE_GROUP_SIZES=4x1
and loads the compiled model once, which replicates it on 4 one-core groups. tensorflow_4x1_migrated.py
is exactly what ``ncrt migrate code`` makes of it: NEURON_RT_NUM_CORES=4, where runtime 2.x's default
replication of a 1-core model (on up to 4 cores) gives the same replicas. ``ncrt migrate check``
proves that both place the model on NC0-3 as 4 replicas.

# env: NCRT_INSTANCE_TYPE=inf1.6xlarge
"""

from __future__ import annotations

import os

os.environ['NEURON_RT_NUM_CORES'] = '4'

from concurrent.futures import ThreadPoolExecutor  # noqa: E402

import numpy as np  # noqa: E402
from _models import quiet, tensorflow_model, workdir  # noqa: E402


def main() -> None:
    quiet()
    import tensorflow as tf

    keras_model, path = tensorflow_model(workdir())
    model = tf.keras.models.load_model(path)  # replicated on the 4 groups
    batches = [np.random.default_rng(i).random([2, 8], dtype=np.float32) for i in range(8)]
    with ThreadPoolExecutor(4) as pool:  # threads feed the replicas
        results = list(pool.map(model, batches))
    for inputs, outputs in zip(batches, results):
        value = next(iter(outputs.values())) if isinstance(outputs, dict) else outputs
        np.testing.assert_allclose(np.asarray(value), keras_model(inputs).numpy(), rtol=1e-4, atol=1e-5)
    print(f"model -> {model.placement} ({model.replica_count} replicas)")


if __name__ == "__main__":
    main()
