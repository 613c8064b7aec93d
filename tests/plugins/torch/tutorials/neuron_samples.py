"""The aws-neuron-samples torch-neuron notebooks (torch-neuron/inference/*), in their shared code shapes.

- vision notebooks (Resnet, Resnext, VGG, EfficientNet, ViT, BEiT, Craft, HRnet, Yolov5,
  Yolov6): warm up, check ``torch.jit.trace``, ``analyze_model``, ``trace``, ``save``,
  then reload with ``torch.load`` (12 notebooks do) and run;
- RobertaBase / BertBaseCased: ``trace(..., dynamic_batch_size=True)``, reload with
  ``torch.jit.load``, run other batch sizes;
- TrOCR / Fairseq: ``op_whitelist=torch.neuron.get_supported_operations() + ['aten::embedding']``
  and ``compiler_args="--fast-math none"``; the compiled halves hang on ``forward_neuron``
  (also CLIP, SSD, GFL) and a replaced ``forward`` (``types.MethodType``) calls them;
- GFL: ``torch.save(inspect.getsource(f))`` then ``exec(torch.load('model_forward.pt'))``.
Small random models stand in for the downloads.
# env: NCRT_INSTANCE_TYPE=inf1.xlarge
"""

from __future__ import annotations

import inspect
import os
import types
import warnings

import ncrt.compat  # noqa: F401
import torch
import torch.neuron

from _bert_tutorial import setup
from _tutorial_models import SmallResNet, close, workdir

directory = workdir()
os.chdir(directory)

# -- vision notebooks ------------------------------------------------------------------------
model_name = "resnet50"
model = SmallResNet().eval()
x = torch.rand(1, 3, 64, 64)
y = model(x)  # warmup the model
traced_model = torch.jit.trace(model, x)
analysis = torch.neuron.analyze_model(model, example_inputs=x)
neuron_model = torch.neuron.trace(model, x)
neuron_model.save(f"neuron_{model_name}.pt")
y = neuron_model(x)  # warmup
torch.save([f"class {i}" for i in range(10)], "labels.pt")
del neuron_model

model_neuron = torch.load(f"neuron_{model_name}.pt")
labels = torch.load("labels.pt")
image = torch.rand(1, 3, 64, 64)
with torch.no_grad():
    close(model_neuron(image), model(image))
top = labels[model_neuron(image)[0].argmax().item()]
print(f"vision: torch.load -> {type(model_neuron).__name__} on {model_neuron.placement_label}, top-1 {top!r}")

# -- RobertaBase: dynamic batch size -----------------------------------------------------------
tokenizer, bert, paraphrase, not_paraphrase = setup(directory)
example_inputs_paraphrase = paraphrase["input_ids"], paraphrase["attention_mask"], paraphrase["token_type_ids"]
torch.neuron.analyze_model(bert, example_inputs_paraphrase)
neuron_model = torch.neuron.trace(bert, example_inputs_paraphrase, dynamic_batch_size=True)
neuron_model.save("neuron_roberta_base_dyn.pt")
model_neuron = torch.jit.load("neuron_roberta_base_dyn.pt")
for batch in (1, 4, 7):
    inputs = tuple(torch.cat([t] * batch) for t in example_inputs_paraphrase)
    logits = model_neuron(*inputs)[0]
    close(logits, bert(*inputs)[0].detach())
print("roberta: dynamic batch size ran batches 1, 4 and 7")


# -- TrOCR / Fairseq: op_whitelist, compiler_args string, forward_neuron -----------------------
class Encoder(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(1)
        self.embed = torch.nn.Embedding(50, 16)
        self.proj = torch.nn.Linear(16, 16)

    def forward(self, tokens):
        if hasattr(self, "forward_neuron"):  # the samples' switch to the compiled model
            return self.forward_neuron(tokens)
        return torch.tanh(self.proj(self.embed(tokens)))


encoder = Encoder().eval()
xenc = torch.randint(0, 50, (1, 12))
expected = encoder(xenc).detach()
traced_encoder = torch.jit.trace(encoder, xenc)
ops = torch.neuron.get_supported_operations() + ["aten::embedding"]
with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # op_whitelist is evaluated, not applied (recorded in the manifest)
    model_neuron_encoder = torch.neuron.trace(encoder, example_inputs=xenc, op_whitelist=ops,
                                              compiler_args="--fast-math none")
assert model_neuron_encoder.manifest.compiler_args == ["--fast-math", "none"]
model_neuron_encoder.save("troc_encoder_neuron.pt")
encoder.forward_neuron = torch.load("troc_encoder_neuron.pt")
close(encoder(xenc), expected)
print(f"trocr: forward_neuron runs on {encoder.forward_neuron.placement_label}")

# -- GFL: a forward saved as source, exec'd back, calling forward_neuron ------------------------


def f(self, img, **kwargs):
    if hasattr(self, "forward_neuron"):
        return self.forward_neuron(img)
    return self.forward_(img)


detector = SmallResNet().eval()
torch.save(inspect.getsource(f), "model_forward.pt")
torch.neuron.trace(detector, example_inputs=x).save("gfl_neuron.pt")
del f
exec(torch.load("model_forward.pt"))
detector.forward_ = detector.forward
detector.forward_neuron = torch.load("gfl_neuron.pt")
detector.forward = types.MethodType(f, detector)  # noqa: F821  (defined by exec)
with torch.no_grad():
    close(detector.forward(img=image), detector.forward_(image))
print(f"gfl: exec(torch.load(...)) forward runs the compiled model on {detector.forward_neuron.placement_label}")
