"""``ncrt check-model``: manifest through the hook or the files, cores needed, hash verification."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from ncrt.manifest import Manifest

import npzplugin

WEIGHTS = np.random.default_rng(2).standard_normal((32, 8)).astype("float32")


@pytest.fixture
def compiled(tmp_path):
    return npzplugin.compile_dense(WEIGHTS, tmp_path / "dense_npz", batch=4, pipeline_cores=2)


def test_report_through_a_plugin(ncrt_command, compiled):
    result = ncrt_command("check-model", str(compiled), "-p", "npzplugin")
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert "framework:          npz" in text
    assert "compiled batch:     4 (batch dim 0)" in text
    assert "    x: float32[4x32]" in text and "    y: float32[4x8]" in text
    assert "run this model with at least 2 NeuronCore(s)" in text
    assert "dynamic batching:   yes (any batch along dim 0, cut into chunks of 4)" in text
    assert "as whole 2-core groups only (up to 8 on inf1.6xlarge)" in text
    assert "hash:               verified" in text


def test_json_and_manifest_source(ncrt_command, compiled):
    report = json.loads(ncrt_command("check-model", str(compiled), "-p", "npzplugin", "--json").stdout)
    assert report["cores_needed"] == 2 and report["replication"] is False and report["replicas_that_fit"] == 8
    assert report["manifest_source"] == "ncrt_read_manifest" and report["hash"] == "verified"


def test_tampered_payload_fails_verification(ncrt_command, compiled):
    np.save(compiled / "weights.npy", WEIGHTS * 2)
    result = ncrt_command("check-model", str(compiled), "-p", "npzplugin")
    assert result.returncode == 1
    assert "hash:               mismatch (compiled model payload is corrupted" in result.stdout


def test_without_a_plugin_the_manifest_is_read_from_the_files(ncrt_command, compiled):
    result = ncrt_command("check-model", str(compiled), "--json", NCRT_INSTANCE_TYPE="inf1.xlarge")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["manifest_source"] == "file" and report["framework"] == "npz"
    assert report["hash"] == "not checked" and "no installed plugin loads this model" in report["hash_detail"]
    assert report["replicas_that_fit"] == 2


def test_a_one_core_model_replicates(ncrt_command, tmp_path):
    single = npzplugin.compile_dense(WEIGHTS, tmp_path / "single", batch=1)
    text = ncrt_command("check-model", str(single), "-p", "npzplugin", "--no-verify").stdout
    assert "run this model with at least 1 NeuronCore(s)" in text
    assert "replication:        yes (1-core model: up to 16 replicas on inf1.6xlarge" in text
    assert "hash:               not checked (--no-verify)" in text


def test_not_a_model_is_explained(ncrt_command, tmp_path):
    (tmp_path / "empty").mkdir()
    result = ncrt_command("check-model", str(tmp_path / "empty"))
    assert result.returncode == 1
    assert "is not a compiled model any ncrt plugin knows; accepted:" in result.stderr


@pytest.mark.slow
def test_torch_archive_through_its_plugin(ncrt_command, tmp_path):
    torch = pytest.importorskip("torch")
    from ncrt.plugins import torch as ncrt_torch

    module = torch.nn.Sequential(torch.nn.Linear(32, 8), torch.nn.Tanh()).eval()
    traced = ncrt_torch.trace(module, torch.zeros(4, 32), compiler_args=["--neuroncore-pipeline-cores", "2"])
    path = tmp_path / "dense.pt"
    traced.save(str(path))
    report = json.loads(ncrt_command("check-model", str(path), "--json").stdout)
    assert report["framework"] == "torch" and report["cores_needed"] == 2 and report["batch_size"] == 4
    assert report["manifest_source"] == "ncrt_read_manifest" and report["hash"] == "verified"
    assert report["inputs"] == [{"shape": [4, 32], "dtype": "float32"}]
    copy = tmp_path / "copy.pt"
    shutil.copy(path, copy)
    assert json.loads(ncrt_command("check-model", str(copy), "--json", "--no-verify").stdout)["cores_needed"] == 2


@pytest.mark.slow
def test_the_stage_partition_of_a_pipelined_model(ncrt_command, tmp_path):
    torch = pytest.importorskip("torch")
    from ncrt.plugins import torch as ncrt_torch

    module = torch.nn.Sequential(torch.nn.Linear(32, 16), torch.nn.Tanh(), torch.nn.Linear(16, 8), torch.nn.ReLU())
    traced = ncrt_torch.trace(module.eval(), torch.zeros(4, 32), compiler_args="--neuroncore-pipeline-cores 3")
    path = tmp_path / "staged.pt"
    traced.save(str(path))
    report = json.loads(ncrt_command("check-model", str(path), "--json").stdout)
    assert report["pipeline_stages"] == 3 and report["cores_needed"] == 3
    stages = report["partition"]["stages"]
    assert [stage["index"] for stage in stages] == [0, 1, 2] and stages[0]["first"] == "_0"
    assert sum(stage["param_bytes"] for stage in stages) == 4 * (32 * 16 + 16 + 16 * 8 + 8)
    text = ncrt_command("check-model", str(path), "--no-verify").stdout
    assert "pipeline stages:    3 (cost: fastest of 5 runs per torch.fx operation" in text
    assert "    stage 0 on core 0: _0 .. " in text and "    stage 2 on core 2: " in text
    assert "run this model with at least 3 NeuronCore(s)" in text


def test_a_model_that_could_not_be_cut_says_why(ncrt_command, tmp_path):
    manifest = Manifest("python", pipeline_cores=4, partition={
        "requested": 4, "stages": [], "cost_basis": "x", "note": "model 'm' cannot be cut into 4 stages: too small"})
    (tmp_path / "m").mkdir()
    manifest.write(tmp_path / "m")
    text = ncrt_command("check-model", str(tmp_path / "m"), "--no-verify").stdout
    assert "pipeline stages:    1 (runs whole) - model 'm' cannot be cut into 4 stages: too small" in text
