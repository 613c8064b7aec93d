"""DataParallel (seed 001): device ids, dynamic batching, structures, errors, threads, weights."""

from __future__ import annotations

import collections
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

torch = pytest.importorskip("torch")

import ncrt  # noqa: E402
from ncrt.errors import BadInputError, ExecutionError, PlacementError  # noqa: E402
from ncrt.plugins import torch as neuron  # noqa: E402
from ncrt.plugins.torch.execute import run_on_core  # noqa: E402
from ncrt.plugins.torch import DataParallel, DynamicBatchingWarning  # noqa: E402
from torch_test_models import DictModel, FailingModel, ListOutputModel, ScaledModel, close, plain  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture
def traced(cnn):
    return neuron.trace(cnn, torch.rand(1, 3, 8, 8))


def test_default_uses_every_core_and_any_batch_size_matches(cnn, traced):
    parallel = DataParallel(traced)
    assert parallel.device_ids == (0, 1) and parallel.placement_label == "NC0-1"
    for size in (1, 2, 3, 7, 64, 5, 1):  # prime, larger than cores x batch, varying call after call
        images = torch.rand(size, 3, 8, 8)
        close(parallel(images), plain(cnn, images))
    counters = ncrt.get_runtime().counters
    assert counters[0].executions > 0 and counters[1].executions > 0


def test_compiled_batch_larger_than_one_pads_the_last_chunk(cnn):
    parallel = DataParallel(neuron.trace(cnn, torch.rand(4, 3, 8, 8)))
    images = torch.rand(11, 3, 8, 8)
    close(parallel(images), plain(cnn, images))


@pytest.mark.filterwarnings("ignore::ncrt.ModelSwitchWarning")
def test_int_and_nc_device_ids_are_the_same_cores(cnn, traced, runtime_env):
    runtime_env(NCRT_INSTANCE_TYPE="inf1.xlarge")
    by_name = DataParallel(traced, device_ids=["nc:0", "nc:1", "nc:2"])
    by_int = DataParallel(traced, device_ids=[0, 1, 2])
    assert by_name.device_ids == by_int.device_ids == (0, 1, 2)
    assert by_name.placement_label == "NC0-2"
    images = torch.rand(5, 3, 8, 8)
    close(by_name(images), plain(cnn, images))


@pytest.mark.parametrize("bad", [["core0"], ["nc:x"], [-1], [True], [1.0], [], "nc:0", 0])
def test_malformed_device_ids_name_the_accepted_forms(traced, bad):
    with pytest.raises(ValueError, match="'nc:#'"):
        DataParallel(traced, device_ids=bad)


def test_device_ids_are_per_process_and_zero_based(cnn, traced, runtime_env):
    runtime = runtime_env(NCRT_INSTANCE_TYPE="inf1.6xlarge", NEURON_RT_VISIBLE_CORES="7-15")
    parallel = DataParallel(traced, device_ids=["nc:0", "nc:7"])
    assert [runtime.cores[i].global_index for i in parallel.device_ids] == [7, 14]
    with pytest.raises(PlacementError, match=r"nc:0-nc:8 \(global NeuronCores 7-15"):
        DataParallel(traced, device_ids=["nc:14"])
    images = torch.rand(3, 3, 8, 8)
    close(parallel(images), plain(cnn, images))


def test_disabled_dynamic_batching_needs_cores_times_compiled_batch(cnn, traced, runtime_env):
    runtime_env(NCRT_INSTANCE_TYPE="inf1.xlarge")
    parallel = DataParallel(traced, device_ids=[0, 1, 2, 3], dim=0)
    parallel.disable_dynamic_batching()
    with pytest.raises(BadInputError, match=r"got 8 / 4 = 2, compiled batch size is 1"):
        parallel(torch.rand(8, 3, 8, 8))
    images = torch.rand(4, 3, 8, 8)
    close(parallel(images), plain(cnn, images))


def test_dim_other_than_zero_warns_and_enforces_the_rule(runtime_env):
    runtime_env(NCRT_INSTANCE_TYPE="inf1.xlarge")
    conv = torch.nn.Conv2d(3, 3, 3).eval()
    traced = neuron.trace(conv, torch.rand(1, 3, 8, 8))
    with pytest.warns(DynamicBatchingWarning, match="dim=2"):
        parallel = DataParallel(traced, device_ids=[0, 1, 2, 3], dim=2)
    images = torch.rand(1, 3, 4 * 8, 8)
    expected = torch.cat([plain(conv, chunk) for chunk in images.split(8, dim=2)], dim=2)
    close(parallel(images), expected)
    with pytest.raises(BadInputError, match=r"input.shape\[2\] / len\(device_ids\)"):
        parallel(torch.rand(1, 3, 24, 8))


def test_dict_inputs_keep_every_key():
    model = DictModel()
    example = {key: torch.rand(1, 4) for key in "abcde"}
    parallel = DataParallel(neuron.trace(model, (example,)))
    batch = {key: torch.rand(6, 4) for key in "abcde"}
    close(parallel(batch), plain(model, batch))


def test_tuple_of_list_outputs_gather_in_structure():
    model = ListOutputModel()
    parallel = DataParallel(neuron.trace(model, torch.rand(1, 3)))
    batch = torch.rand(5, 3)
    (outputs,) = parallel(batch)
    (expected,) = plain(model, batch)
    assert isinstance(outputs, list) and len(outputs) == 3
    for got, want in zip(outputs, expected):
        close(got, want)


def test_nested_inputs_and_non_tensor_arguments():
    model = torch.jit.script(ScaledModel())
    traced = neuron.trace(model, ((torch.rand(2, 3), torch.rand(2, 3)), 2.0))
    parallel = DataParallel(traced)
    pair = (torch.rand(7, 3), torch.rand(7, 3))
    outputs = parallel(pair, 3.0)
    expected = plain(model, pair, 3.0)
    assert set(outputs) == {"sum", "diff"}
    for key in expected:
        close(outputs[key], expected[key])


def test_inputs_that_disagree_on_their_batch_size_are_refused_before_running():
    model = torch.jit.script(ScaledModel())
    traced = neuron.trace(model, ((torch.rand(2, 3), torch.rand(2, 3)), 2.0), dynamic_batch_size=True)
    pair = (torch.rand(2, 3), torch.rand(3, 3))
    for call in (DataParallel(traced), traced):  # both read the batch size from the input check
        with pytest.raises(BadInputError, match=r"disagree on their size along dim 0: \[2, 3\]"):
            call(pair, 1.0)
    assert ncrt.get_runtime().counters[0].executions == 0


def test_pipeline_models_are_refused(cnn):
    traced = neuron.trace(cnn, torch.rand(1, 3, 8, 8), compiler_args=["--neuroncore-pipeline-cores", "2"])
    with pytest.raises(BadInputError, match="NeuronCore Pipeline.*pipeline-cores=2"):
        DataParallel(traced)


def test_an_error_in_a_replica_names_its_core():
    parallel = DataParallel(neuron.trace(torch.jit.script(FailingModel()), torch.rand(1, 2)))
    batch = torch.tensor([[1.0, 2.0], [-1.0, 3.0]])  # chunk 1 goes to NC1
    with pytest.raises(ExecutionError, match="NC1") as raised:
        parallel(batch)
    assert raised.value.core == 1 and "negative input" in str(raised.value)
    close(parallel(batch.abs()), batch.abs() * 2)


def test_many_caller_threads_share_one_dataparallel(cnn, traced):
    parallel = DataParallel(traced)
    batches = [torch.rand(size, 3, 8, 8) for size in (1, 2, 3, 5, 8, 13) * 4]

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(parallel, batches))
    for images, outputs in zip(batches, results):
        close(outputs, plain(cnn, images))


@pytest.mark.parametrize("shared", ["false", "true"])
def test_shared_weights_keep_one_copy(cnn, traced, runtime_env, shared):
    runtime_env(NCRT_INSTANCE_TYPE="inf1.xlarge", NEURON_RT_MULTI_INSTANCE_SHARED_WEIGHTS=shared)
    one_copy = sum(p.numel() * p.element_size() for p in cnn.parameters())
    parallel = DataParallel(traced)
    images = torch.rand(8, 3, 8, 8)
    close(parallel(images), plain(cnn, images))
    assert len(parallel.loaded.model.replicas) == 4
    assert parallel.weight_bytes() == (one_copy if shared == "true" else 4 * one_copy)


def _torch_model(function):
    manifest = ncrt.Manifest(framework="torch", batch_size=1, inputs=[{"shape": [1], "dtype": "float32"}])
    return ncrt.Model(function.__name__, "torch", manifest, neuron.TorchPayload(function, True),
                      runner=run_on_core)


def test_executors_run_with_the_threads_of_their_cpus_and_leave_the_caller_alone():
    before = torch.get_num_threads()
    runtime = ncrt.get_runtime()
    loaded = runtime.place(_torch_model(lambda: torch.get_num_threads()),
                           ncrt.PlacementRequest(cores_per_replica=1, replicas=2))
    counts = {loaded.run((), replica=replica) for replica in (0, 1)}  # on the caller's runner
    counts |= {loaded.submit((), replica=replica).result() for replica in (0, 1)}  # on the cores' workers
    assert counts == {len(runtime.cores[0].cpus)}
    assert torch.get_num_threads() == before


def test_cores_sharing_cpus_take_turns(runtime_env):
    runtime = runtime_env(NCRT_INSTANCE_TYPE="inf1.6xlarge")
    state = collections.Counter()
    lock = threading.Lock()

    def busy():
        with lock:
            state["now"] += 1
            state["peak"] = max(state["peak"], state["now"])
        time.sleep(0.02)
        with lock:
            state["now"] -= 1

    loaded = runtime.place(_torch_model(busy), ncrt.PlacementRequest(cores_per_replica=1, replicas=16))
    futures = [loaded.run_many([()], replica=replica) for replica in range(16)]
    for future in futures:
        future.result()
    assert state["peak"] <= len({cpu for core in runtime.cores for cpu in core.cpus})
