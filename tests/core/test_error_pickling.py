"""ncrt errors cross process boundaries intact: Ray and multiprocessing pickle them."""

from __future__ import annotations

import pickle

import pytest

from ncrt import errors

CASES = [
    errors.ConfigError("NEURON_RT_VISIBLE_CORES", "0-5", "core indices 0-3", "core 4 does not exist"),
    errors.FrameworkMissingError("ray", "ray"),
    errors.ExecutionError("model raised", core=2),
    errors.CoresUnavailableError("NeuronCore(s) not available"),
    errors.QueueFullError("too many", status=errors.NrtStatus.QUEUE_FULL),
]


@pytest.mark.parametrize("error", CASES, ids=lambda error: type(error).__name__)
def test_an_error_survives_pickling(error):
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert str(copy) == str(error) and copy.status == error.status
    assert vars(copy) == vars(error)


def test_attributes_set_after_raising_are_kept():
    error = errors.CoresUnavailableError("NeuronCore(s) not available")
    error.requested, error.free, error.holders = (4,), (0, 1), {}
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.requested, copy.free, copy.holders) == ((4,), (0, 1), {})
    assert copy.status == errors.NrtStatus.RESOURCE
