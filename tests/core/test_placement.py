from __future__ import annotations

import pytest

from ncrt.errors import PlacementError
from ncrt.placement import Placement, PlacementTable, label


def load_in_order(table, sizes):
    groups = []
    for number, size in enumerate(sizes):
        cores = table.next_group(size)
        table.add(f"m{number}", cores)
        groups.append(cores)
    return groups


def test_seed_000_four_models_fill_consecutive_groups_of_thirteen():
    groups = load_in_order(PlacementTable(13), [2, 4, 3, 4])
    assert [label(g) for g in groups] == ["NC0-1", "NC2-5", "NC6-8", "NC9-12"]


def test_when_cores_are_used_up_models_share_the_least_loaded_group():
    table = PlacementTable(2)
    first, second = load_in_order(table, [2, 2])
    assert first == second == (0, 1)
    assert table.models_on(0) == ["m0", "m1"]


def test_sharing_prefers_the_group_with_fewest_models():
    table = PlacementTable(4)
    load_in_order(table, [2, 2])
    third = table.next_group(2)
    table.add("m2", third)
    assert table.next_group(2) == (2, 3)


def test_add_reports_who_shares_cores():
    table = PlacementTable(16)
    table.add("B", range(2, 6))
    assert table.add("C", range(5, 8)) == ["B"]
    assert table.add("D", range(9, 13)) == []


def test_flexeg_start_that_does_not_fit_lists_valid_starts():
    table = PlacementTable(4)
    assert table.check_fits(2, 2) == (2, 3)
    with pytest.raises(PlacementError) as info:
        table.check_fits(3, 2)
    assert "valid start indexes: 0, 1, 2" in str(info.value)
    assert info.value.status.name == "LOAD_NOT_ENOUGH_NC"


def test_a_model_larger_than_the_process_is_refused():
    with pytest.raises(PlacementError, match="needs 5 NeuronCore.*has 4"):
        PlacementTable(4).next_group(5)


def test_device_ids_outside_the_process_name_the_visible_range():
    with pytest.raises(PlacementError, match="nc:14 is not visible.*nc:0-nc:8"):
        PlacementTable(9).check_devices([0, 14])


def test_placement_splits_cores_into_replicas():
    placement = Placement(cores=(0, 1, 2, 3), cores_per_replica=2)
    assert placement.replicas == [(0, 1), (2, 3)]
    with pytest.raises(PlacementError):
        Placement(cores=(0, 1, 2), cores_per_replica=2)


def test_remove_frees_cores():
    table = PlacementTable(2)
    table.add("a", (0, 1))
    table.remove("a")
    assert table.is_free((0, 1))


def test_labels_match_the_runtime_style():
    assert label([2, 3, 4, 5]) == "NC2-5"
    assert label([0]) == "NC0"
    assert label([1, 3]) == "NC1,NC3"


def test_the_sharing_warning_points_at_the_callers_line(runtime_env):
    import warnings

    import ncrt

    runtime = runtime_env()
    runtime.load(lambda: 0, device_ids=[0])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        runtime.load(lambda: 0, device_ids=[0])
    assert caught[0].category is ncrt.ModelSwitchWarning
    assert caught[0].filename == __file__
