"""examples/migration, tested the way a user's CI would: with the ncrt pytest plugin.

Each pair is a Neuron Runtime 1.x application (``*_legacy.py``, NEURONCORE_GROUP_SIZES)
and its runtime 2.x migration (``*_migrated.py``). ``neuron_process`` runs each under ncrt
in its own process on an emulated inf1.6xlarge, the migrated one with
``NCRT_LEGACY_NCG=error`` (proof that it no longer uses NeuronCore Groups);
``assert_same_placement`` compares them model by model, per process and globally.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from ncrt.testing import assert_same_placement

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "migration"

# name: (framework, [(label, global cores, replicas)] of each model in load order)
PAIRS = {
    "mxnet_ncg": ("mxnet", [("NC0-1", (0, 1), 1), ("NC2-5", (2, 3, 4, 5), 1), ("NC6-8", (6, 7, 8), 1),
                            ("NC9-12", (9, 10, 11, 12), 1)]),
    "torch_ncg": ("torch", [("NC0-1", (0, 1), 1), ("NC2-5", (2, 3, 4, 5), 1), ("NC6-8", (6, 7, 8), 1),
                            ("NC9-12", (9, 10, 11, 12), 1)]),
    "tensorflow_4x1": ("tensorflow", [("NC0-3", (0, 1, 2, 3), 4)]),
}


def pair(name: str):
    framework = PAIRS[name][0]
    missing = importlib.util.find_spec(framework) is None
    return pytest.param(name, marks=pytest.mark.skipif(missing, reason=f"{framework} is not installed"))


@pytest.mark.slow
@pytest.mark.parametrize("name", [pair(name) for name in PAIRS])
def test_the_migrated_application_places_every_model_like_the_legacy_one(name, neuron_process):
    framework, expected = PAIRS[name]
    quiet = {"TF_CPP_MIN_LOG_LEVEL": "2"}
    legacy = neuron_process(EXAMPLES / f"{name}_legacy.py", instance="inf1.6xlarge", env=quiet).check()
    migrated = neuron_process(EXAMPLES / f"{name}_migrated.py", instance="inf1.6xlarge",
                              env={**quiet, "NCRT_LEGACY_NCG": "error"}).check()

    assert_same_placement(legacy, migrated)
    assert_same_placement(legacy, migrated, cores="global")
    for run in (legacy, migrated):
        assert [(m.framework, m.label, m.global_cores, m.replicas) for m in run.models] == [
            (framework, label, cores, replicas) for label, cores, replicas in expected]
        assert all(model.model_switches == 0 and not model.shared_with for model in run.models)
    assert legacy.placement.ncg is not None and migrated.placement.ncg is None
    assert "NEURONCORE_GROUP_SIZES" in legacy.placement.settings
    assert "NEURONCORE_GROUP_SIZES" not in migrated.placement.settings


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("mxnet") is None, reason="mxnet is not installed")
def test_an_unmigrated_application_is_refused_under_legacy_ncg_error(neuron_process):
    refused = neuron_process(EXAMPLES / "mxnet_ncg_legacy.py", instance="inf1.6xlarge",
                             env={"NCRT_LEGACY_NCG": "error"})
    assert refused.returncode != 0 and refused.processes == ()
    assert "NEURONCORE_GROUP_SIZES" in refused.stderr
    with pytest.raises(AssertionError, match="exited with status 1"):
        assert_same_placement(refused, refused)
