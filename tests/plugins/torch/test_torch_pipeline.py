"""NeuronCore Pipeline for torch: traced models cut into stages that stream over their cores."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path
from typing import Dict, Tuple

import pytest

torch = pytest.importorskip("torch")

from ncrt.errors import BadInputError, ExecutionError, PlacementError  # noqa: E402
from ncrt.pipeline import PipelineStagesWarning  # noqa: E402
from ncrt.plugins import torch as neuron  # noqa: E402
from ncrt.plugins.torch import pipeline as torch_pipeline  # noqa: E402
from torch_test_models import plain  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


class ConvChain(torch.nn.Module):
    """Six convolutions and a head: enough operations to cut anywhere."""

    def __init__(self, channels: int = 8) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.stem = torch.nn.Conv2d(3, channels, 3, padding=1)
        self.body = torch.nn.Sequential(*[torch.nn.Sequential(torch.nn.Conv2d(channels, channels, 3, padding=1),
                                                              torch.nn.ReLU()) for _ in range(5)])
        self.head = torch.nn.Linear(channels, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(torch.relu(self.stem(x))).mean(dim=(2, 3)))


class TwoInTupleDictOut(torch.nn.Module):
    """Two inputs, a skip connection across the graph, a tuple output holding a dict."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.a = torch.nn.Linear(6, 16)
        self.b = torch.nn.Linear(16, 16)
        self.c = torch.nn.Linear(16, 16)
        self.d = torch.nn.Linear(16, 3)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        h = torch.relu(self.a(x))
        k = torch.relu(self.b(h)) + h
        m = torch.tanh(self.c(k))
        out = self.d(m) + y
        return out, {"features": m, "skip": h * 2}


class IndexModel(torch.nn.Module):
    """Picks columns by an index input: an out-of-range index fails inside the last stage."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(2)
        self.a = torch.nn.Linear(4, 8)
        self.b = torch.nn.Linear(8, 8)

    def forward(self, x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.b(torch.relu(self.a(x)))).index_select(1, index)


class FewCuts(torch.nn.Module):
    """A batch size read first and used later: no cut may separate them (an int cannot cross)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(3)
        self.a = torch.nn.Linear(4, 6)
        self.b = torch.nn.Linear(6, 6)
        self.c = torch.nn.Linear(6, 6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.size(0)
        v = self.b(torch.relu(self.a(x))).view(n, -1)
        return torch.relu(self.c(v))


class Branchy(torch.nn.Module):
    """Data-dependent control flow: torch.fx cannot trace it."""

    def __init__(self) -> None:
        super().__init__()
        self.a = torch.nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.a(x) if bool(x.sum() > 0) else -self.a(x)


def equal(actual, expected):
    assert torch.allclose(actual, expected, rtol=1e-5, atol=1e-6), (actual - expected).abs().max()


@pytest.fixture
def inf1(runtime_env):
    return runtime_env(NCRT_INSTANCE_TYPE="inf1.xlarge", NEURON_MAX_NUM_INFERS="16")


@pytest.mark.parametrize("args", [
    ["--neuroncore-pipeline-cores", "2"], "--neuroncore-pipeline-cores 3", ["--neuroncore-pipeline-cores=4"],
    "--fast-math none --neuroncore-pipeline-cores=2", ["--neuroncore-pipeline-cores 2"],
    {"--neuroncore-pipeline-cores": 2}, {"--neuroncore-pipeline-cores": "3"},
])
def test_every_spelling_of_the_flag_cuts_the_model(inf1, args):
    model = ConvChain().eval()
    image = torch.rand(1, 3, 8, 8)
    traced = neuron.trace(model, image, compiler_args=args)
    cores = traced.manifest.pipeline_cores
    assert traced.manifest.stage_count == cores
    equal(traced(image), plain(model, image))
    assert [stage.core.index for stage in traced.loaded.pipelines[0].stages] == list(range(cores))


@pytest.mark.parametrize("args", [["--neuroncore-pipeline-cores"], ["--neuroncore-pipeline-cores=0"],
                                  "--neuroncore-pipeline-cores two", {"--neuroncore-pipeline-cores": -1}])
def test_a_bad_pipeline_size_is_refused_by_the_one_flag_reader(inf1, args):
    with pytest.raises(BadInputError, match="--neuroncore-pipeline-cores.*accepted"):
        neuron.trace(ConvChain().eval(), torch.rand(1, 3, 8, 8), compiler_args=args)


def test_multi_input_tuple_and_dict_outputs_equal_the_unsplit_model(inf1):
    model = TwoInTupleDictOut().eval()
    x, y = torch.rand(2, 6), torch.rand(2, 3)
    traced = neuron.trace(model, (x, y), compiler_args=["--neuroncore-pipeline-cores", "3"])
    unsplit = neuron.trace(model, (x, y))
    assert traced.manifest.stage_count == 3
    x, y = torch.rand(2, 6), torch.rand(2, 3)
    out, extra = traced(x, y)
    want_out, want_extra = plain(model, x, y)
    one_out, one_extra = unsplit(x, y)
    equal(out, want_out)
    equal(out, one_out)
    assert set(extra) == {"features", "skip"}
    for key in extra:
        equal(extra[key], want_extra[key])
        equal(extra[key], one_extra[key])


def test_the_partition_is_balanced_and_stored_in_the_artifact(inf1, tmp_path):
    model = ConvChain().eval()
    image = torch.rand(1, 3, 8, 8)
    traced = neuron.trace(model, image, compiler_args=["--neuroncore-pipeline-cores", "2"])
    partition = traced.manifest.partition
    assert partition["requested"] == 2 and partition["note"] == ""
    assert "fastest of 5 runs per torch.fx operation" in partition["cost_basis"]
    first, second = partition["stages"]
    assert (first["first"], second["last"]) == ("stem", "head")
    assert sum(stage["units"] for stage in partition["stages"]) == 14  # stem, relu, 5 x (conv, relu), mean, head
    assert sum(stage["param_bytes"] for stage in partition["stages"]) == sum(
        p.numel() * 4 for p in model.parameters())
    path = tmp_path / "chain.pt"
    torch.jit.save(traced, str(path))
    loaded = neuron.load(str(path))
    assert loaded.manifest.partition == partition
    assert len(loaded.loaded.pipelines[0].stages) == 2
    equal(loaded(image), plain(model, image))


def test_torch_jit_load_under_compat_places_a_pipelined_model(inf1, tmp_path):
    import ncrt.compat  # noqa: F401

    model = ConvChain().eval()
    image = torch.rand(1, 3, 8, 8)
    path = tmp_path / "chain.pt"
    torch.jit.save(neuron.trace(model, image, compiler_args="--neuroncore-pipeline-cores 2"), str(path))
    placed = torch.jit.load(str(path))
    assert placed.placement_label == "NC0-1" and placed.loaded.pipelines is not None
    equal(placed(image), plain(model, image))


def test_dynamic_batches_stream_through_the_stages_chunk_by_chunk(inf1):
    model = ConvChain().eval()
    traced = neuron.trace(model, torch.rand(2, 3, 8, 8), compiler_args="--neuroncore-pipeline-cores 2",
                          dynamic_batch_size=True)
    batch = torch.rand(7, 3, 8, 8)
    equal(traced(batch), plain(model, batch))
    stages = traced.loaded.describe()["stages"]
    assert [stage["executions"] for stage in stages] == [4, 4]  # 4 chunks of 2 (the last padded)


def test_request_k_plus_1_runs_in_stage_0_while_k_is_in_stage_1(inf1, stage_timeline):
    stage_timeline.record(torch_pipeline)
    model = ConvChain().eval()
    traced = neuron.trace(model, torch.rand(1, 3, 8, 8), compiler_args="--neuroncore-pipeline-cores 2")
    images = [torch.rand(1, 3, 8, 8) for _ in range(6)]
    traced(images[0])  # the first call copies each stage's weights to its core
    stage_timeline.intervals.clear()
    with torch.no_grad():
        futures = [traced.placed().submit((image,)) for image in images]
    for future, image in zip(futures, images):
        equal(future.result(), plain(model, image))
    assert stage_timeline.overlaps() >= 3, stage_timeline.intervals


def test_an_error_in_a_stage_reaches_only_its_request(inf1):
    model = IndexModel().eval()
    x = torch.rand(1, 4)
    traced = neuron.trace(model, (x, torch.tensor([0, 2])), compiler_args="--neuroncore-pipeline-cores 2")
    loaded = traced.placed()
    good, bad = torch.tensor([1, 3]), torch.tensor([1, 99])
    futures = [loaded.submit((x, index)) for index in (good, bad, good)]
    equal(futures[0].result(), plain(model, x, good))
    with pytest.raises(ExecutionError, match="(?s)stage 1 of 2 of model 'IndexModel' on NeuronCore NC1.*out of"):
        futures[1].result()
    equal(futures[2].result(), plain(model, x, good))


def test_a_model_too_small_to_cut_warns_once_and_runs_whole(inf1):
    model = torch.nn.Linear(4, 2).eval()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        traced = neuron.trace(model, torch.rand(1, 4), compiler_args="--neuroncore-pipeline-cores 2")
    found = [w for w in caught if issubclass(w.category, PipelineStagesWarning)]
    assert len(found) == 1 and "only 1 operation" in str(found[0].message)
    assert found[0].filename == __file__
    assert traced.manifest.stage_count == 1 and "only 1 operation" in traced.manifest.partition["note"]
    x = torch.rand(1, 4)
    equal(traced(x), plain(model, x))
    assert traced.placement_label == "NC0-1" and traced.loaded.pipelines is None


def test_a_model_torch_fx_cannot_trace_gets_one_stage_and_says_why(inf1):
    model = Branchy().eval()
    with pytest.warns(PipelineStagesWarning, match="torch.fx cannot trace it"):
        traced = neuron.trace(model, torch.rand(1, 4), compiler_args="--neuroncore-pipeline-cores 2")
    x = torch.rand(1, 4)
    equal(traced(x), plain(model, x))
    assert traced.loaded.pipelines is None


def test_with_fewer_stages_than_cores_the_last_stage_holds_the_rest(inf1):
    model = FewCuts().eval()
    with pytest.warns(PipelineStagesWarning, match="only 2 place.s. where every value crossing the cut is a tensor"
                                                   ".*as 3 stages on its 4-core group, the last stage holding the 2"):
        traced = neuron.trace(model, torch.rand(2, 4), compiler_args="--neuroncore-pipeline-cores 4")
    assert traced.manifest.stage_count == 3
    x = torch.rand(2, 4)
    equal(traced(x), plain(model, x))
    assert traced.placement_label == "NC0-3"
    assert [[core.index for core in stage.cores] for stage in traced.loaded.pipelines[0].stages] == [[0], [1], [2, 3]]


def test_dataparallel_refuses_pipelines_as_seed_001_says(inf1):
    traced = neuron.trace(ConvChain().eval(), torch.rand(1, 3, 8, 8), compiler_args="--neuroncore-pipeline-cores 2")
    with pytest.raises(BadInputError, match="DataParallel does not currently support models that have been compiled "
                                            "with NeuronCore Pipeline.*neuron_cores_context"):
        neuron.DataParallel(traced)


@pytest.mark.parametrize("shared", ["false", "true"])
def test_each_stage_core_holds_only_its_stages_weights(runtime_env, shared):
    runtime_env(NCRT_INSTANCE_TYPE="inf1.xlarge", NEURON_RT_MULTI_INSTANCE_SHARED_WEIGHTS=shared)
    model = ConvChain().eval()
    traced = neuron.trace(model, torch.rand(1, 3, 8, 8), compiler_args="--neuroncore-pipeline-cores 2")
    traced(torch.rand(1, 3, 8, 8))  # each stage made its copy on its core
    whole = sum(t.numel() * t.element_size() for t in list(model.parameters()) + list(model.buffers()))
    stages = traced.manifest.partition["stages"]
    assert sum(stage["param_bytes"] for stage in stages) == whole and all(stage["param_bytes"] < whole for stage in stages)
    assert neuron.weight_bytes(traced.loaded) == whole  # one copy of the model in all, split over its cores
    assert not traced.loaded.model.replicas  # the whole model was never copied onto a core


def test_a_process_with_fewer_cores_than_the_pipeline_cannot_hold_a_replica(runtime_env):
    runtime_env(NCRT_INSTANCE_TYPE="inf1.xlarge", NEURON_RT_NUM_CORES="1")
    traced = neuron.trace(ConvChain().eval(), torch.rand(1, 3, 8, 8), compiler_args="--neuroncore-pipeline-cores 2")
    with pytest.raises(PlacementError, match="2 NeuronCores?.*1"):
        traced(torch.rand(1, 3, 8, 8))


def test_explicit_placement_replicates_pipelines(inf1):
    model = ConvChain().eval()
    traced = neuron.trace(model, torch.rand(1, 3, 8, 8), compiler_args="--neuroncore-pipeline-cores 2")
    with neuron.neuron_cores_context(start_nc=0, nc_count=4):
        neuron.set_multicore(traced)
    assert len(traced.loaded.pipelines) == 2
    images = [torch.rand(1, 3, 8, 8) for _ in range(4)]
    futures = [traced.loaded.submit((image,)) for image in images]
    for future, image in zip(futures, images):
        equal(future.result(), plain(model, image))


def test_ncg_groups_each_hold_one_pipeline(runtime_env, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        runtime_env(NCRT_INSTANCE_TYPE="inf1.xlarge", NEURONCORE_GROUP_SIZES="2,2")
    model = ConvChain().eval()
    path = tmp_path / "chain.pt"
    torch.jit.save(neuron.trace(model, torch.rand(1, 3, 8, 8), compiler_args="--neuroncore-pipeline-cores 2"), str(path))
    first, second = neuron.load(str(path)), neuron.load(str(path))
    assert (first.placement_label, second.placement_label) == ("NC0-1", "NC2-3")
    image = torch.rand(1, 3, 8, 8)
    equal(first(image), second(image))
    assert [s.core.index for s in second.loaded.pipelines[0].stages] == [2, 3]


@pytest.mark.slow
def test_the_benchmark_runs_in_quick_mode(python_env):
    """A smoke run of benchmarks/bench_pipeline.py (its figures are for the docs, not asserted here)."""
    bench = Path(__file__).resolve().parents[3] / "benchmarks" / "bench_pipeline.py"
    env = {k: v for k, v in python_env.items() if not k.startswith(("NEURON", "NCRT_INSTANCE"))}
    result = subprocess.run([sys.executable, str(bench), "--quick"], env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    for line in ("ratio pipeline / 1 core:", "ratio pipeline / DataParallel on the same 2 cores:",
                 "ratio pipeline / bare torch at its best:", "latency p50 pipeline / 1 core:", "load average"):
        assert line in result.stdout
