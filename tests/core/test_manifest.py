from __future__ import annotations

import json

import pytest

from ncrt.errors import BadInputError, HashMismatchError, ModelLoadError
from ncrt.manifest import Manifest, sha256_of, verify_payload


def test_manifest_round_trips_through_a_directory(tmp_path):
    manifest = Manifest("torch", batch_size=4, pipeline_cores=2, inputs=[{"shape": [4, 3]}])
    manifest.write(tmp_path)
    assert Manifest.read(tmp_path) == manifest


def test_the_stage_partition_round_trips_and_older_manifests_have_none(tmp_path):
    stages = [{"index": 0, "first": "a", "last": "b", "units": 2, "cost": 0.1, "param_bytes": 8, "inputs": [[1, 3]]},
              {"index": 1, "first": "c", "last": "c", "units": 1, "cost": 0.1, "param_bytes": 4, "inputs": [[1, 2]]}]
    manifest = Manifest("torch", pipeline_cores=2,
                        partition={"requested": 2, "stages": stages, "cost_basis": "time", "note": ""})
    manifest.write(tmp_path)
    assert Manifest.read(tmp_path).partition == manifest.partition and manifest.stage_count == 2
    older = json.loads(manifest.to_json())
    del older["partition"]
    assert Manifest.from_json(json.dumps(older)).stage_count == 1


def test_missing_or_broken_manifest(tmp_path):
    with pytest.raises(ModelLoadError, match="not an ncrt-compiled model"):
        Manifest.read(tmp_path)
    (tmp_path / "ncrt-manifest.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match="manifest of .*ncrt-manifest.json is not readable"):
        Manifest.read(tmp_path)


def test_hash_validation_refuses_a_corrupted_payload(tmp_path):
    payload = tmp_path / "model"
    payload.mkdir()
    (payload / "weights.bin").write_bytes(b"\x00" * 64)
    manifest = Manifest("python", sha256=sha256_of(payload))
    verify_payload(manifest, payload, enabled=True)
    (payload / "weights.bin").write_bytes(b"\x00" * 63 + b"\x01")
    verify_payload(manifest, payload, enabled=False)  # off by default, as in the runtime
    with pytest.raises(HashMismatchError, match="corrupted.*NEURON_RT_VALIDATE_HASH=true"):
        verify_payload(manifest, payload, enabled=True)


def test_validation_without_a_recorded_hash_is_refused():
    with pytest.raises(HashMismatchError, match="carries no sha256"):
        verify_payload(Manifest("python"), b"abc", enabled=True)


def test_sha256_ignores_the_manifest_file(tmp_path):
    (tmp_path / "a").write_bytes(b"x")
    before = sha256_of(tmp_path)
    Manifest("python", sha256=before).write(tmp_path)
    assert sha256_of(tmp_path) == before
