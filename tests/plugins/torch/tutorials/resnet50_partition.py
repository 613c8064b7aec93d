"""aws-neuron-sdk src/examples/pytorch/resnet50_partition.ipynb: compile ResNet's four stages one by one.

``ResNetNeuron.trace`` replaces each stage with ``torch.neuron.trace(self.layerN, x,
fallback=False)``; the model then runs its stem and head on the CPU and each stage on a
NeuronCore. The notebook then ``torch.jit.trace``s the whole model, saves and reloads it:
that TorchScript model runs on the host CPU on ncrt (torch-neuron embedded its Neuron
stages as TorchScript operators; ncrt has none), with the same results.
# env: NCRT_INSTANCE_TYPE=inf1.xlarge
"""

from __future__ import annotations

import os

import ncrt
import ncrt.compat  # noqa: F401
import torch
import torch.neuron

from _tutorial_models import SmallResNet, close, workdir

os.chdir(workdir())
model = SmallResNet().eval()
state_dict = model.state_dict()
image = torch.rand(1, 3, 64, 64)

jit_trace = torch.jit.trace(model, example_inputs=image)
jit_trace.save("resnet50_jit_trace.pt")
jit_trace_loaded = torch.jit.load("resnet50_jit_trace.pt")  # not an ncrt model: loads as torch does
assert type(jit_trace_loaded).__name__ == "RecursiveScriptModule"


class ResNetNeuron(SmallResNet):
    def trace(self, x):
        x = self.stem(x)
        self.layer1 = torch.neuron.trace(self.layer1, x, fallback=False)
        x = self.layer1(x)
        self.layer2 = torch.neuron.trace(self.layer2, x, fallback=False)
        x = self.layer2(x)
        self.layer3 = torch.neuron.trace(self.layer3, x, fallback=False)
        x = self.layer3(x)
        self.layer4 = torch.neuron.trace(self.layer4, x, fallback=False)

    def forward(self, x):
        x = self.stem(x)
        x = self.layer1(x)  # after ResNetNeuron.trace these run on NeuronCores
        x = self.layer2(x)
        x = self.layer3(x)
        x = self.layer4(x)
        return self.fc(torch.flatten(self.avgpool(x), 1))


model_neuron = ResNetNeuron()
model_neuron.load_state_dict(state_dict)
model_neuron.eval()
model_neuron.trace(image)
runtime = ncrt.get_runtime()
before = sum(c.executions for c in runtime.counters)
with torch.no_grad():
    expected = model(image)
    close(model_neuron(image), expected)
stages = [m.placement.label for m in runtime.models]
assert stages == ["NC0", "NC1", "NC2", "NC3"] and sum(c.executions for c in runtime.counters) - before == 4
print(f"stages on {', '.join(stages)}; one execution each per inference")

neuron_trace = torch.jit.trace(model_neuron, example_inputs=image)
neuron_trace.save("resnet50_neuron_trace.pt")
neuron_trace_loaded = torch.jit.load("resnet50_neuron_trace.pt")
with torch.no_grad():
    close(neuron_trace(image), expected)
    close(neuron_trace_loaded(image), expected)
print("torch.jit.trace of the partitioned model: same results (run on the host CPU)")
print(neuron_trace.graph)
