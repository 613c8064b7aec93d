"""Models freed by the application are unloaded from their cores (torch-neuron's ``nrt_unload``)."""

from __future__ import annotations

import copy
import gc
import subprocess
import sys
import textwrap
import warnings
import weakref

import pytest

torch = pytest.importorskip("torch")

import ncrt  # noqa: E402
from ncrt.plugins import torch as neuron  # noqa: E402
from torch_test_models import close, plain  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

IMAGE = (1, 3, 8, 8)


@pytest.fixture
def model_path(cnn, tmp_path):
    path = tmp_path / "cnn.pt"
    torch.jit.save(neuron.trace(cnn, torch.rand(*IMAGE)), str(path))
    return str(path)


def test_loads_freed_one_after_the_other_all_go_to_the_first_core(model_path, runtime_env):
    """The issue's case: three loads of one file, each deleted and collected before the next."""
    runtime = runtime_env(NCRT_INSTANCE_TYPE="inf1.6xlarge")
    labels = []
    with warnings.catch_warnings():
        warnings.simplefilter("error", ncrt.ModelSwitchWarning)
        for _ in range(3):
            model = neuron.load(model_path)
            labels.append(model.placement_label)
            model(torch.rand(*IMAGE))
            del model
            gc.collect()
    assert labels == ["NC0", "NC0", "NC0"]
    assert runtime.models == []


def test_a_freed_module_is_not_kept_alive_by_the_runtime(model_path, runtime_env):
    runtime_env(NCRT_INSTANCE_TYPE="inf1.xlarge")
    model = neuron.load(model_path)
    model(torch.rand(*IMAGE))
    model.placed().submit(neuron.TorchCall((torch.rand(*IMAGE),), {})).result()  # an execution on the core's thread too
    reference = weakref.ref(model)
    del model
    gc.collect()
    assert reference() is None


def test_a_lazily_placed_trace_is_unloaded_when_freed(cnn, runtime_env):
    runtime = runtime_env(NCRT_INSTANCE_TYPE="inf1.xlarge")
    traced = neuron.trace(cnn, torch.rand(*IMAGE))
    traced(torch.rand(*IMAGE))
    assert [m.placement.label for m in runtime.models] == ["NC0"]
    del traced
    assert runtime.models == []


def test_dataparallels_freed_one_after_the_other_do_not_warn(cnn, runtime_env):
    runtime = runtime_env(NCRT_INSTANCE_TYPE="inf1.xlarge")
    traced = neuron.trace(cnn, torch.rand(*IMAGE))
    with warnings.catch_warnings():
        warnings.simplefilter("error", ncrt.ModelSwitchWarning)
        for _ in range(3):
            parallel = neuron.DataParallel(traced)
            image = torch.rand(6, 3, 8, 8)
            close(parallel(image), plain(cnn, image))
            del parallel
            gc.collect()
    assert runtime.models == []


def test_dataparallel_takes_the_loaded_model_over(model_path, runtime_env, cnn):
    """``torch.jit.load`` then ``DataParallel(model)``: the model is not placed twice on NC0."""
    runtime = runtime_env(NCRT_INSTANCE_TYPE="inf1.xlarge")
    model = neuron.load(model_path)
    assert model.placement_label == "NC0"
    with warnings.catch_warnings():
        warnings.simplefilter("error", ncrt.ModelSwitchWarning)
        parallel = neuron.DataParallel(model)
    assert [m.placement.label for m in runtime.models] == ["NC0-3"]
    image = torch.rand(1, 3, 8, 8)
    close(model(image), plain(cnn, image))  # the model itself now runs on the DataParallel's replicas
    assert model.placed() is parallel.loaded and len(runtime.models) == 1
    del parallel
    gc.collect()
    close(model(image), plain(cnn, image))  # places itself again once the DataParallel is gone
    assert [m.placement.label for m in runtime.models] == ["NC0"]


def test_a_second_dataparallel_shares_only_with_a_live_first_one(model_path, runtime_env):
    runtime_env(NCRT_INSTANCE_TYPE="inf1.xlarge")
    model = neuron.load(model_path)
    first = neuron.DataParallel(model, device_ids=[0, 1])
    with pytest.warns(ncrt.ModelSwitchWarning, match="shares NeuronCores with cnn"):
        second = neuron.DataParallel(model, device_ids=[1, 2])
    assert (first.placement_label, second.placement_label) == ("NC0-1", "NC1-2")


def test_a_deep_copy_is_a_separate_unplaced_model(model_path, runtime_env, cnn):
    runtime = runtime_env(NCRT_INSTANCE_TYPE="inf1.xlarge")
    model = neuron.load(model_path)
    twin = copy.deepcopy(model)
    assert twin.loaded is None and twin.script_module is not model.script_module
    image = torch.rand(*IMAGE)
    close(twin(image), plain(cnn, image))
    assert [m.placement.label for m in runtime.models] == ["NC0", "NC1"]
    del twin
    assert [m.placement.label for m in runtime.models] == ["NC0"]


@pytest.mark.slow
def test_under_compat_jit_load_then_dataparallel_places_once(model_path, python_env):
    code = textwrap.dedent(f"""
        import gc, warnings
        warnings.simplefilter("error")  # any ModelSwitchWarning fails the script
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        import ncrt, ncrt.compat, torch, torch_neuron
        for _ in range(3):
            model = torch.jit.load({model_path!r})
            parallel = torch.neuron.DataParallel(model)
            parallel(torch.rand(5, 3, 8, 8))
            print([m.placement.label for m in ncrt.get_runtime().models])
            del model, parallel
            gc.collect()
        print("left", ncrt.get_runtime().models)
    """)
    python_env["NCRT_INSTANCE_TYPE"] = "inf1.xlarge"
    out = subprocess.run([sys.executable, "-c", code], env=python_env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["['NC0-3']"] * 3 + ["left []"]
