"""aws-neuron-sdk src/examples/pytorch/yolo_v4.ipynb, its Neuron calls on a small detector.

A two-scale convolutional detector whose decoding head is a ``YoloLayer`` module stands in
for YOLOv4 (COCO and its weights are not downloaded). The tutorial traces once with
``skip_compiler=True`` to inspect the model, then with a ``subgraph_builder_function`` that
leaves the YoloLayer to the CPU, saves, reloads and runs the detector on a few images.
# env: NCRT_INSTANCE_TYPE=inf1.xlarge
"""

from __future__ import annotations

import os
import warnings

import ncrt.compat  # noqa: F401
import torch
import torch.neuron

from _tutorial_models import close, workdir


class YoloLayer(torch.nn.Module):
    """Decodes a feature map into boxes and scores (the tutorial's YoloLayer, simplified)."""

    def __init__(self, anchors: int = 3, classes: int = 4) -> None:
        super().__init__()
        self.anchors, self.classes = anchors, classes

    def forward(self, x):
        batch, _, height, width = x.shape
        x = x.view(batch, self.anchors, 5 + self.classes, height * width).permute(0, 1, 3, 2)
        boxes = torch.sigmoid(x[..., :4]).reshape(batch, -1, 4)
        scores = (torch.sigmoid(x[..., 4:5]) * torch.softmax(x[..., 5:], -1)).reshape(batch, -1, self.classes)
        return boxes, scores


class Yolov4(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.backbone = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3, 2, 1), torch.nn.LeakyReLU(0.1),
                                            torch.nn.Conv2d(16, 32, 3, 2, 1), torch.nn.LeakyReLU(0.1))
        self.head = torch.nn.Conv2d(32, 3 * 9, 1)
        self.yolo = YoloLayer()

    def forward(self, x):
        return self.yolo(self.head(self.backbone(x)))


os.chdir(workdir())
model = Yolov4().eval()
image = torch.rand(1, 3, 32, 32)
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    model_neuron_for_inspection = torch.neuron.trace(model, image, skip_compiler=True)
assert any("skip_compiler" in str(w.message) for w in caught)
print(model_neuron_for_inspection)

seen = []


def subgraph_builder_function(node):
    seen.append(node)
    return "YoloLayer" not in node.name


model_neuron = torch.neuron.trace(model, image, subgraph_builder_function=subgraph_builder_function)
on_cpu = sorted({node.kind for node in seen if "YoloLayer" in node.name})
assert "aten::sigmoid" in on_cpu and "aten::_convolution" not in on_cpu
operators = model_neuron.manifest.extra["operators"]
print(f"builder: {operators['neuron_selected']} of {operators['total_count']} operators for Neuron "
      f"(the YoloLayer's {', '.join(on_cpu)} on CPU under torch-neuron)")
model_neuron.save("yolo_v4_neuron.pt")

model_neuron = torch.jit.load("yolo_v4_neuron.pt")
for _ in range(3):  # run_inference's loop, without COCO
    image = torch.rand(1, 3, 32, 32)
    boxes, scores = model_neuron(image)
    expected_boxes, expected_scores = model(image)
    close(boxes, expected_boxes.detach())
    close(scores, expected_scores.detach())
print(f"yolo_v4_neuron.pt -> {model_neuron.placement_label}: boxes {tuple(boxes.shape)}, scores {tuple(scores.shape)}")
