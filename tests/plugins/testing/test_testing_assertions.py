"""``ncrt.testing.assert_same_placement``: model-by-model comparison with ``ncrt migrate check``'s table."""

from __future__ import annotations

import copy
import subprocess
import sys

import pytest

import ncrt.testing
from ncrt.errors import BadInputError
from ncrt.plugins.ncg import migrate
from ncrt.testing import NeuronRun, ProcessPlacement, assert_same_placement


def model(name: str, cores: list[int], global_cores: list[int], replicas: int = 1, framework: str = "mxnet") -> dict:
    per_replica = len(cores) // replicas
    label = f"NC{cores[0]}" if len(cores) == 1 else f"NC{cores[0]}-{cores[-1]}"
    return {"name": name, "uid": f"{name}#1", "framework": framework, "cores": cores, "global_cores": global_cores,
            "cores_per_replica": per_replica, "replicas": replicas, "label": label, "shared_with": [],
            "model_switches": 0, "executions": {f"NC{c}": 1 for c in cores},
            "replica_cores": [cores[i:i + per_replica] for i in range(0, len(cores), per_replica)]}


def report(settings: dict, *models: dict, pid: int = 100) -> dict:
    return {"format": "ncrt-placement-report/1", "pid": pid, "command": "python app.py", "time": 0.0,
            "topology": "inf1.6xlarge:16x4", "settings": settings, "reserved_cores": [], "ncg": None,
            "models": list(models), "cores": []}


LEGACY = report({"NEURONCORE_GROUP_SIZES": "2,4"}, model("A", [0, 1], [0, 1]), model("B", [2, 3, 4, 5], [2, 3, 4, 5]))
MIGRATED = report({"NEURON_RT_NUM_CORES": "6"}, model("A", [0, 1], [0, 1]), model("B", [2, 3, 4, 5], [2, 3, 4, 5]))


def shifted(data: dict, by: int) -> dict:
    """The same placement in a process whose cores start ``by`` cores further on the host."""
    moved = copy.deepcopy(data)
    for entry in moved["models"]:
        entry["global_cores"] = [core + by for core in entry["global_cores"]]
    return moved


def test_the_same_placement_passes_for_reports_placements_and_runs():
    assert_same_placement(LEGACY, MIGRATED)
    assert_same_placement(ProcessPlacement.from_report(LEGACY), ProcessPlacement.from_report(MIGRATED))
    run = NeuronRun(("python", "app.py"), 100, 0, "", "", (ProcessPlacement.from_report(LEGACY),))
    assert_same_placement(run, MIGRATED, cores="global")


def test_a_different_placement_fails_with_the_migrate_check_table():
    moved = copy.deepcopy(MIGRATED)
    moved["models"][1] = model("B", [2, 3, 4], [2, 3, 4])
    with pytest.raises(AssertionError) as caught:
        assert_same_placement(LEGACY, moved)
    table = migrate.render_comparison(migrate.compare_reports(LEGACY, moved), LEGACY, moved)
    assert str(caught.value) == f"the placements are not the same (comparing per-process cores):\n{table}"
    assert str(caught.value).splitlines()[1:] == [
        "model      legacy: NEURONCORE_GROUP_SIZES=2,4  runtime 2.x: NEURON_RT_NUM_CORES=6",
        "A [mxnet]  NC0-1 (global 0-1) sw=0             NC0-1 (global 0-1) sw=0             same",
        "B [mxnet]  NC2-5 (global 2-5) sw=0             NC2-4 (global 2-4) sw=0             DIFFERENT",
        "2 model(s), 1 placed differently",
    ]


def test_cores_option_compares_per_process_or_global_cores():
    elsewhere = shifted(MIGRATED, 8)  # the same per-process cores, in a process holding NC8-13
    assert_same_placement(LEGACY, elsewhere)
    with pytest.raises(AssertionError, match=r"(?s)comparing global cores.*NC0-1 \(global 8-9\).*DIFFERENT"):
        assert_same_placement(LEGACY, elsewhere, cores="global")
    with pytest.raises(BadInputError, match="cores='local' is not valid; accepted: 'process' or 'global'"):
        assert_same_placement(LEGACY, MIGRATED, cores="local")


def test_a_model_loaded_on_one_side_only_or_no_models_at_all_fail():
    fewer = report({"NEURON_RT_NUM_CORES": "6"}, model("A", [0, 1], [0, 1]))
    with pytest.raises(AssertionError, match=r"(?s)\(not loaded\).*2 model\(s\), 1 placed differently"):
        assert_same_placement(LEGACY, fewer)
    with pytest.raises(AssertionError, match="no models were loaded"):
        assert_same_placement(report({}), report({}))


def test_a_failed_or_multi_process_run_and_other_values_are_refused():
    failed = NeuronRun(("python", "legacy.py"), 7, 2, "", "Traceback: boom\n", ())
    with pytest.raises(AssertionError, match=r"(?s)legacy.py \(pid 7\) exited with status 2.*--- stderr ---.*boom"):
        assert_same_placement(failed, MIGRATED)
    two = NeuronRun(("sh", "launch.sh"), 7, 0, "", "", (ProcessPlacement.from_report(LEGACY),
                                                        ProcessPlacement.from_report(report({}, pid=8))))
    with pytest.raises(BadInputError, match=r"ran 2 ncrt processes; compare them one by one"):
        assert_same_placement(two, MIGRATED)
    with pytest.raises(BadInputError, match="cannot compare the migrated side 'no'; accepted: a NeuronRun"):
        assert_same_placement(LEGACY, "no")


def test_migrate_check_compares_as_before():
    rows = migrate.compare_reports(LEGACY, shifted(MIGRATED, 8))
    assert [row["same"] for row in rows] == [True, True]
    assert [row["same"] for row in migrate.compare_reports(LEGACY, shifted(MIGRATED, 8), cores="global")] == [
        False, False]


def test_ncrt_testing_loads_its_names_lazily_and_import_ncrt_stays_light():
    assert ncrt.testing.assert_same_placement is assert_same_placement
    assert set(ncrt.testing.__all__) <= set(dir(ncrt.testing))
    with pytest.raises(AttributeError, match="has no attribute 'nothing'"):
        ncrt.testing.nothing
    probe = ("import sys, ncrt, ncrt.testing; before = sorted(m for m in sys.modules if m.startswith('ncrt.plugins') "
             "or m == 'pytest'); ncrt.testing.NeuronRun; after_names = 'pytest' in sys.modules; "
             "import ncrt.plugins.testing.plugin; "
             "print(before, after_names, any(m in sys.modules for m in ('torch', 'tensorflow', 'mxnet')))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert result.stdout.split() == ["[]", "False", "False"], result.stderr
