"""torch-neuron developer guides: the bucketing app note and the LSTM support guide.

Bucketing: one model compiled per input size, each warmed up (so placed), inputs padded to
the smallest bucket that holds them. LSTM: ``torch_neuron.trace(Network(), (inputs,))`` and
the packed-sequence forms. Small sizes stand in for the app note's 500-800 pixel images.
# env: NCRT_INSTANCE_TYPE=inf1.xlarge
"""

from __future__ import annotations

import ncrt.compat  # noqa: F401
import torch
import torch.nn.functional as F
import torch_neuron

from _tutorial_models import SmallResNet, close

# -- bucketing ---------------------------------------------------------------------------------
model = SmallResNet().eval()
bucket_sizes = [(32, 32), (48, 48), (64, 64)]
buckets = {}
for bucket_size in bucket_sizes:
    h, w = bucket_size
    image = torch.rand([1, 3, h, w])
    model_neuron = torch.neuron.trace(model, image)
    model_neuron(image)  # a warm up inference loads the model
    buckets[bucket_size] = model_neuron


def get_bucket_and_pad_image(image):
    oh, ow = image.shape[-2:]
    target_bucket = next(size for size in bucket_sizes if oh <= size[0] and ow <= size[1])
    padded = F.pad(image, (0, target_bucket[1] - ow, 0, target_bucket[0] - oh))
    return target_bucket, padded


for height, width in ((30, 20), (40, 48), (64, 50)):
    bucket, padded = get_bucket_and_pad_image(torch.rand(1, 3, height, width))
    with torch.no_grad():
        close(buckets[bucket](padded), model(padded))
print("bucketing: buckets on " + ", ".join(buckets[size].placement_label for size in bucket_sizes))


# -- LSTM support guide ----------------------------------------------------------------------------
class Network(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.lstm = torch.nn.LSTM(input_size=3, hidden_size=7)

    def forward(self, inputs):
        output, (ht, ct) = self.lstm(inputs)
        return output, (ht, ct)


seq_len, batch_size, input_size = 5, 2, 3
inputs = torch.rand(seq_len, batch_size, input_size)
network = Network().eval()
trace = torch_neuron.trace(network, (inputs,))
(output, (ht, ct)), (ref_output, (ref_ht, ref_ct)) = trace(inputs), network(inputs)
close(output, ref_output.detach()), close(ht, ref_ht.detach())


class Packed(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.lstm = torch.nn.LSTM(input_size=3, hidden_size=7)

    def forward(self, inputs, lengths):
        packed = torch.nn.utils.rnn.pack_padded_sequence(inputs, lengths=lengths, enforce_sorted=True)
        packed_result, _ = self.lstm(packed)
        padded, _ = torch.nn.utils.rnn.pad_packed_sequence(packed_result, total_length=seq_len)
        return padded


lengths = torch.tensor([5, 3])
packed = Packed().eval()
trace = torch_neuron.trace(packed, (inputs, lengths))
close(trace(inputs, lengths), packed(inputs, lengths).detach())
print(f"lstm: fixed-length and packed sequences traced and run on {trace.placement_label}")
