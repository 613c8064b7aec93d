"""aws-neuron-sdk src/examples/pytorch/bert_tutorial/tutorial_pretrained_bert_shared_weights.ipynb.

One ``torch.jit.load`` inside ``torch_neuron.experimental.neuron_cores_context(start_nc=0,
nc_count=16)`` replicates the model on the 16 NeuronCores of an inf1.6xlarge; 32 threads
feed it. ncrt reads NEURON_RT_* once per process, when the runtime starts, so the weight
sharing the tutorial turns on in a later cell is in this script's environment from the start.
# env: NCRT_INSTANCE_TYPE=inf1.6xlarge NEURON_RT_MULTI_INSTANCE_SHARED_WEIGHTS=TRUE
"""

from __future__ import annotations

import os
import time
from concurrent import futures

import ncrt
import ncrt.compat  # noqa: F401
import torch
import torch.neuron

from _bert_tutorial import count, data_loader, get_input_with_padding, max_length, setup
from _tutorial_models import close, workdir
from ncrt.plugins.torch import weight_bytes

directory = workdir()
os.chdir(directory)

tokenizer, model, paraphrase, not_paraphrase = setup(directory)
paraphrase_classification_logits = model(**paraphrase)[0]
example_inputs_paraphrase = paraphrase["input_ids"], paraphrase["attention_mask"], paraphrase["token_type_ids"]
model_neuron = torch.neuron.trace(model, example_inputs_paraphrase)
close(model_neuron(*example_inputs_paraphrase)[0], paraphrase_classification_logits.detach())
model_neuron.save("bert_neuron.pt")
model_neuron = torch.jit.load("bert_neuron.pt")
model_neuron(*example_inputs_paraphrase)

import torch.neuron as torch_neuron  # noqa: E402  (the tutorial's own alias)

num_cores = 16
os.environ["NEURON_RT_NUM_CORES"] = str(num_cores)
os.environ["NEURON_RT_MULTI_INSTANCE_SHARED_WEIGHTS"] = "TRUE"
batch_size = 1
loader = data_loader(directory, tokenizer, batch_size)
del model_neuron  # the tutorial restarts from the saved file

with torch_neuron.experimental.neuron_cores_context(start_nc=0, nc_count=num_cores):
    model = torch.jit.load("bert_neuron.pt")
assert model.placement_label == "NC0-15" and len(model.placed().replicas) == 16

# Warm up the cores
z = torch.zeros([batch_size, max_length], dtype=torch.long)
for _ in range(num_cores * 4):
    model(z, z, z)

batch_list = [get_input_with_padding(batch, batch_size, max_length) for batch in loader]


def one_thread(feed_data, quality):
    """One thread running the model; the runtime picks the least-loaded replica."""
    start = time.time()
    result = model(*feed_data)
    end = time.time()
    return result[0], quality, start, end


processes = []
with futures.ThreadPoolExecutor(max_workers=num_cores * 2) as executor:
    for _ in range(3):
        for batch, quality in batch_list:
            processes.append(executor.submit(one_thread, batch, quality))
total = sum(count(output, quality)[1] for output, quality, _, _ in (p.result() for p in futures.as_completed(processes)))
assert total == 3 * len(loader.dataset)

executions = [c.executions for c in ncrt.get_runtime().counters]
assert all(executions), executions
one_copy = sum(p.numel() * p.element_size() for p in model.script_module.parameters())
shared = weight_bytes(model.placed())
sharing = ncrt.get_runtime().config.multi_instance_shared_weights
print(f"one load on {model.placement_label}: 16 replicas, every core ran; "
      f"replicas hold {shared / one_copy:.0f}x the weights (shared weights {'on' if sharing else 'off'})")
