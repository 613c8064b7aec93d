"""seeds/000, "Auto Model Replication in TensorFlow Neuron": Python API, CLI and the default.

On an inf1.xlarge (4 cores): ``tfn.auto_multicore`` loads a traced 1-core model once and
replicates it on 4 cores, fed from a thread pool; ``ncrt tf-auto-multicore`` writes a
SavedModel that replicates itself on 2 cores when loaded; a 1-core model loaded without
explicit replication is replicated on up to 4 cores. A pipelined model is refused.

# env: NCRT_INSTANCE_TYPE=inf1.xlarge
"""

from __future__ import annotations

import os
import warnings

import numpy as np
from _common import IMAGE, build_cnn, check, workdir

import ncrt
import ncrt.compat  # noqa: F401
from ncrt.cli import main as ncrt_cli


def main() -> None:
    os.environ.setdefault("NCRT_INSTANCE_TYPE", "inf1.xlarge")
    warnings.simplefilter("ignore", ncrt.ModelSwitchWarning)
    import tensorflow as tf
    import tensorflow.neuron as tfn

    root = workdir()
    keras_model = build_cnn()
    example = np.zeros([1, *IMAGE], dtype="float32")
    traced = tfn.trace(keras_model, example)
    traced.save(root / "traced")
    replicated = tfn.auto_multicore(traced, example, num_cores=4)
    stream = [np.random.default_rng(i).random([1 + i % 4, *IMAGE], dtype=np.float32) for i in range(16)]
    for inputs, outputs in zip(stream, tfn.feed(replicated, stream)):
        check(outputs, keras_model(inputs).numpy())
    print(f"auto_multicore -> {replicated.placement} ({replicated.replica_count} replicas)")
    ncrt_cli(["tf-auto-multicore", str(root / "traced"), "--num_cores", "2", "--new_model_dir", str(root / "x2")])
    from_cli = tf.keras.models.load_model(str(root / "x2"))
    check(from_cli(stream[3]), keras_model(stream[3]).numpy())
    print(f"tf-auto-multicore -> {from_cli.placement} ({from_cli.replica_count} replicas)")
    default = tf.keras.models.load_model(str(root / "traced"))
    print(f"default replication -> {default.placement} ({default.replica_count} replicas)")
    pipelined = tfn.trace(keras_model, example, compiler_args=["--neuroncore-pipeline-cores", "2"])
    try:
        tfn.auto_multicore(pipelined, example, num_cores=2)
    except ncrt.errors.BadInputError as error:
        print(f"pipelined model refused: {error}")


if __name__ == "__main__":
    main()
