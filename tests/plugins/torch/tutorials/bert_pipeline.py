"""aws-neuron-sdk src/examples/pytorch/pipeline_tutorial/neuroncore_pipeline_pytorch.ipynb.

A random-config BertModel stands in for bert-base-uncased. The tutorial compiles it for
1 core and for ``--neuroncore-pipeline-cores 16`` (both with ``verbose=1``), measures the
pipeline model from 12 threads, then loads the 1-core model 16 times (one per core) for
data parallelism. Threads: a ThreadPoolExecutor stands in for joblib's
``Parallel(prefer="threads")`` (joblib is not installed here).
# env: NCRT_INSTANCE_TYPE=inf1.6xlarge
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

import ncrt
import ncrt.compat  # noqa: F401
import torch
import torch_neuron  # noqa: F401

from _tutorial_models import bert_model, close, tokenizer, workdir

directory = workdir()
os.chdir(directory)
model = bert_model()
inputs = tokenizer(directory)("Hello, my dog is cute", return_tensors="pt", max_length=32, padding="max_length",
                              truncation=True)

neuron_model = torch.neuron.trace(model, example_inputs=(inputs["input_ids"], inputs["attention_mask"]), verbose=1)
outputs = neuron_model(*(inputs["input_ids"], inputs["attention_mask"]))
close(outputs[0], model(inputs["input_ids"], inputs["attention_mask"])[0].detach())
for _ in range(10):
    outputs = neuron_model(*(inputs["input_ids"], inputs["attention_mask"]))
neuron_model.save("bert-base-uncased-neuron.pt")
del neuron_model

# Number of Cores in the Pipeline Mode
neuroncore_pipeline_cores = 16
neuron_pipeline_model = torch.neuron.trace(model, example_inputs=(inputs["input_ids"], inputs["attention_mask"]),
                                           verbose=1,
                                           compiler_args=["--neuroncore-pipeline-cores", str(neuroncore_pipeline_cores)])
outputs = neuron_pipeline_model(*(inputs["input_ids"], inputs["attention_mask"]))
assert neuron_pipeline_model.placement_label == "NC0-15"


def inference_latency(model, *inputs):
    """The tutorial's helper: the latency of one inference."""
    start = time.time()
    _ = model(*inputs)
    return time.time() - start


pipeline_inputs = [(neuron_pipeline_model, inputs["input_ids"], inputs["attention_mask"])] * 60
with ThreadPoolExecutor(max_workers=12) as pool:
    latency = list(pool.map(lambda args: inference_latency(*args), pipeline_inputs))
del pipeline_inputs
p50 = np.quantile(latency, 0.50) * 1000
assert p50 > 0
print(f"pipeline model on {neuron_pipeline_model.placement_label}: 60 inferences from 12 threads")
neuron_pipeline_model.save("bert-base-uncased-neuron-pipeline.pt")
del neuron_pipeline_model  # the tutorial's last part starts a new kernel

# Number of data parallel workers
number_of_workers = 16
os.environ["NEURON_RT_NUM_CORES"] = str(number_of_workers)
model_list = [torch.jit.load("bert-base-uncased-neuron.pt") for _ in range(number_of_workers)]
_ = [mod(*(inputs["input_ids"], inputs["attention_mask"])) for mod in model_list]
with ThreadPoolExecutor(max_workers=number_of_workers) as pool:
    latency = list(pool.map(lambda mod: inference_latency(mod, inputs["input_ids"], inputs["attention_mask"]),
                            model_list * 4))
labels = [m.placement_label for m in model_list]
assert labels == [f"NC{i}" for i in range(16)], labels
print(f"data parallel: 16 loads on {labels[0]}..{labels[-1]}, {len(latency)} inferences")
