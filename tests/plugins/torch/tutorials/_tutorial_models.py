"""Small random stand-ins for the tutorials' downloads: BERT (random config), a tokenizer
with a tiny vocabulary, an MRPC-like TSV file, and a small ResNet (no torchvision here).

Nothing is downloaded: ``transformers`` builds the models from configs, the tokenizer
from a vocabulary file written here.
"""

from __future__ import annotations

import os
import tempfile

import torch

WORDS = ("the company huggingface is based in new york city apples are especially bad for your health "
         "s headquarters situated manhattan hello my dog cute").split()


def workdir() -> str:
    """A fresh directory for the tutorial's files (the tutorials write to their working directory)."""
    return tempfile.mkdtemp(prefix="ncrt-tutorial-")


def tokenizer(directory: str):
    """A ``BertTokenizer`` over the tutorials' sentences (stands in for ``from_pretrained``)."""
    from transformers import BertTokenizer

    path = os.path.join(directory, "vocab.txt")
    with open(path, "w") as f:
        f.write("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ",", "'", "."] + list(dict.fromkeys(WORDS))))
    return BertTokenizer(path)


def bert_config(**overrides):
    """A BERT small enough for a CPU test: 2 layers, hidden size 32, sequence length up to 64."""
    from transformers import BertConfig

    settings = dict(vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                    intermediate_size=64, max_position_embeddings=64, num_labels=2, return_dict=False)
    settings.update(overrides)
    return BertConfig(**settings)


def sequence_classifier():
    """``AutoModelForSequenceClassification.from_pretrained("bert-base-cased-finetuned-mrpc", return_dict=False)``."""
    from transformers import BertForSequenceClassification

    torch.manual_seed(0)
    return BertForSequenceClassification(bert_config()).eval()


def bert_model():
    """``BertModel.from_pretrained('bert-base-uncased', return_dict=False)``."""
    from transformers import BertModel

    torch.manual_seed(0)
    return BertModel(bert_config()).eval()


def mrpc_tsv(directory: str, rows: int = 12) -> str:
    """An MRPC-shaped TSV file (quality, id, id, sentence 1, sentence 2), like glue_mrpc_dev.tsv."""
    generator = torch.Generator().manual_seed(1)
    lines = ["Quality\t#1 ID\t#2 ID\t#1 String\t#2 String"]
    for row in range(rows):
        picks = torch.randint(0, len(WORDS), (8,), generator=generator).tolist()
        first, second = " ".join(WORDS[i] for i in picks[:4]), " ".join(WORDS[i] for i in picks[4:])
        lines.append(f"{row % 2}\t{row}\t{row + 100}\t{first}\t{second}")
    path = os.path.join(directory, "glue_mrpc_dev.tsv")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


class Bottleneck(torch.nn.Module):
    """ResNet's bottleneck block (1x1, 3x3, 1x1 convolutions and a shortcut)."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        out = planes * self.expansion
        self.conv1 = torch.nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = torch.nn.BatchNorm2d(planes)
        self.conv2 = torch.nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = torch.nn.BatchNorm2d(planes)
        self.conv3 = torch.nn.Conv2d(planes, out, 1, bias=False)
        self.bn3 = torch.nn.BatchNorm2d(out)
        self.relu = torch.nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or inplanes != out:
            self.downsample = torch.nn.Sequential(torch.nn.Conv2d(inplanes, out, 1, stride=stride, bias=False),
                                                  torch.nn.BatchNorm2d(out))

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.relu(self.bn3(self.conv3(out)) + identity)


class SmallResNet(torch.nn.Module):
    """ResNet-50's layout (stem, four stages, pooling, classifier) with one narrow block per stage."""

    def __init__(self, width: int = 8, num_classes: int = 10) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv1 = torch.nn.Conv2d(3, width, 7, stride=2, padding=3, bias=False)
        self.bn1 = torch.nn.BatchNorm2d(width)
        self.relu = torch.nn.ReLU(inplace=True)
        self.maxpool = torch.nn.MaxPool2d(3, stride=2, padding=1)
        channels = width
        stages = []
        for index, planes in enumerate((width, width * 2, width * 4, width * 8)):
            stages.append(torch.nn.Sequential(Bottleneck(channels, planes, 1 if index == 0 else 2)))
            channels = planes * Bottleneck.expansion
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = torch.nn.AdaptiveAvgPool2d((1, 1))
        self.fc = torch.nn.Linear(channels, num_classes)
        for module in self.modules():  # non-trivial BatchNorm statistics, as a trained model has
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)

    def stem(self, x):
        return self.maxpool(self.relu(self.bn1(self.conv1(x))))

    def forward(self, x):
        x = self.layer4(self.layer3(self.layer2(self.layer1(self.stem(x)))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def close(actual, expected) -> None:
    """The Neuron model's output equals the CPU model's, within float tolerance."""
    torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-5)
