"""The torch adapter honours the adapter contract, and reads manifests from archives without torch."""

from __future__ import annotations

import io

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from ncrt.adapters import get_adapter  # noqa: E402
from ncrt.adapters.torch import ADAPTER, manifest_text_in_archive, payload_sha256  # noqa: E402
from ncrt.errors import BadInputError  # noqa: E402


def test_it_is_the_registered_torch_adapter():
    assert get_adapter("torch") is ADAPTER and ADAPTER.pip_extra == "torch"


def test_tensors_are_recognised():
    assert ADAPTER.is_tensor(torch.zeros(2))
    assert not ADAPTER.is_tensor(np.zeros(2)) and not ADAPTER.is_tensor([1.0])


def test_size_narrow_concat_pad():
    tensor = torch.arange(12.0).reshape(3, 4)
    assert ADAPTER.size(tensor, 0) == 3 and ADAPTER.size(tensor, -1) == 4
    part = ADAPTER.narrow(tensor, 1, 1, 2)
    np.testing.assert_array_equal(part.numpy(), tensor.numpy()[:, 1:3])
    joined = ADAPTER.concat([tensor, tensor], 0)
    assert tuple(joined.shape) == (6, 4)
    padded = ADAPTER.pad(tensor[:2], 0, 5)
    np.testing.assert_array_equal(padded.numpy()[2:], np.repeat(tensor.numpy()[1:2], 3, axis=0))
    assert ADAPTER.pad(tensor, 0, 3) is tensor


def test_a_missing_dim_is_a_clear_error():
    with pytest.raises(BadInputError, match=r"shape \(3,\).*-1 to 0"):
        ADAPTER.size(torch.zeros(3), 2)


def test_numpy_round_trip():
    array = np.arange(6, dtype=np.float32).reshape(2, 3)
    np.testing.assert_array_equal(ADAPTER.to_numpy(ADAPTER.from_numpy(array)), array)
    np.testing.assert_array_equal(ADAPTER.to_numpy(torch.ones(2, requires_grad=True)), np.ones(2))


def test_archive_helpers():
    module = torch.jit.trace(torch.nn.Linear(2, 2), torch.rand(1, 2))
    buffer = io.BytesIO()
    torch.jit.save(module, buffer, _extra_files={"ncrt-manifest.json": '{"framework": "torch"}'})
    data = buffer.getvalue()
    assert manifest_text_in_archive(data) == '{"framework": "torch"}'
    assert manifest_text_in_archive(b"not a zip") is None and payload_sha256(b"nope") is None
    assert payload_sha256(data) == payload_sha256(module.save_to_buffer())
