"""The NEURONCORE_GROUP_SIZES shim: parsing, translation, warnings, errors, group placement."""

from __future__ import annotations

import warnings

import pytest

import ncrt
from ncrt.errors import ConfigError, PlacementError
from ncrt.plugins.ncg import shim as ncg


@pytest.fixture(autouse=True)
def fresh_warning():
    ncg.reset_warning()
    yield
    ncg.reset_warning()


def identity(x):
    return x


@pytest.mark.parametrize("value, sizes", [
    ("2,4,3,4", (2, 4, 3, 4)),
    ("4x1", (1, 1, 1, 1)),
    ("2x2,4", (2, 2, 4)),
    (" 1 , 3X2 ", (1, 2, 2, 2)),
    ("007", (7,)),
])
def test_parse_group_sizes(value, sizes):
    assert ncg.parse_group_sizes(value) == sizes


@pytest.mark.parametrize("value, reason", [
    ("", "empty"),
    ("2,,4", "empty item"),
    ("2;4", "neither a size nor NxM"),
    ("0", "at least 1"),
    ("0x4", "at least 1"),
    ("-1", "neither"),
    ("4x", "neither"),
    ("99999999999999999999", "larger than"),
    ("65536x65536", "more than"),
])
def test_malformed_values_are_clear_errors(value, reason):
    with pytest.raises(ConfigError, match=reason) as caught:
        ncg.parse_group_sizes(value)
    assert "NEURONCORE_GROUP_SIZES" in str(caught.value) and "NxM" in str(caught.value)


def test_layout_starts_are_prefix_sums():
    layout = ncg.layout_of("2,4,3,4")
    assert layout.total == 13
    assert layout.starts == (0, 2, 6, 9)
    assert layout.groups == [(0, 2), (2, 4), (6, 3), (9, 4)]
    assert layout.replication is None and ncg.layout_of("8x1").replication == 8
    assert layout.runtime2_env() == {"NEURON_RT_NUM_CORES": "13"}
    assert layout.visible_cores_text() == "0-12"


def test_translation_reserves_the_sum(runtime_env):
    with pytest.warns(DeprecationWarning, match="NEURON_RT_NUM_CORES=13 or NEURON_RT_VISIBLE_CORES=0-12"):
        runtime = runtime_env(NCRT_INSTANCE_TYPE="inf1.6xlarge", NEURONCORE_GROUP_SIZES="2,4,3,4")
    assert len(runtime.cores) == 13
    layout = ncg.active_layout(runtime.config)
    assert layout.groups == [(0, 2), (2, 4), (6, 3), (9, 4)] and layout.replication is None


def test_nx1_publishes_replicas(runtime_env):
    with pytest.warns(DeprecationWarning):
        runtime = runtime_env(NCRT_INSTANCE_TYPE="inf1.6xlarge", NEURONCORE_GROUP_SIZES="8x1")
    assert ncg.active_layout(runtime.config).replication == 8 and len(runtime.cores) == 8


def test_unset_changes_nothing(runtime_env):
    runtime = runtime_env(NCRT_INSTANCE_TYPE="inf1.6xlarge")
    assert len(runtime.cores) == 16 and ncg.active_layout(runtime.config) is None


def test_warning_once_per_process(runtime_env):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        runtime_env(NCRT_INSTANCE_TYPE="inf1.6xlarge", NEURONCORE_GROUP_SIZES="4x1")
        runtime_env(NCRT_INSTANCE_TYPE="inf1.6xlarge", NEURONCORE_GROUP_SIZES="4x1")
    deprecations = [w for w in caught if issubclass(w.category, DeprecationWarning)]
    assert len(deprecations) == 1
    assert deprecations[0].filename.endswith("conftest.py")  # the caller (runtime_env), not ncrt


@pytest.mark.parametrize("other, value", [("NEURON_RT_NUM_CORES", "4"), ("NEURON_RT_VISIBLE_CORES", "0-3")])
def test_mixing_with_runtime2_settings_is_an_error(runtime_env, other, value):
    with pytest.raises(ConfigError, match=f"keep {other}.*unset NEURONCORE_GROUP_SIZES"):
        runtime_env(NCRT_INSTANCE_TYPE="inf1.6xlarge", NEURONCORE_GROUP_SIZES="2,2", **{other: value})


def test_oversized_value_names_the_variable(runtime_env):
    with pytest.raises(ConfigError, match="NEURONCORE_GROUP_SIZES.*need 17 NeuronCores.*16"):
        runtime_env(NCRT_INSTANCE_TYPE="inf1.6xlarge", NEURONCORE_GROUP_SIZES="4,4,4,5")


def test_legacy_error_mode(runtime_env):
    with pytest.raises(ConfigError, match="NEURON_RT_NUM_CORES=4.*NCRT_LEGACY_NCG=error"):
        runtime_env(NCRT_INSTANCE_TYPE="inf1.6xlarge", NEURONCORE_GROUP_SIZES="4x1", NCRT_LEGACY_NCG="error")


def test_legacy_error_mode_without_the_variable_is_fine(runtime_env):
    assert len(runtime_env(NCRT_INSTANCE_TYPE="inf1.xlarge", NCRT_LEGACY_NCG="error").cores) == 4


def _ncg_runtime(runtime_env, sizes="2,4,3,4"):
    with pytest.warns(DeprecationWarning):
        return runtime_env(NCRT_INSTANCE_TYPE="inf1.6xlarge", NEURONCORE_GROUP_SIZES=sizes)


def _model(name, cores):
    manifest = ncrt.Manifest(framework="python", pipeline_cores=cores)
    return ncrt.Model(name, "python", manifest, identity)


def test_group_index_means_group(runtime_env):
    runtime = _ncg_runtime(runtime_env)
    placed = [runtime.place(_model(f"m{i}", size), ncrt.PlacementRequest(cores_per_replica=size, device_index=i))
              for i, size in enumerate((2, 4, 3, 4))]
    assert [p.cores for p in placed] == [(0, 1), (2, 3, 4, 5), (6, 7, 8), (9, 10, 11, 12)]
    assert placed[1].run((5,)) == 5


def test_group_index_errors(runtime_env):
    runtime = _ncg_runtime(runtime_env)
    with pytest.raises(PlacementError, match="Group 4 does not exist.*groups 0-3"):
        runtime.load(identity, device_index=4)
    with pytest.raises(PlacementError, match="needing 3 NeuronCore.*Group 0 of 2"):
        runtime.place(_model("big", 3), ncrt.PlacementRequest(cores_per_replica=3, device_index=0))


def test_device_index_without_ncg_is_the_start_core(runtime_env):
    runtime = runtime_env(NCRT_INSTANCE_TYPE="inf1.xlarge")
    assert runtime.load(identity, device_index=1).cores == (1,)


def test_load_order_fills_groups_then_shares(runtime_env):
    runtime = _ncg_runtime(runtime_env)
    sizes = (2, 4, 3, 4)
    placed = [runtime.place(_model(f"m{i}", s), ncrt.PlacementRequest(cores_per_replica=s)) for i, s in enumerate(sizes)]
    assert [p.cores for p in placed] == [(0, 1), (2, 3, 4, 5), (6, 7, 8), (9, 10, 11, 12)]
    with pytest.warns(ncrt.ModelSwitchWarning):
        extra = runtime.place(_model("extra", 3), ncrt.PlacementRequest(cores_per_replica=3))
    assert extra.cores == (2, 3, 4)  # the first group of at least 3 cores, least shared


def test_load_order_skips_groups_too_small(runtime_env):
    runtime = _ncg_runtime(runtime_env)
    assert runtime.place(_model("four", 4), ncrt.PlacementRequest(cores_per_replica=4)).cores == (2, 3, 4, 5)
    assert runtime.place(_model("two", 2), ncrt.PlacementRequest(cores_per_replica=2)).cores == (0, 1)
    with pytest.warns(RuntimeWarning, match="'five' needs 5 NeuronCore.*fits none of the NeuronCore Groups"):
        five = runtime.place(_model("five", 5), ncrt.PlacementRequest(cores_per_replica=5))
    assert five.cores == (6, 7, 8, 9, 10)  # across groups, on the next free cores


def _guide_runtime(runtime_env, sizes):
    with pytest.warns(DeprecationWarning):
        return runtime_env(NCRT_INSTANCE_TYPE="inf1.6xlarge", NEURONCORE_GROUP_SIZES=sizes)


def _load_in_order(runtime, sizes):
    return [runtime.place(_model(f"m{i}", size), ncrt.PlacementRequest(cores_per_replica=size)).cores
            for i, size in enumerate(sizes)]


def test_guide_overlapping_models_with_differing_sizes(runtime_env):
    """torch-neuron core-placement guide, NCG '2,2': models of 2, 2, 1, 1, 1 cores."""
    runtime = _guide_runtime(runtime_env, "2,2")
    with pytest.warns(ncrt.ModelSwitchWarning):
        placed = _load_in_order(runtime, (2, 2, 1, 1, 1))
    assert placed == [(0, 1), (2, 3), (0,), (2,), (0,)]


def test_guide_incompatible_model_sizes(runtime_env):
    """torch-neuron core-placement guide, NCG '2,2': a 3-core model loads to nc0-nc2, across groups."""
    runtime = _guide_runtime(runtime_env, "2,2")
    with pytest.warns(ncrt.ModelSwitchWarning, match="'m2' on NC0-2 shares NeuronCores with m0, m1"):
        with pytest.warns(RuntimeWarning, match="'m2' needs 3 NeuronCore.*fits none of the NeuronCore Groups"):
            placed = _load_in_order(runtime, (2, 2, 3))
    assert placed == [(0, 1), (2, 3), (0, 1, 2)]


def test_guide_single_and_multiple_groups(runtime_env):
    """torch-neuron core-placement guide: NCG '4' and '3,4,1'."""
    assert _load_in_order(_guide_runtime(runtime_env, "4"), (4,)) == [(0, 1, 2, 3)]
    ncg.reset_warning()
    assert _load_in_order(_guide_runtime(runtime_env, "3,4,1"), (3, 4, 1)) == [(0, 1, 2), (3, 4, 5, 6), (7,)]


def test_guide_multiple_model_copies(runtime_env):
    """torch-neuron core-placement guide, NCG '2,2,2,2': four loads of a 2-core model, one per group."""
    placed = _load_in_order(_guide_runtime(runtime_env, "2,2,2,2"), (2, 2, 2, 2))
    assert placed == [(0, 1), (2, 3), (4, 5), (6, 7)]


def test_replicas_go_one_per_group(runtime_env):
    runtime = _ncg_runtime(runtime_env, "4x1")
    loaded = runtime.place(_model("rep", 1), ncrt.PlacementRequest(cores_per_replica=1, replicas=4))
    assert loaded.cores == (0, 1, 2, 3) and len(loaded.replicas) == 4
    assert sorted(loaded.run((i,)) for i in range(8)) == list(range(8))


def test_start_and_device_ids_stay_runtime2(runtime_env):
    runtime = _ncg_runtime(runtime_env)
    assert runtime.load(identity, start=5).cores == (5,)
    assert runtime.load(identity, device_ids=[7, 8]).cores == (7, 8)
