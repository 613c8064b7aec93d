"""The placement report lists every model of the run, those unloaded before exit included."""

from __future__ import annotations

import pytest

import ncrt
from ncrt.model import unload_when_freed
from ncrt.plugins.ncg.report import build_report


class Wrapper:
    """A framework object owning one placement (unloaded when freed)."""

    def __init__(self, runtime, name, start=None):
        model = ncrt.Model(name, "python", ncrt.Manifest("python"), lambda x: x)
        self.loaded = runtime.place(model, ncrt.PlacementRequest(start=start))
        self.finalizer = unload_when_freed(self, self.loaded)


def test_models_freed_before_exit_stay_in_the_report(runtime_env, tmp_path):
    runtime = runtime_env(NCRT_INSTANCE_TYPE="inf1.xlarge", NCRT_PLACEMENT_REPORT=str(tmp_path / "r.json"))
    first = Wrapper(runtime, "first")
    kept = Wrapper(runtime, "kept")
    del first  # freed: NC0 is free again
    later = Wrapper(runtime, "later")
    report = build_report(runtime)
    rows = {m["name"]: (m["label"], m["unloaded"], m["shared_with"]) for m in report["models"]}
    assert rows == {"first": ("NC0", True, []), "kept": ("NC1", False, []), "later": ("NC0", False, [])}
    assert [m.name for m in runtime.models] == ["kept", "later"]
    assert later and kept


@pytest.mark.filterwarnings("ignore::ncrt.ModelSwitchWarning")
def test_sharing_is_reported_only_while_both_models_were_placed(runtime_env, tmp_path):
    runtime = runtime_env(NCRT_INSTANCE_TYPE="inf1.xlarge", NCRT_PLACEMENT_REPORT=str(tmp_path / "r.json"))
    a = Wrapper(runtime, "a", start=0)
    b = Wrapper(runtime, "b", start=0)  # shares NC0 with a while both live
    del a
    c = Wrapper(runtime, "c", start=0)  # shares NC0 with b only
    rows = {m["name"]: m["shared_with"] for m in build_report(runtime)["models"]}
    assert rows == {"a": ["b"], "b": ["a", "c"], "c": ["b"]}
    assert b and c
