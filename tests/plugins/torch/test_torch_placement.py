"""Placement of loaded torch models (seed 000) and the explicit core-placement API."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import warnings

import pytest

torch = pytest.importorskip("torch")

import ncrt  # noqa: E402
from ncrt.errors import BadInputError, PlacementError  # noqa: E402
from ncrt.plugins import torch as neuron  # noqa: E402
from torch_test_models import close, plain  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def saved(cnn, path, cores=1):
    model = neuron.trace(cnn, torch.rand(1, 3, 8, 8), compiler_args=f"--neuroncore-pipeline-cores {cores}")
    torch.jit.save(model, str(path))
    return str(path)


def test_two_loaded_models_go_to_the_two_cores_of_the_group(cnn, tmp_path, runtime_env):
    """Guide, ``NEURON_RT_NUM_CORES=2``: m0 loads to nc0, m1 to nc1 (seed 000: both in the group NC0-NC1)."""
    runtime_env(NEURON_RT_NUM_CORES="2")
    with warnings.catch_warnings():
        warnings.simplefilter("error", ncrt.ModelSwitchWarning)
        first = neuron.load(saved(cnn, tmp_path / "a.pt"))
        second = neuron.load(saved(cnn, tmp_path / "b.pt"))
    assert (first.placement_label, second.placement_label) == ("NC0", "NC1")
    image = torch.rand(1, 3, 8, 8)
    close(first(image), plain(cnn, image))
    close(second(image), plain(cnn, image))


def test_each_load_puts_one_copy_on_the_next_free_core(cnn, tmp_path, runtime_env):
    """Guide, "Example: Default": m0 loads to nc0, m1 to nc1 (no replication by default)."""
    runtime_env(NCRT_INSTANCE_TYPE="inf1.6xlarge")
    path = saved(cnn, tmp_path / "a.pt")
    m0, m1 = neuron.load(path), neuron.load(path)
    assert [m0.placement_label, m1.placement_label] == ["NC0", "NC1"]


def test_visible_cores_place_on_those_cores(cnn, tmp_path, runtime_env):
    """Guide, ``NEURON_RT_VISIBLE_CORES=4-5``: m0 loads to nc4, m1 to nc5."""
    runtime = runtime_env(NCRT_INSTANCE_TYPE="inf1.6xlarge", NEURON_RT_VISIBLE_CORES="4-5")
    path = saved(cnn, tmp_path / "a.pt")
    models = [neuron.load(path) for _ in range(2)]
    assert [[runtime.cores[c].global_index for c in m.placed().cores] for m in models] == [[4], [5]]


def test_overlapping_models_spread_over_the_least_used_cores(cnn, tmp_path, runtime_env):
    """Guide, "Overlapping Models", ``VISIBLE_CORES=0-1``: models of 1, 2, 1 cores load to nc0, nc0-nc1, nc1."""
    runtime_env(NCRT_INSTANCE_TYPE="inf1.6xlarge", NEURON_RT_VISIBLE_CORES="0-1")
    with pytest.warns(ncrt.ModelSwitchWarning):
        models = [neuron.load(saved(cnn, tmp_path / f"{name}.pt", cores))
                  for name, cores in (("m0", 1), ("m1", 2), ("m2", 1))]
    assert [m.placement_label for m in models] == ["NC0", "NC0-1", "NC1"]


def test_pipeline_models_fill_groups_in_load_order(cnn, tmp_path, runtime_env):
    runtime_env(NCRT_INSTANCE_TYPE="inf1.6xlarge", NEURON_RT_NUM_CORES="13")
    models = []
    for name, cores in zip("ABCD", (2, 4, 3, 4)):
        models.append(neuron.load(saved(cnn, tmp_path / f"{name}.pt", cores)))
        image = torch.rand(1, 3, 8, 8)
        close(models[-1](image), plain(cnn, image))
    assert [m.placement_label for m in models] == ["NC0-1", "NC2-5", "NC6-8", "NC9-12"]


@pytest.mark.filterwarnings("ignore::ncrt.ModelSwitchWarning")
def test_set_neuron_cores_and_the_context_manager(cnn, tmp_path, runtime_env):
    runtime_env(NCRT_INSTANCE_TYPE="inf1.xlarge")
    traced = neuron.trace(cnn, torch.rand(1, 3, 8, 8))
    assert neuron.set_neuron_cores(traced, 2, 2).placement_label == "NC2-3"
    assert traced.to("nc:1").placement_label == "NC1"
    assert neuron.set_multicore(traced).placement_label == "NC0-3"
    path = saved(cnn, tmp_path / "a.pt")
    with neuron.neuron_cores_context(start_nc=3, nc_count=1):
        loaded = neuron.load(path)
        lazily = neuron.trace(cnn, torch.rand(1, 3, 8, 8))
    assert loaded.placement_label == "NC3"
    assert lazily.placement_label == "NC3"
    image = torch.rand(1, 3, 8, 8)
    close(loaded(image), plain(cnn, image))


def test_bad_explicit_placements_are_explained(cnn, runtime_env):
    runtime_env(NCRT_INSTANCE_TYPE="inf1.xlarge")
    pipeline = neuron.trace(cnn, torch.rand(1, 3, 8, 8), compiler_args="--neuroncore-pipeline-cores 2")
    with pytest.raises(BadInputError, match=r"nc_count=1 cannot hold a model compiled for 2.*>= 2"):
        neuron.set_neuron_cores(pipeline, 0, 1)
    with pytest.raises(ValueError, match="nc_count=0 is not valid"):
        neuron.set_neuron_cores(pipeline, 0, 0)
    assert neuron.set_neuron_cores(pipeline, 0, 3).placement_label == "NC0-1"  # floor(3 / 2) = 1 copy
    with pytest.raises(PlacementError, match="valid start indexes: 0, 1, 2"):
        neuron.set_neuron_cores(pipeline, 3, 2)
    with pytest.raises(BadInputError, match="'nc:N'"):
        pipeline.to("gpu:0")


def test_calls_go_to_the_least_loaded_replica(cnn, runtime_env):
    runtime = runtime_env(NCRT_INSTANCE_TYPE="inf1.xlarge")
    traced = neuron.set_multicore(neuron.trace(cnn, torch.rand(1, 3, 8, 8)))
    for _ in range(8):
        traced(torch.rand(1, 3, 8, 8))
    assert [counter.executions for counter in runtime.counters] == [2, 2, 2, 2]


def test_compat_names_are_the_plugin_objects(cnn, tmp_path, python_env):
    path = saved(cnn, tmp_path / "a.pt")
    plain_path = tmp_path / "plain.pt"
    torch.jit.save(torch.jit.trace(cnn, torch.rand(1, 3, 8, 8)), str(plain_path))
    code = textwrap.dedent(f"""
        import warnings; warnings.simplefilter("ignore")
        import ncrt.compat, torch, torch_neuron
        import ncrt.plugins.torch as plugin, ncrt.plugins.torch.parallel as parallel
        assert torch.neuron is torch_neuron
        assert torch.neuron.trace is plugin.trace and torch.neuron.DataParallel is parallel.DataParallel
        model = torch.jit.load({path!r})
        assert isinstance(model, plugin.NeuronModule), type(model)
        assert isinstance(torch.jit.load({str(plain_path)!r}), torch.jit.ScriptModule)
        print("placed", model.placement_label, model(torch.rand(1, 3, 8, 8)).shape)
    """)
    python_env["NEURON_RT_NUM_CORES"] = "2"
    out = subprocess.run([sys.executable, "-c", code], env=python_env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "placed NC0 torch.Size([1, 5])" in out.stdout


def test_first_calls_from_many_threads_at_once_share_one_placement(cnn, runtime_env):
    """A traced module places itself on its first call; sixteen first calls at once make one
    placement (none of them unloads another's), and dynamic batching joins their requests."""
    import threading

    runtime = runtime_env(NEURON_RT_NUM_CORES="2")
    model = neuron.trace(cnn, torch.rand(8, 3, 8, 8), dynamic_batch_size=True)
    images = [torch.rand(1, 3, 8, 8) for _ in range(16)]
    start = threading.Barrier(16, timeout=10)
    outputs, errors = {}, []

    def call(index):
        try:
            start.wait()
            for _ in range(5):
                outputs[index] = model(images[index])
        except BaseException as error:  # noqa: BLE001 - checked below
            errors.append(error)

    threads = [threading.Thread(target=call, args=(index,)) for index in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors, errors[:3]
    for index, image in enumerate(images):
        close(outputs[index], plain(cnn, image))  # each caller got its own row
    assert model.placement_label == "NC0" and len(runtime.models) == 1
    assert model.loaded.coalescer is not None
