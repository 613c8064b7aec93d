"""``ncrt bench``: the sweep against the bare framework, budget, plot, JSON; outputs checked."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

import ncrt
import npzplugin
import toolmodels
from ncrt.adapters.numpy import ADAPTER
from ncrt.errors import BadInputError
from ncrt.parallel import DataParallelRunner
from ncrt.plugins.tools import bench


def test_points_runs_and_outputs_match_the_plain_model(runtime_env):
    runtime = runtime_env(NCRT_INSTANCE_TYPE="inf1.xlarge")
    model = runtime.pm.hook.ncrt_load(artifact=toolmodels.dense, config=runtime.config)
    target = bench.BenchTarget(runtime, model, [([32], "float32")], compiled_batch=2)
    batch = target.inputs(8)
    (array,) = batch
    np.testing.assert_allclose(target.call_bare(batch), toolmodels.reference_dense(array), rtol=1e-6)
    loaded = runtime.place(model, ncrt.PlacementRequest(replicas=4))
    outputs = DataParallelRunner(loaded, ADAPTER, compiled_batch=2)(batch)
    np.testing.assert_allclose(outputs, toolmodels.reference_dense(array), rtol=1e-5, atol=1e-6)
    loaded.unload()
    result = bench.run_point(target, bench.BenchPoint(8, 4, 2, False), duration=0.2)
    assert result.skipped is None and result.calls > 0 and result.p50_ms <= result.p99_ms
    assert result.throughput == pytest.approx(result.calls * 8 / result.seconds)
    assert bench.run_point(target, bench.BenchPoint(8, 5, 1, True), 0.1).skipped == \
        "needs 5 cores, this process holds 4"
    assert "static batching needs" in bench.run_point(target, bench.BenchPoint(6, 2, 1, False), 0.1).skipped


def test_best_within_budget():
    def result(label: int, throughput: float, p99: float) -> bench.BenchResult:
        return bench.BenchResult(bench.BenchPoint(label, 1, 1, True), 1, 1.0, throughput, p99 / 2, p99)

    results = [result(1, 100, 1.0), result(2, 300, 5.0), result(4, 500, 20.0)]
    assert bench.best_within(results, 6.0).point.batch == 2
    assert bench.best_within(results, None).point.batch == 4
    assert bench.best_within(results, 0.5) is None


def test_bad_model_spec_is_explained():
    with pytest.raises(BadInputError, match="neither an existing path nor module:name"):
        bench.resolve_artifact("no-such-model")


@pytest.mark.slow
def test_command_sweeps_a_callable_with_json_and_plot(ncrt_command, tmp_path):
    plot = tmp_path / "bench.png"
    result = ncrt_command("bench", "toolmodels:dense", "--input-shape", "32", "--duration", "0.2",
                          "--batch-sizes", "4,8", "--replicas", "1,2", "--threads", "1,3", "--dynamic", "both",
                          "--json", "--plot", str(plot), "--latency-budget-ms", "1000", NCRT_INSTANCE_TYPE="inf1.xlarge")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    points = report["points"]
    dynamic = [p for p in points if p["dynamic"]]
    static = [p for p in points if not p["dynamic"]]
    assert len(dynamic) == len(static) == 2 * 2 * 2  # no compiled batch: chunks of batch / replicas
    for point in points:
        assert point["skipped"] is None and point["throughput"] > 0 and point["bare_throughput"] > 0
        assert point["ratio"] == pytest.approx(point["throughput"] / point["bare_throughput"], rel=1e-3)
    best = max(points, key=lambda p: p["throughput"] if p["p99_ms"] <= 1000 else 0)
    assert report["best"]["throughput"] == best["throughput"]
    assert report["settings"].startswith("use: NEURON_RT_NUM_CORES=")
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_command_table_for_a_compiled_model_of_a_plugin(ncrt_command, tmp_path):
    weights = np.random.default_rng(1).standard_normal((32, 8)).astype("float32")
    compiled = npzplugin.compile_dense(weights, tmp_path / "dense_npz", batch=4)
    result = ncrt_command("bench", str(compiled), "-p", "npzplugin", "--duration", "0.2", "--replicas", "1,2",
                          "--threads", "2", NCRT_INSTANCE_TYPE="inf1.xlarge")
    assert result.returncode == 0, result.stderr
    assert "samples/s" in result.stdout and "x bare" in result.stdout
    rows = [line for line in result.stdout.splitlines() if line.startswith("│")]
    assert [row.split("│")[1].strip() for row in rows] == ["4", "8", "4", "8"]
    assert "best throughput: b" in result.stdout and "use: NEURON_RT_NUM_CORES=" in result.stdout


@pytest.mark.slow
def test_impossible_budget_exits_1_with_the_lowest_p99(ncrt_command):
    result = ncrt_command("bench", "toolmodels:dense", "--input-shape", "32", "--duration", "0.1",
                          "--replicas", "1", "--threads", "1", "--latency-budget-ms", "0.000001", "--json")
    assert result.returncode == 1
    assert "no setting meets p99 <= 1e-06 ms; the lowest p99 measured was" in result.stderr
    assert json.loads(result.stdout)["best"] is None


def test_missing_input_signature_is_explained(runtime_env):
    runtime = runtime_env()
    model = runtime.pm.hook.ncrt_load(artifact=toolmodels.dense, config=runtime.config)
    args = SimpleNamespace(input_shape=None, dtype="float32")
    with pytest.raises(BadInputError, match="records no input signature; give its per-sample shape"):
        bench._input_specs(model, args.input_shape, args.dtype)
