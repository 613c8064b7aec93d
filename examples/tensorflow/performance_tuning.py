"""seeds/003, "Compiling for batching optimization" and "Compiling for pipeline optimization".

A model compiled for batch size 5 with dynamic batching takes any client batch (here 12:
chunks of 5, the last padded); the same model compiled with ``--neuroncore-pipeline-cores
16`` occupies all 16 cores of an inf1.6xlarge. ``rn50_fp16`` is a small CNN here; the
example inputs are float16 as in the seed and are cast to the model's float32.

# env: NCRT_INSTANCE_TYPE=inf1.6xlarge
"""

from __future__ import annotations

import os

import numpy as np
from _common import IMAGE, build_cnn, check, export_saved_model, workdir

import ncrt.compat  # noqa: F401


def main() -> None:
    os.environ.setdefault("NCRT_INSTANCE_TYPE", "inf1.6xlarge")
    import tensorflow.neuron as tfn

    root = workdir()
    keras_model = build_cnn()
    export_saved_model(keras_model, root / "rn50_fp16")
    inputs = np.random.default_rng(0).random([12, *IMAGE], dtype=np.float32)

    batch_size = 5  # to change the batch size, change the first dimension in example_input
    example_input = np.zeros([batch_size, *IMAGE], dtype="float16")
    tfn.saved_model.compile(str(root / "rn50_fp16"), str(root / "rn50_fp16_compiled/1"),
                            model_feed_dict={"input_1:0": example_input}, dynamic_batch_size=True)
    batched = tfn.load_model(str(root / "rn50_fp16_compiled/1"))
    check(batched(inputs), keras_model(inputs).numpy())
    print(f"batch {batched.compiled_batch} dynamic -> {batched.placement} ({batched.replica_count} replicas)")
    batched.unload()

    compiler_args = ["--neuroncore-pipeline-cores", "16"]
    example_input = np.zeros([1, *IMAGE], dtype="float16")
    tfn.saved_model.compile(str(root / "rn50_fp16"), str(root / "rn50_fp16_pipeline/1"),
                            model_feed_dict={"input_1:0": example_input}, compiler_args=compiler_args)
    pipelined = tfn.load_model(str(root / "rn50_fp16_pipeline/1"))
    check(pipelined(inputs[:1]), keras_model(inputs[:1]).numpy())
    print(f"pipeline 16 cores -> {pipelined.placement} ({pipelined.replica_count} replica)")


if __name__ == "__main__":
    main()
