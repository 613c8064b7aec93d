"""Seed 002 FlexEG configurations and seed 000's MXNet cases, with real outputs."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import ncrt.plugins.mxnet  # noqa: E402,F401 - patches MXNet (numpy.bool) when it is imported

pytest.importorskip("mxnet")

import ncrt  # noqa: E402
from mxnet_models import bind_at, cpu_outputs  # noqa: E402
from ncrt.errors import PlacementError  # noqa: E402

SIX_XL = {"NCRT_INSTANCE_TYPE": "inf1.6xlarge"}


def load_all(mx, checkpoints, starts: dict[str, int]):
    return {name: bind_at(mx, checkpoints[name], start) for name, start in starts.items()}


def check_outputs(mx, checkpoints, models, batch) -> None:
    for name, model in models.items():
        outputs = model.forward(data=batch)
        assert isinstance(outputs, list) and outputs is model.outputs
        for got, want in zip(outputs, cpu_outputs(mx, checkpoints[name], batch)):
            np.testing.assert_allclose(got.asnumpy(), want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("starts, labels", [
    ({"A": 0, "B": 2, "C": 6, "D": 9}, {"A": "NC0-1", "B": "NC2-5", "C": "NC6-8", "D": "NC9-12"}),
    ({"C": 0, "A": 3, "D": 5, "B": 9}, {"C": "NC0-2", "A": "NC3-4", "D": "NC5-8", "B": "NC9-12"}),
])
def test_good_configurations_load_without_sharing(mx, checkpoints, batch, runtime_env, starts, labels):
    runtime = runtime_env(**SIX_XL)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ncrt.ModelSwitchWarning)
        models = load_all(mx, checkpoints, starts)
    assert {name: model.placement for name, model in models.items()} == labels
    check_outputs(mx, checkpoints, models, batch)
    for name in "ABCDA":
        models[name].forward(data=batch)
    assert all(counters.model_switches == 0 for counters in runtime.counters)


def test_overlapping_configuration_warns_and_counts_switches(mx, checkpoints, batch, runtime_env):
    runtime = runtime_env(**SIX_XL)
    with pytest.warns(ncrt.ModelSwitchWarning) as record:
        models = load_all(mx, checkpoints, {"A": 0, "B": 2, "C": 5, "D": 9})
    message = " ".join(str(w.message) for w in record)
    assert "modelC" in message and "modelB" in message and "NC5-7" in message
    assert models["C"].placement == "NC5-7"
    check_outputs(mx, checkpoints, models, batch)
    models["C"].forward(data=batch)
    before = runtime.counters[5].model_switches
    for name in "BCB":
        models[name].forward(data=batch)
    assert runtime.counters[5].model_switches == before + 3  # C->B, B->C, C->B on NC5
    assert runtime.counters[2].model_switches == 0 and runtime.counters[7].model_switches == 0


def test_start_past_the_last_fitting_core_lists_valid_starts(mx, checkpoints, runtime_env):
    runtime_env(NCRT_INSTANCE_TYPE="inf1.xlarge")
    with pytest.raises(PlacementError, match=r"cannot start at core 3.*valid start indexes: 0, 1, 2"):
        bind_at(mx, checkpoints["A"], 3)
    assert bind_at(mx, checkpoints["A"], 2).placement == "NC2-3"


def test_num_cores_13_four_groups(mx, checkpoints, batch, runtime_env):
    runtime = runtime_env(NEURON_RT_NUM_CORES="13", **SIX_XL)
    models = load_all(mx, checkpoints, {"A": 0, "B": 2, "C": 6, "D": 9})
    assert len(runtime.cores) == 13 and models["D"].placement == "NC9-12"
    check_outputs(mx, checkpoints, models, batch)


def test_several_models_in_one_group_and_one_alone(mx, tmp_path, batch, runtime_env):
    from mxnet_models import build_checkpoint

    runtime = runtime_env(NEURON_RT_NUM_CORES="6", **SIX_XL)
    prefixes = [build_checkpoint(mx, tmp_path, str(i), 2 if i == 0 else 4) for i in range(4)]
    with pytest.warns(ncrt.ModelSwitchWarning):
        models = {str(i): bind_at(mx, prefix, 0 if i == 0 else 2) for i, prefix in enumerate(prefixes)}
    assert [m.placement for m in models.values()] == ["NC0-1", "NC2-5", "NC2-5", "NC2-5"]
    check_outputs(mx, dict(zip(models, prefixes)), models, batch)
    assert runtime.counters[2].model_switches >= 2 and runtime.counters[0].model_switches == 0


def test_two_models_share_the_process_group(mx, tmp_path, batch, runtime_env):
    runtime_env(NEURON_RT_NUM_CORES="2", **SIX_XL)
    from mxnet_models import build_checkpoint

    prefixes = [build_checkpoint(mx, tmp_path, f"S{i}", 2) for i in range(2)]
    with pytest.warns(ncrt.ModelSwitchWarning):
        models = {f"S{i}": bind_at(mx, prefix, 0) for i, prefix in enumerate(prefixes)}
    assert {m.placement for m in models.values()} == {"NC0-1"}
    check_outputs(mx, dict(zip(models, prefixes)), models, batch)
