"""aws-neuron-sdk src/examples/pytorch/resnet50.ipynb, in its code shape with a small random ResNet.

Stand-ins: SmallResNet for ``models.resnet50(pretrained=True)``, random 64x64 images for the
kitten, class indexes for ImageNet labels. Environment: an inf1.6xlarge (16 NeuronCores).
# env: NCRT_INSTANCE_TYPE=inf1.6xlarge
"""

from __future__ import annotations

import os
from time import time

import numpy as np

import ncrt.compat  # noqa: F401  (what `ncrt run` does before the application starts)
import torch
import torch_neuron  # noqa: F401

from _tutorial_models import SmallResNet, close, workdir

os.chdir(workdir())

# Create an example input for compilation
image = torch.zeros([1, 3, 64, 64], dtype=torch.float32)
model = SmallResNet()
model.eval()

# Analyze the model - this will show operator support and operator count
analysis = torch.neuron.analyze_model(model, example_inputs=[image])
assert analysis["percent_supported"] == 100.0 and analysis["operator_count"]["aten::_convolution"] == 17

# Compile the model using torch.neuron.trace to create a Neuron model
model_neuron = torch.neuron.trace(model, example_inputs=[image])
model_neuron.save("resnet50_neuron.pt")


def preprocess(batch_size=1, num_neuron_cores=1):
    """The tutorial's preprocess: one image, repeated batch_size * num_neuron_cores times."""
    image = torch.rand([1, 3, 64, 64], generator=torch.Generator().manual_seed(7))
    batch_image = image
    for _ in range(batch_size * num_neuron_cores - 1):
        batch_image = torch.cat([batch_image, image], 0)
    return batch_image


# Load the compiled Neuron model and compare the top-5 with the CPU model
image = preprocess()
with torch.no_grad():
    output_cpu = model(image)
model_neuron = torch.jit.load("resnet50_neuron.pt")
output_neuron = model_neuron(image)
top5_cpu = output_cpu[0].sort()[1][-5:]
top5_neuron = output_neuron[0].sort()[1][-5:]
assert top5_cpu.tolist() == top5_neuron.tolist()
print(f"top-5 equal, model_neuron -> {model_neuron.placement_label}")


def benchmark(model, image, num_infers=3):
    """The tutorial's benchmark (3 iterations instead of 100)."""
    print("Input image shape is {}".format(list(image.shape)))
    results = model(image)  # the first inference loads the model
    latency, throughput = [], []
    for _ in range(num_infers):
        delta_start = time()
        results = model(image)
        delta = time() - delta_start
        latency.append(delta)
        throughput.append(image.size(0) / delta)
    assert results.shape == (image.size(0), 10) and np.percentile(latency, 50) > 0
    return results


# DataParallel over every NeuronCore: 16 on an inf1.6xlarge
model_neuron_parallel = torch.neuron.DataParallel(model_neuron)
num_neuron_cores = 16
image = preprocess(batch_size=1, num_neuron_cores=num_neuron_cores)
close(benchmark(model_neuron_parallel, image), model(image).detach())
print(f"model_neuron_parallel -> {model_neuron_parallel.placement_label}")

# The same DataParallel module runs variable batch sizes without recompiling
for batch_size in [2, 3, 4, 5, 6, 7]:
    image = preprocess(batch_size=batch_size, num_neuron_cores=num_neuron_cores)
    benchmark(model_neuron_parallel, image, num_infers=1)
print("batch sizes 2-7 per core ran")

# Recompile for batch size 5, then DataParallel with 5 images per core
batch_size = 5
image = torch.zeros([batch_size, 3, 64, 64], dtype=torch.float32)
model_neuron = torch.neuron.trace(model, example_inputs=[image])
model_neuron.save("resnet50_neuron_b{}.pt".format(batch_size))
model_neuron = torch.jit.load("resnet50_neuron_b{}.pt".format(batch_size))
model_neuron_parallel = torch.neuron.DataParallel(model_neuron)
image = preprocess(batch_size=batch_size, num_neuron_cores=num_neuron_cores)
close(benchmark(model_neuron_parallel, image), model(image).detach())
placed = [m.placement.label for m in ncrt.get_runtime().models]
print(f"batch 5 per core on {model_neuron_parallel.placement_label}; placed: {placed}")
