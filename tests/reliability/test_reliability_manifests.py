"""Damaged and edited manifests give a ModelLoadError that names the model, never a raw error.

The damaged-file harness (``damaged_files.py``) makes the cases: every manifest field set
to wrong types and out-of-range values, required fields removed, unknown ones added,
broken JSON (truncated, not UTF-8, nested 100,000 deep), byte flips in the manifest's
text, and edits that keep the manifest valid but change what it says. Schema-breaking
cases must fail cleanly whether or not ``NEURON_RT_VALIDATE_HASH`` is set; edits that
keep the schema must be caught by the seal when it is set. The same cases run against
a plain model directory (the core alone) and against compiled models of each framework.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import ncrt
from damaged_files import (byte_flips, manifest_edits, partition_edits, partition_semantic_edits, run_matrix,
                           semantic_edits)
import ncrt.plugins.torch.hooks  # noqa: F401 - declares the typed extra keys of the torch manifest below
from ncrt.errors import HashMismatchError
from ncrt.manifest import Manifest, check_digest

PAYLOAD_SHA = "ab" * 32
FRAMEWORKS = ["torch", "tensorflow", "mxnet"]


# --------------------------------------------------------------------------- the core alone


@pytest.fixture
def model_dir(tmp_path):
    """A directory holding only a sealed manifest (what every plugin's manifest looks like)."""
    directory = tmp_path / "model"
    directory.mkdir()
    Manifest("torch", batch_size=4, inputs=[{"shape": [4, 3], "dtype": "float32"}],
             outputs=[{"shape": [4, 2], "dtype": "float32"}], sha256=PAYLOAD_SHA,
             compiler_args=["--neuroncore-pipeline-cores", "1"],
             extra={"dynamic_batch_size": False, "torch_version": "2.13"}).write(directory)
    return directory


def read_only(path: Path) -> Manifest:
    return Manifest.read(path)


def read_and_validate(path: Path) -> Manifest:
    manifest = Manifest.read(path)
    check_digest(manifest, lambda: PAYLOAD_SHA)  # the payload is intact: only the manifest may be damaged
    return manifest


def manifest_of(directory: Path) -> dict:
    return json.loads((directory / "ncrt-manifest.json").read_text())


@pytest.mark.parametrize("load", [read_only, read_and_validate], ids=["no-validation", "validation"])
def test_every_schema_breaking_edit_is_a_clean_error(model_dir, tmp_path, load):
    cases = manifest_edits(manifest_of(model_dir))
    report = run_matrix(model_dir, "ncrt-manifest.json", cases, load, tmp_path)
    assert report.counts()["clean"] == len(cases), report.summary()


def test_schema_errors_say_what_is_wrong_and_what_is_accepted(model_dir, tmp_path):
    cases = {case.name: case for case in manifest_edits(manifest_of(model_dir))}
    expected = {
        'manifest:pipeline_cores="2"': 'pipeline_cores is "2" (a string); accepted: a whole number from 1 to 65536',
        "manifest:pipeline_cores=1.5": "pipeline_cores is 1.5 (a number); accepted: a whole number from 1 to 65536",
        "manifest:pipeline_cores=null": "pipeline_cores is null (null); accepted: a whole number from 1 to 65536",
        "manifest:batch_size=-1": "batch_size is -1 (a number); accepted: null or a whole number from 1 to",
        "manifest:extra=[]": "extra is [] (a list); accepted: an object",
        "manifest:no framework": "the required field 'framework' is missing",
        "manifest:unknown field": "unknown field 'surprise'",
        "manifest:batch_size=8 (consistent type)": "batch_size is 8, but the first input's shape [4, 3] has 4",
        "manifest:nested 100000 deep": "is not readable: JSON nested too deeply",
    }
    for name, text in expected.items():
        report = run_matrix(model_dir, "ncrt-manifest.json", [cases[name]], read_only, tmp_path)
        outcome, = report.outcomes
        assert outcome.verdict == "clean" and text in outcome.error, (name, outcome.error)
        assert "case0-model/ncrt-manifest.json is not" in outcome.error


def test_valid_edits_pass_the_schema_but_not_the_seal(model_dir, tmp_path):
    cases = semantic_edits(manifest_of(model_dir))
    assert run_matrix(model_dir, "ncrt-manifest.json", cases, read_only, tmp_path).counts()["accepted"] == len(cases)
    report = run_matrix(model_dir, "ncrt-manifest.json", cases, read_and_validate, tmp_path)
    assert report.counts()["clean"] == len(cases), report.summary()
    assert all("was changed after it was written" in outcome.error for outcome in report.outcomes)


def test_byte_flips_in_a_manifest_never_pass_hash_validation(model_dir, tmp_path):
    text = (model_dir / "ncrt-manifest.json").read_bytes()
    cases = byte_flips(text, per_region=120, seed=14, regions={"manifest": [(0, len(text))]})
    report = run_matrix(model_dir, "ncrt-manifest.json", cases, read_and_validate, tmp_path)
    assert report.counts()["clean"] == len(cases), report.summary()
    unvalidated = run_matrix(model_dir, "ncrt-manifest.json", cases, read_only, tmp_path)
    assert unvalidated.counts()["unclean"] == 0, unvalidated.summary()


def test_a_sealed_manifest_round_trips_and_old_unsealed_ones_still_read(model_dir):
    manifest = Manifest.read(model_dir)
    assert manifest.seal == manifest.content_digest() and manifest.format_version == 2
    check_digest(manifest, lambda: PAYLOAD_SHA)
    legacy = manifest_of(model_dir)
    legacy.pop("seal")
    legacy["format_version"] = 1
    (model_dir / "ncrt-manifest.json").write_text(json.dumps(legacy))
    old = Manifest.read(model_dir)
    assert old.seal is None
    check_digest(old, lambda: PAYLOAD_SHA)  # format 1: the payload alone is checked
    with pytest.raises(HashMismatchError, match="payload is corrupted"):
        check_digest(old, lambda: "cd" * 32)


# --------------------------------------------------------------------------- a NeuronCore Pipeline partition

STAGES = [{"index": 0, "first": "fc1", "last": "relu1", "units": 2, "cost": 0.001, "param_bytes": 64,
           "inputs": [[4, 3]]},
          {"index": 1, "first": "fc2", "last": "fc2", "units": 1, "cost": 0.0009, "param_bytes": 40,
           "inputs": [[4, 8]]}]


@pytest.fixture
def pipelined_dir(tmp_path):
    """A sealed manifest of a model compiled for 2 pipeline cores, cut into 2 stages."""
    directory = tmp_path / "piped"
    directory.mkdir()
    Manifest("torch", batch_size=4, inputs=[{"shape": [4, 3], "dtype": "float32"}],
             outputs=[{"shape": [4, 2], "dtype": "float32"}], sha256=PAYLOAD_SHA, pipeline_cores=2,
             compiler_args=["--neuroncore-pipeline-cores", "2"],
             partition={"requested": 2, "stages": STAGES, "cost_basis": "measured time", "note": ""}).write(directory)
    return directory


@pytest.mark.parametrize("load", [read_only, read_and_validate], ids=["no-validation", "validation"])
def test_every_damaged_partition_is_a_clean_error(pipelined_dir, tmp_path, load):
    assert Manifest.read(pipelined_dir).stage_count == 2
    cases = partition_edits(manifest_of(pipelined_dir))
    report = run_matrix(pipelined_dir, "ncrt-manifest.json", cases, load, tmp_path)
    assert report.counts()["clean"] == len(cases), report.summary()
    assert all("partition" in outcome.error for outcome in report.outcomes), report.summary()


def test_partition_errors_say_what_is_wrong_and_what_is_accepted(pipelined_dir, tmp_path):
    cases = {case.name: case for case in partition_edits(manifest_of(pipelined_dir))}
    expected = {
        "manifest:partition=[]": "partition is [] (a list); accepted: {} or an object",
        "manifest:partition without stages": "with the field 'stages'",
        "manifest:partition.stages[1].cost=-1": "whose cost is a finite number >= 0 (not -1 (a number)) "
                                                "(stage 1 is not)",
        "manifest:partition.stages[0] without first": "with the field 'first' (stage 0 is not)",
        "manifest:partition.surprise": "'surprise' is not one",
        "manifest:partition.requested=pipeline_cores+1": "partition.requested is 3, but pipeline_cores is 2",
        "manifest:partition with one stage": "partition has 1 stage(s); accepted: none (the model runs whole) or 2 "
                                             "to pipeline_cores (2)",
        "manifest:partition stages out of order": "partition.stages[0] has index 1",
        "manifest:partition with fewer stages and no note": "but no note saying why",
    }
    for name, text in expected.items():
        report = run_matrix(pipelined_dir, "ncrt-manifest.json", [cases[name]], read_only, tmp_path)
        outcome, = report.outcomes
        assert outcome.verdict == "clean" and text in outcome.error, (name, outcome.error)
        assert "case0-piped/ncrt-manifest.json is not" in outcome.error


def test_valid_partition_edits_pass_the_schema_but_not_the_seal(pipelined_dir, tmp_path):
    cases = partition_semantic_edits(manifest_of(pipelined_dir))
    report = run_matrix(pipelined_dir, "ncrt-manifest.json", cases, read_only, tmp_path)
    assert report.counts()["accepted"] == len(cases), report.summary()
    report = run_matrix(pipelined_dir, "ncrt-manifest.json", cases, read_and_validate, tmp_path)
    assert report.counts()["clean"] == len(cases), report.summary()
    assert all("was changed after it was written" in outcome.error for outcome in report.outcomes)


@pytest.fixture(scope="module")
def compiled_pipeline(tmp_path_factory):
    pytest.importorskip("torch")
    from framework_models import build_torch_pipeline

    ncrt.reset_runtime()
    return build_torch_pipeline(tmp_path_factory.mktemp("torch_pipeline"))


@pytest.mark.slow
@pytest.mark.parametrize("validate", ["false", "true"])
def test_a_compiled_pipelines_damaged_partition_is_a_clean_error(compiled_pipeline, validate, monkeypatch, tmp_path):
    monkeypatch.setenv("NEURON_RT_VALIDATE_HASH", validate)
    monkeypatch.setenv("NCRT_INSTANCE_TYPE", "inf1.xlarge")
    ncrt.reset_runtime()
    compiled_pipeline.load(compiled_pipeline.path).unload()  # the intact one loads, as 2 stages
    cases = [compiled_pipeline.wrap(case) for case in partition_edits(compiled_pipeline.manifest)]
    report = run_matrix(compiled_pipeline.path, None, cases, _loader(compiled_pipeline), tmp_path)
    assert report.counts()["clean"] == len(cases), report.summary()
    if validate == "true":
        edits = [compiled_pipeline.wrap(case) for case in partition_semantic_edits(compiled_pipeline.manifest)]
        report = run_matrix(compiled_pipeline.path, None, edits, _loader(compiled_pipeline), tmp_path)
        assert report.counts()["clean"] == len(edits), report.summary()
        assert all("HashMismatchError" in outcome.error for outcome in report.outcomes)


# --------------------------------------------------------------------------- each framework


@pytest.fixture(scope="module", params=FRAMEWORKS)
def compiled(request, tmp_path_factory):
    pytest.importorskip(request.param)
    from framework_models import BUILDERS

    ncrt.reset_runtime()
    return BUILDERS[request.param](tmp_path_factory.mktemp(f"{request.param}_model"))


def _loader(compiled):
    def load(copy: Path) -> None:
        compiled.load(copy).unload()

    return load


@pytest.mark.slow
@pytest.mark.parametrize("validate", ["false", "true"])
def test_a_compiled_models_damaged_manifest_is_a_clean_error(compiled, validate, monkeypatch, tmp_path):
    monkeypatch.setenv("NEURON_RT_VALIDATE_HASH", validate)
    ncrt.reset_runtime()
    text = json.dumps(compiled.manifest).encode()
    cases = manifest_edits(compiled.manifest)
    cases += byte_flips(text, per_region=25, seed=3, regions={"manifest": [(0, len(text))]})
    cases = [case for case in cases if compiled.representable(case.apply(text))]
    report = run_matrix(compiled.path, compiled.manifest_file, [compiled.wrap(case) for case in cases],
                        _loader(compiled), tmp_path)
    assert report.counts()["unclean"] == 0, report.summary()
    accepted = [o.case.name for o in report.outcomes if o.case.kind == "manifest" and o.verdict != "clean"]
    assert not accepted, accepted


@pytest.mark.slow
def test_a_compiled_models_edited_manifest_fails_hash_validation(compiled, monkeypatch, tmp_path):
    cases = [compiled.wrap(case) for case in semantic_edits(compiled.manifest)]
    monkeypatch.setenv("NEURON_RT_VALIDATE_HASH", "true")
    ncrt.reset_runtime()
    report = run_matrix(compiled.path, compiled.manifest_file, cases, _loader(compiled), tmp_path)
    assert report.counts()["clean"] == len(cases), report.summary()
    assert all(isinstance(outcome.error, str) and "HashMismatchError" in outcome.error for outcome in report.outcomes)
    monkeypatch.setenv("NEURON_RT_VALIDATE_HASH", "false")
    ncrt.reset_runtime()
    intact = run_matrix(compiled.path, compiled.manifest_file, cases[:1], _loader(compiled), tmp_path)
    assert intact.counts()["accepted"] == 1, intact.summary()  # without validation: as the manifest says


@pytest.mark.slow
@pytest.mark.parametrize("validate", ["false", "true"])
def test_damage_to_the_frameworks_own_bytes_is_a_model_load_error(compiled, validate, monkeypatch, tmp_path):
    """Byte flips, truncations and random contents of every file of the compiled model
    (zip structure and pickles, SavedModel protobufs and variables, symbol JSON and params)
    end in ModelLoadError naming the file, never the framework's raw error."""
    from damage_report import _files, byte_cases

    monkeypatch.setenv("NEURON_RT_VALIDATE_HASH", validate)
    ncrt.reset_runtime()
    unclean, loaded_errors = [], 0
    for number, target in enumerate(_files(compiled.path)):
        report = run_matrix(compiled.path, target, byte_cases(compiled.path, target, 8, seed=number),
                            _loader(compiled), tmp_path)
        unclean += [f"{target}: {o.case.name} -> {o.error}" for o in report.unclean()]
        loaded_errors += sum(1 for o in report.outcomes if o.verdict == "clean")
    assert not unclean, "\n".join(unclean)
    assert loaded_errors > 0  # the matrix did damage what the loader reads
