"""aws-neuron-sdk src/examples/pytorch/bert_tutorial/tutorial_pretrained_bert.ipynb (and parallel.py).

A random-config BERT classifier stands in for bert-base-cased-finetuned-mrpc, a tiny
vocabulary for its tokenizer, a generated MRPC-shaped TSV for glue_mrpc_dev.tsv. The
tutorial's NeuronSimpleDataParallel loads the model 16 times, one copy per NeuronCore.
# env: NCRT_INSTANCE_TYPE=inf1.6xlarge
"""

from __future__ import annotations

import functools
import os
from concurrent import futures
from queue import Queue
from time import time

import ncrt
import ncrt.compat  # noqa: F401
import torch
import torch.neuron  # noqa: F401

from _bert_tutorial import count, data_loader, get_input_with_padding, max_length, setup
from _tutorial_models import close, workdir

directory = workdir()
os.chdir(directory)

# Setting up NeuronCore groups for inf1.6xlarge with 16 cores
num_cores = 16
os.environ["NEURON_RT_NUM_CORES"] = str(num_cores)

tokenizer, model, paraphrase, not_paraphrase = setup(directory)
paraphrase_classification_logits = model(**paraphrase)[0]
example_inputs_paraphrase = paraphrase["input_ids"], paraphrase["attention_mask"], paraphrase["token_type_ids"]
example_inputs_not_paraphrase = (not_paraphrase["input_ids"], not_paraphrase["attention_mask"],
                                 not_paraphrase["token_type_ids"])

# Run torch.neuron.trace to generate a TorchScript that is optimized by AWS Neuron
model_neuron = torch.neuron.trace(model, example_inputs_paraphrase)
paraphrase_classification_logits_neuron = model_neuron(*example_inputs_paraphrase)
not_paraphrase_classification_logits_neuron = model_neuron(*example_inputs_not_paraphrase)
close(paraphrase_classification_logits_neuron[0], paraphrase_classification_logits.detach())
model_neuron.save("bert_neuron.pt")
assert "aten::embedding" in str(model_neuron.graph) or "forward" in str(model_neuron.graph)

# Load TorchScript back
model_neuron = torch.jit.load("bert_neuron.pt")
paraphrase_classification_logits_neuron = model_neuron(*example_inputs_paraphrase)
not_paraphrase_classification_logits_neuron = model_neuron(*example_inputs_not_paraphrase)
classes = ["not paraphrase", "paraphrase"]
paraphrase_prediction = paraphrase_classification_logits_neuron[0][0].argmax().item()
print(f"BERT says they are {classes[paraphrase_prediction]} (model_neuron -> {model_neuron.placement_label})")
del model_neuron  # the notebook moves on to the parallel benchmark


def consumer(model, input_queue):
    """parallel.py's consumer thread: run queued batches until told to stop."""
    while True:
        inputs, input_id, callback_fn = input_queue.get()
        input_queue.task_done()
        if inputs == "stop":
            break
        start = time()
        results = model(*inputs)
        if not isinstance(results, tuple) or isinstance(results, list):
            results = [results]
        end = time()
        if callback_fn is not None:
            callback_fn(results, input_id, start, end)


class NeuronSimpleDataParallel:
    """parallel.py's NeuronSimpleDataParallel: one torch.jit.load per NeuronCore, one thread each."""

    def __init__(self, model_file, num_neuron_cores, batch_size=1):
        self.num_neuron_cores = num_neuron_cores
        self.batch_size = batch_size
        os.environ["NEURON_RT_NUM_CORES"] = str(num_neuron_cores)
        self.models = [torch.jit.load(model_file) for _ in range(num_neuron_cores)]
        self.input_queue = Queue(maxsize=num_neuron_cores * 16)
        self.executor = futures.ThreadPoolExecutor(max_workers=num_neuron_cores)

    def eval(self):
        for model in self.models:
            model.eval()

    def start_continuous_inference(self):
        for model in self.models:
            self.executor.submit(consumer, model, self.input_queue)

    def infer(self, batch, input_id, callback_fn):
        self.input_queue.put((batch, input_id, callback_fn))

    def stop(self):
        for _ in range(self.num_neuron_cores):
            self.input_queue.put(("stop", -1, None))
        self.executor.shutdown(wait=True)


def run_benchmark(model_file, batch_size, loops=2):
    counted = []
    loader = data_loader(directory, tokenizer, batch_size)

    def result_handler(output, result_id, start, end, input_dict):
        counted.append(count(output[0], input_dict.pop(result_id)))

    parallel_neuron_model = NeuronSimpleDataParallel(model_file, num_cores)
    labels = [m.placement_label for m in parallel_neuron_model.models]
    parallel_neuron_model.start_continuous_inference()
    z = torch.zeros([batch_size, max_length], dtype=torch.long)
    for _ in range(num_cores * 4):  # warm up the cores
        parallel_neuron_model.infer((z, z, z), -1, None)
    input_dict, input_id = {}, 0
    for _ in range(loops):
        for batch in loader:
            batch, quality = get_input_with_padding(batch, batch_size, max_length)
            input_dict[input_id] = quality
            parallel_neuron_model.infer(batch, input_id, functools.partial(result_handler, input_dict=input_dict))
            input_id += 1
    parallel_neuron_model.stop()
    assert sum(n for _, n in counted) == loops * len(loader.dataset) and not input_dict
    return labels


labels = run_benchmark("bert_neuron.pt", batch_size=1)
assert labels == [f"NC{i}" for i in range(16)], labels
# which consumer thread takes which batch from the shared queue is up to the threads, so
# how many ran on each core varies; all of them ran on the cores
assert sum(c.executions for c in ncrt.get_runtime().counters) >= 16 * 4 + 2 * 12
print(f"NeuronSimpleDataParallel, batch 1: 16 models on {labels[0]}..{labels[-1]}, one per core")

# Batch size 6: recompile, then the same benchmark with padded batches
batch_size = 6
example_inputs_paraphrase = tuple(torch.cat([paraphrase[key]] * batch_size, 0)
                                  for key in ("input_ids", "attention_mask", "token_type_ids"))
model_neuron_batch = torch.neuron.trace(model, example_inputs_paraphrase)
model_neuron_batch.save("bert_neuron_b{}.pt".format(batch_size))
labels = run_benchmark("bert_neuron_b{}.pt".format(batch_size), batch_size=batch_size)
assert labels == [f"NC{i}" for i in range(16)], labels  # the batch-1 models were freed: no sharing
print("NeuronSimpleDataParallel, batch 6: 16 models, one per core")
