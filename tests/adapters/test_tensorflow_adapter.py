"""The TensorFlow adapter against the adapter contract, with TF tensors and NumPy arrays."""

from __future__ import annotations

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from ncrt.adapters import get_adapter  # noqa: E402
from ncrt.batching import chunk_bounds, gather, scatter  # noqa: E402
from ncrt.errors import BadInputError  # noqa: E402

ADAPTER = get_adapter("tensorflow")


@pytest.fixture(params=["tf", "numpy"])
def tensor(request):
    array = np.arange(24, dtype=np.float32).reshape(4, 3, 2)
    return tf.constant(array) if request.param == "tf" else array


def test_is_tensor(tensor):
    assert ADAPTER.is_tensor(tensor)
    assert not ADAPTER.is_tensor([1, 2]) and not ADAPTER.is_tensor("x")


def test_tensor_check_asks_tensorflow_once_per_type(monkeypatch):
    """``tf.is_tensor`` checks a runtime protocol (slow); the answer is kept per type."""
    from ncrt.adapters import tensorflow as adapter_module

    class Holder:  # a type the adapter has not seen yet
        pass

    asked = []
    original = tf.is_tensor
    monkeypatch.setattr(tf, "is_tensor", lambda value: asked.append(type(value)) or original(value))
    for _ in range(3):
        assert not adapter_module.is_tf_tensor(Holder())
        assert not ADAPTER.is_tensor(Holder())
    assert asked == [Holder]
    assert adapter_module.is_tf_tensor(tf.constant([1.0])) and not adapter_module.is_tf_tensor(np.zeros(2))


def test_size_narrow_concat_pad(tensor):
    assert ADAPTER.size(tensor, 0) == 4 and ADAPTER.size(tensor, -1) == 2
    part = ADAPTER.narrow(tensor, 0, 1, 2)
    np.testing.assert_array_equal(ADAPTER.to_numpy(part), ADAPTER.to_numpy(tensor)[1:3])
    joined = ADAPTER.concat([part, part], 0)
    assert ADAPTER.size(joined, 0) == 4 and type(joined) is type(ADAPTER.concat([tensor], 0))
    padded = ADAPTER.to_numpy(ADAPTER.pad(part, 0, 5))
    np.testing.assert_array_equal(padded[2:], np.repeat(padded[1:2], 3, axis=0))


def test_bad_dim_is_a_clear_error(tensor):
    with pytest.raises(BadInputError, match="cannot split along dim 3"):
        ADAPTER.size(tensor, 3)


def test_round_trip_through_numpy(tensor):
    array = ADAPTER.to_numpy(tensor)
    back = ADAPTER.from_numpy(array)
    assert tf.is_tensor(back)
    np.testing.assert_array_equal(back.numpy(), array)


def test_scatter_gather_with_padding(tensor):
    bounds = chunk_bounds(4, 3)
    chunks = scatter({"x": tensor}, ADAPTER, 0, bounds, pad_to=3)
    assert [ADAPTER.size(c["x"], 0) for c in chunks] == [3, 3]
    joined = gather(chunks, ADAPTER, 0, [length for _, length in bounds])
    np.testing.assert_array_equal(ADAPTER.to_numpy(joined["x"]), ADAPTER.to_numpy(tensor))
