"""The core-placement guide's "Explicit Core Placement" examples and the placement API's docstring examples.

Each test reproduces one example with the loads it makes and asserts its ``# Loads to``
comments, and (for the API examples) on which cores the calls then execute.
"""

from __future__ import annotations

import warnings

import pytest

torch = pytest.importorskip("torch")

import ncrt  # noqa: E402
from ncrt.errors import BadInputError, PlacementError  # noqa: E402
from ncrt.plugins import torch as neuron  # noqa: E402
from torch_test_models import close, plain  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

IMAGE = (1, 3, 8, 8)


@pytest.fixture
def model_file(cnn, tmp_path):
    """``model_file(cores)``: the path of the CNN compiled for ``cores`` NeuronCores."""
    def make(cores: int = 1) -> str:
        path = tmp_path / f"model-with-{cores}-neuron-pipeline-cores.pt"
        if not path.exists():
            traced = neuron.trace(cnn, torch.rand(*IMAGE), compiler_args=["--neuroncore-pipeline-cores", str(cores)])
            torch.jit.save(traced, str(path))
        return str(path)
    return make


def executions(runtime):
    return [counter.executions for counter in runtime.counters]


def test_manual_core_selection(model_file, runtime_env, cnn):
    """NEURON_RT_NUM_CORES=4; "Order of loads does NOT matter"."""
    runtime_env(NCRT_INSTANCE_TYPE="inf1.6xlarge", NEURON_RT_NUM_CORES="4")
    with pytest.warns(ncrt.ModelSwitchWarning):
        with neuron.neuron_cores_context(2):
            m1 = neuron.load(model_file(2))  # Loads to nc2-nc3
        with neuron.neuron_cores_context(0):
            m2 = neuron.load(model_file(3))  # Loads to nc0-nc2
        with neuron.neuron_cores_context(0):
            m0 = neuron.load(model_file(2))  # Loads to nc0-nc1
        with neuron.neuron_cores_context(3):
            m3 = neuron.load(model_file(1))  # Loads to nc3
    assert [m.placement_label for m in (m0, m1, m2, m3)] == ["NC0-1", "NC2-3", "NC0-2", "NC3"]
    image = torch.rand(*IMAGE)
    for model in (m0, m1, m2, m3):
        close(model(image), plain(cnn, image))


def test_automatic_multicore(model_file, runtime_env):
    """NEURON_RT_NUM_CORES=8: one load, replications to nc0-nc7."""
    runtime = runtime_env(NCRT_INSTANCE_TYPE="inf1.6xlarge", NEURON_RT_NUM_CORES="8")
    with neuron.multicore_context():
        m0 = neuron.load(model_file(1))  # Loads replications to nc0-nc7
    assert m0.placement_label == "NC0-7" and len(m0.placed().replicas) == 8
    for _ in range(8):
        m0(torch.rand(*IMAGE))
    assert executions(runtime) == [1] * 8


def test_multicore_of_a_pipeline_model_fits_whole_replicas(model_file, runtime_env):
    runtime_env(NCRT_INSTANCE_TYPE="inf1.6xlarge", NEURON_RT_NUM_CORES="7")
    with neuron.multicore_context():
        m0 = neuron.load(model_file(2))
    assert m0.placement_label == "NC0-5" and [r for r in m0.placed().placement.replicas] == [(0, 1), (2, 3), (4, 5)]


def test_explicit_replication(model_file, runtime_env):
    """NEURON_RT_NUM_CORES=8; replications = floor(nc_count / cores_per_model)."""
    runtime_env(NCRT_INSTANCE_TYPE="inf1.6xlarge", NEURON_RT_NUM_CORES="8")
    with neuron.neuron_cores_context(start_nc=2, nc_count=4):
        m0 = neuron.load(model_file(2))  # Loads replications to nc2-nc5
    assert m0.placement_label == "NC2-5" and m0.placed().placement.replicas == [(2, 3), (4, 5)]
    with neuron.neuron_cores_context(start_nc=0, nc_count=5), pytest.warns(ncrt.ModelSwitchWarning):
        m1 = neuron.load(model_file(2))  # floor(5 / 2) = 2 copies, sharing nc2-nc3 with m0
    assert m1.placement_label == "NC0-3"


def test_api_single_load_and_round_robin_replication(model_file, runtime_env):
    """``neuron_cores_context`` docstring: *Single Load* and *Multiple Core Replication*."""
    runtime = runtime_env(NCRT_INSTANCE_TYPE="inf1.xlarge")
    with neuron.neuron_cores_context(start_nc=0, nc_count=1):
        model = neuron.load(model_file())
    for _ in range(3):
        model(torch.rand(*IMAGE))  # Executes on NeuronCore 0
    assert executions(runtime) == [3, 0, 0, 0]
    with neuron.neuron_cores_context(start_nc=2, nc_count=2):
        replicated = neuron.load(model_file())
    for _ in range(3):
        replicated(torch.rand(*IMAGE))  # Executes on NeuronCore 2, 3, 2
    assert executions(runtime) == [3, 0, 2, 1]


def test_api_multiple_model_load(model_file, runtime_env):
    """*Multiple Model Load*: two models pinned to NC2 and NC0, whatever the load order."""
    runtime = runtime_env(NCRT_INSTANCE_TYPE="inf1.xlarge")
    with neuron.neuron_cores_context(start_nc=2):
        model1 = neuron.load(model_file())
    with neuron.neuron_cores_context(start_nc=0):
        model2 = neuron.load(model_file())
    model1(torch.rand(*IMAGE)), model1(torch.rand(*IMAGE)), model2(torch.rand(*IMAGE)), model2(torch.rand(*IMAGE))
    assert executions(runtime) == [2, 0, 2, 0]


def test_set_neuron_cores_and_set_multicore_move_a_loaded_model(model_file, runtime_env):
    """``set_neuron_cores`` / ``set_multicore`` docstrings: the model is unloaded from its core and reloaded."""
    runtime = runtime_env(NCRT_INSTANCE_TYPE="inf1.xlarge")
    model = neuron.load(model_file())
    assert model.placement_label == "NC0"
    with warnings.catch_warnings():
        warnings.simplefilter("error", ncrt.ModelSwitchWarning)  # the old placement is gone
        neuron.set_neuron_cores(model, start_nc=2, nc_count=2)
        assert [m.placement.label for m in runtime.models] == ["NC2-3"]
        neuron.set_multicore(model)
    assert [m.placement.label for m in runtime.models] == ["NC0-3"]
    for _ in range(3):
        model(torch.rand(*IMAGE))  # Executes on NeuronCore 0, 1, 2
    assert executions(runtime) == [1, 1, 1, 0]


@pytest.mark.filterwarnings("ignore::ncrt.ModelSwitchWarning")
def test_contexts_nest_and_end(model_file, runtime_env):
    runtime_env(NCRT_INSTANCE_TYPE="inf1.xlarge")
    with neuron.multicore_context():
        with neuron.neuron_cores_context(start_nc=3):
            inner = neuron.load(model_file())
        outer = neuron.load(model_file())
    after = neuron.load(model_file())
    assert (inner.placement_label, outer.placement_label) == ("NC3", "NC0-3")
    assert after.placement_label == "NC0"  # the default rule again: the first least-used core


@pytest.mark.parametrize("start_nc, nc_count, error, match", [
    (0, 0, BadInputError, "nc_count=0 is not valid"),
    (-2, -1, BadInputError, "start_nc=-2 is not valid"),
    (0, 1, BadInputError, r"nc_count=1 cannot hold a model compiled for 2"),
    (3, 2, PlacementError, "valid start indexes: 0, 1, 2"),
    (0, 6, PlacementError, "needing 6 NeuronCore"),
])
def test_invalid_placements_are_value_errors_naming_what_is_accepted(model_file, runtime_env, start_nc, nc_count,
                                                                     error, match):
    runtime_env(NCRT_INSTANCE_TYPE="inf1.xlarge")
    path = model_file(2)
    with pytest.raises(error, match=match) as raised:
        with neuron.neuron_cores_context(start_nc=start_nc, nc_count=nc_count):
            neuron.load(path)
    assert isinstance(raised.value, ValueError)  # the API page: ValueError for an invalid nc_count
