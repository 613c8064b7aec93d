"""aws-neuron-sdk src/examples/pytorch/byoc_sm_bert_tutorial: the notebook's compilation and code/inference.py.

The notebook traces with ``verbose=1, compiler_workdir='./compilation_artifacts'`` and
saves ``neuron_compiled_model.pt``; the container's inference.py loads it in ``model_fn``
and answers JSON requests in ``input_fn`` / ``predict_fn`` / ``output_fn``. SageMaker
itself is not here; the handler functions are called as the container would call them.
# env: NCRT_INSTANCE_TYPE=inf1.xlarge
"""

from __future__ import annotations

import json
import os

import ncrt.compat  # noqa: F401
import torch
import torch_neuron  # noqa: F401

from _bert_tutorial import sequence_0, sequence_1, sequence_2, setup
from _tutorial_models import workdir

JSON_CONTENT_TYPE = "application/json"
directory = workdir()
os.chdir(directory)
tokenizer, model, paraphrase, _ = setup(directory)
example_inputs_paraphrase = paraphrase["input_ids"], paraphrase["attention_mask"], paraphrase["token_type_ids"]
model_neuron = torch.neuron.trace(model, example_inputs_paraphrase, verbose=1, compiler_workdir="./compilation_artifacts")
print(model_neuron.graph)
model_neuron.save("neuron_compiled_model.pt")
assert sorted(os.listdir("compilation_artifacts")) == ["code.py", "graph.txt", "manifest.json", "operators.json",
                                                        "trace.log"]
del model_neuron


def model_fn(model_dir):
    model_neuron = torch.jit.load(os.path.join(model_dir, "neuron_compiled_model.pt"))
    return (model_neuron, tokenizer)


def input_fn(serialized_input_data, content_type=JSON_CONTENT_TYPE):
    if content_type == JSON_CONTENT_TYPE:
        return json.loads(serialized_input_data)
    raise Exception("Requested unsupported ContentType in Accept: " + content_type)


def predict_fn(input_data, models):
    model_bert, tokenizer = models
    sequence_0, sequence_1 = input_data[0], input_data[1]
    paraphrase = tokenizer.encode_plus(sequence_0, sequence_1, max_length=32, padding="max_length",
                                       truncation=True, return_tensors="pt")
    example_inputs_paraphrase = paraphrase["input_ids"], paraphrase["attention_mask"], paraphrase["token_type_ids"]
    paraphrase_classification_logits_neuron = model_bert(*example_inputs_paraphrase)
    classes = ["not paraphrase", "paraphrase"]
    prediction = paraphrase_classification_logits_neuron[0][0].argmax().item()
    return 'BERT says that "{}" and "{}" are {}'.format(sequence_0, sequence_1, classes[prediction])


def output_fn(prediction_output, accept=JSON_CONTENT_TYPE):
    if accept == JSON_CONTENT_TYPE:
        return json.dumps(prediction_output), accept
    raise Exception("Requested unsupported ContentType in Accept: " + accept)


models = model_fn(directory)
for pair in ([sequence_0, sequence_1], [sequence_0, sequence_2]):
    body, accept = output_fn(predict_fn(input_fn(json.dumps(pair)), models))
    assert json.loads(body).startswith("BERT says that")
print(f"inference.py answered 2 requests; the model -> {models[0].placement_label}")
