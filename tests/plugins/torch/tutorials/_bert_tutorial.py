"""Shared by the BERT tutorials: the tutorial's example inputs, dataset and helpers, with a
random-config BERT and a tiny vocabulary instead of the downloads."""

from __future__ import annotations

import csv

import torch

from _tutorial_models import mrpc_tsv, sequence_classifier, tokenizer

sequence_0 = "The company HuggingFace is based in New York City"
sequence_1 = "Apples are especially bad for your health"
sequence_2 = "HuggingFace's headquarters are situated in Manhattan"
max_length = 32  # the tutorials use 128; the random BERT has 64 positions


def setup(directory: str):
    """The tutorial's first cell: tokenizer, model, both example inputs."""
    tok = tokenizer(directory)
    model = sequence_classifier()
    paraphrase = tok.encode_plus(sequence_0, sequence_2, max_length=max_length, padding="max_length",
                                 truncation=True, return_tensors="pt")
    not_paraphrase = tok.encode_plus(sequence_0, sequence_1, max_length=max_length, padding="max_length",
                                     truncation=True, return_tensors="pt")
    return tok, model, paraphrase, not_paraphrase


class BertTestDataset(torch.utils.data.Dataset):
    """bert_benchmark_utils.BertTestDataset: MRPC rows, encoded by the tokenizer."""

    def __init__(self, tsv_file, tokenizer, max_length=128):
        with open(tsv_file) as f:
            self.lines = list(csv.reader(f, delimiter="\t", quotechar=None))[1:]
        self.tokenizer = tokenizer
        self.max_length = max_length

    def __len__(self):
        return len(self.lines)

    def __getitem__(self, idx):
        quality, _, _, first, second = self.lines[idx]
        encoded = self.tokenizer.encode_plus(first, second, add_special_tokens=True, return_tensors="pt",
                                             max_length=self.max_length, padding="max_length", truncation=True)
        return {"encoded": encoded, "quality": quality}


def data_loader(directory, tok, batch_size):
    data_set = BertTestDataset(tsv_file=mrpc_tsv(directory), tokenizer=tok, max_length=max_length)
    return torch.utils.data.DataLoader(data_set, batch_size=batch_size, shuffle=True)


def get_input_with_padding(batch, batch_size, max_length):
    """The tutorial's helper: three batch tensors, padded with zeros up to batch_size."""
    encoded = batch["encoded"]
    inputs = torch.squeeze(encoded["input_ids"], 1)
    attention = torch.squeeze(encoded["attention_mask"], 1)
    token_type = torch.squeeze(encoded["token_type_ids"], 1)
    quality = list(map(int, batch["quality"]))
    if inputs.size()[0] != batch_size:
        remainder = batch_size - inputs.size()[0]
        zeros = torch.zeros([remainder, max_length], dtype=torch.long)
        inputs, attention, token_type = (torch.cat([t, zeros]) for t in (inputs, attention, token_type))
    return (inputs, attention, token_type), quality


def count(output, quality):
    """The tutorial's helper: correct predictions in a batch."""
    assert output.size(0) >= len(quality)
    predictions = [row.argmax().item() for row in output]
    return sum(int(a) == int(b) for a, b in zip(predictions, quality)), len(quality)
