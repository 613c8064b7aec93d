"""How plugins couple: through hooks only (placement answers, declared variables, runners,
process records), so a blocked plugin leaves nothing behind and a third-party plugin can
take a built-in's place."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import warnings

import pytest

import ncrt
from ncrt.config import ConfigError, InvalidValue, Variable, VariableTable, parse_config
from ncrt.manager import plugin_manager, variable_table
from ncrt.plugins.ncg import shim
from ncrt.records import read_records


def _model(name: str, cores: int = 1) -> ncrt.Model:
    return ncrt.Model(name, "python", ncrt.Manifest("python", pipeline_cores=cores), lambda x: x)


def _distribution(root, name: str, body: str) -> None:
    """A third-party plugin installed as a distribution with an ``ncrt`` entry point."""
    (root / f"{name}.py").write_text(textwrap.dedent(body))
    info = root / f"{name}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name.replace('_', '-')}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[ncrt]\n{name} = {name}\n")


REVERSED_GROUPS = """
    import ncrt

    @ncrt.hookimpl
    def ncrt_placement(model, request, runtime):
        # Group i of a NEURONCORE_GROUP_SIZES layout of single cores is counted from the end.
        if request.device_index is None:
            return None
        last = runtime.table.core_count - 1
        return ncrt.Placement(cores=(last - request.device_index,))
"""


def test_an_entry_point_plugin_replaces_the_ncg_shims_answer(tmp_path, monkeypatch, runtime_env):
    monkeypatch.setenv("NCRT_INSTANCE_TYPE", "inf1.xlarge")
    monkeypatch.setenv("NEURONCORE_GROUP_SIZES", "4x1")
    shim.reset_warning()  # the deprecation warning is once per process
    with pytest.warns(DeprecationWarning):
        shim_answer = runtime_env().place(_model("a"), ncrt.PlacementRequest(device_index=0))
    assert shim_answer.cores == (0,)  # the shim: group 0
    ncrt.reset_runtime()
    _distribution(tmp_path, "reversed_groups", REVERSED_GROUPS)
    monkeypatch.syspath_prepend(str(tmp_path))
    pm = plugin_manager(blocked=[])
    assert pm.get_plugin("reversed_groups") is not None and pm.get_plugin("ncg") is not None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        runtime = ncrt.Runtime(pm=pm)
    try:
        placed = [runtime.place(_model(f"m{i}"), ncrt.PlacementRequest(device_index=i)) for i in range(4)]
        assert [p.cores for p in placed] == [(3,), (2,), (1,), (0,)]
        assert len(runtime.cores) == 4  # the shim's configuration still applies: 4 groups of 1
    finally:
        runtime.close()


BLOCKED_NCG = """
import warnings
warnings.simplefilter("error", DeprecationWarning)  # the shim, if active, would warn
import ncrt
from ncrt.config import VARIABLES
runtime = ncrt.get_runtime()
first = runtime.load(lambda x: x + 1, device_index=2)
second = runtime.load(lambda x: x * 2)
print(len(runtime.cores), first.cores, second.cores, first(1), second(4),
      "NEURONCORE_GROUP_SIZES" in [v.name for v in VARIABLES], runtime.pm.get_plugin("ncg"))
"""


@pytest.mark.slow
def test_ncrt_works_with_the_ncg_plugin_blocked(python, python_env):
    python_env.update(NCRT_INSTANCE_TYPE="inf1.6xlarge", NEURONCORE_GROUP_SIZES="2,4,3,4", NCRT_DISABLE_PLUGINS="ncg")
    result = subprocess.run([python, "-c", BLOCKED_NCG], env=python_env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    # runtime 2.x: all 16 cores, a device index is a FlexEG start core, no legacy variable read
    assert result.stdout.split() == ["16", "(2,)", "(0,)", "2", "8", "False", "None"]


def test_plugins_declare_their_variables_and_the_runtime_validates_them(monkeypatch, isolated_runtime):
    def parse_even(name: str, text: str) -> int:
        if not text.isdigit() or int(text) % 2:
            raise InvalidValue(f"{text!r} is not an even number")
        return int(text)

    class Declares:
        @ncrt.hookimpl
        def ncrt_add_variables(self, variables):
            variables.add(Variable("NCRT_EVEN_THING", "An even count", "an even whole number", "2", parse_even,
                                   value=2))

    pm = plugin_manager(blocked=[], entry_points=False)
    pm.register(Declares())
    table = variable_table(pm)
    assert "NCRT_EVEN_THING" in table and "NEURONCORE_GROUP_SIZES" in table and "NEURON_RT_NUM_CORES" in table
    assert parse_config({}, table).setting("NCRT_EVEN_THING") == 2
    assert parse_config({"NCRT_EVEN_THING": " 8 "}, table).setting("NCRT_EVEN_THING") == 8
    monkeypatch.setenv("NCRT_EVEN_THING", "3")
    with pytest.raises(ConfigError, match=r"NCRT_EVEN_THING='3' is not valid \('3' is not an even number\); accepted: an even whole number"):
        ncrt.Runtime(pm=pm)


def test_a_variable_has_one_owner():
    table = VariableTable()
    with pytest.raises(ValueError, match="NEURON_RT_NUM_CORES is declared twice"):
        table.add(Variable("NEURON_RT_NUM_CORES", "again", "anything", "0"))


def test_the_variables_command_prints_the_registry(ncrt_cli):
    result = ncrt_cli("variables", "--json")
    names = [entry["name"] for entry in json.loads(result.stdout)]
    assert names == [variable.name for variable in variable_table(plugin_manager(entry_points=False))]
    assert {"NCRT_PLACEMENT_REPORT", "NCRT_TF_INTRA_OP_THREADS", "NEURON_PROCESS_TAG", "NCRT_LEGACY_NCG"} <= set(names)


@pytest.fixture
def ncrt_cli(python, python_env):
    def run(*args: str) -> subprocess.CompletedProcess:
        result = subprocess.run([python, "-m", "ncrt", *args], env=python_env, capture_output=True, text=True,
                                timeout=120)
        assert result.returncode == 0, result.stderr
        return result
    return run


def test_the_runner_is_chosen_at_load_through_pluggy(isolated_runtime):
    """A hook wrapper around ncrt_load sees (and may wrap) the runner: nothing bypasses pluggy."""
    calls: list[str] = []

    class Counting:
        @ncrt.hookimpl(wrapper=True)
        def ncrt_load(self, artifact, config):
            model = yield
            inner = model.runner

            def counted(model, inputs, core):
                calls.append(model.name)
                return inner(model, inputs, core)

            model.runner = counted
            return model

    pm = plugin_manager(blocked=[], entry_points=False)
    pm.register(Counting())
    traced: list[str] = []
    undo = pm.add_hookcall_monitoring(lambda name, impls, kwargs: traced.append(name),
                                      lambda outcome, name, impls, kwargs: None)
    runtime = ncrt.Runtime(pm=pm)
    try:
        model = runtime.load(lambda x: x * 3, name="tripled")
        assert [model(i) for i in range(3)] == [0, 3, 6]
        assert model.submit((5,)).result() == 15
    finally:
        runtime.close()
        undo()
    assert calls == ["tripled"] * 4
    assert traced.count("ncrt_load") == 1  # the per-call path calls no hook at all


def test_one_writer_with_fields_from_plugins(isolated_runtime):
    class Adds:
        @ncrt.hookimpl
        def ncrt_process_record(self, runtime, record):
            record["adds"] = {"models": len(runtime.models)}

    pm = plugin_manager(blocked=[], entry_points=False)
    pm.register(Adds())
    runtime = ncrt.Runtime(pm=pm)
    try:
        runtime.load(lambda x: x, name="one")
        record = read_records(runtime.state_dir)[runtime.pid]
        assert record["adds"] == {"models": 1} and record["command"] == runtime.command
        assert "latency" in record and "tag" in record  # the stats plugin's fields, same record
    finally:
        runtime.close()
    assert runtime.pid not in read_records(runtime.state_dir)


def test_a_stash_key_is_typed_storage_private_to_its_holder():
    first, second = ncrt.StashKey[int](), ncrt.StashKey[int]()
    stash = ncrt.Stash()
    stash[first] = 1
    assert stash[first] == 1 and second not in stash and stash.get(second, None) is None
    assert stash.setdefault(second, 5) == 5 and len(stash) == 2


def test_no_plugin_module_reads_the_environment_itself():
    """Settings are read through the variable table (config.setting), not os.environ."""
    from pathlib import Path

    root = Path(ncrt.__file__).resolve().parents[1] / "plugins"
    # the placement report records the Neuron variables as data; the Ray worker reports the
    # NEURON_RT_VISIBLE_CORES that Ray wrote, raw, beside the cores the runtime reserved
    allowed = {"report.py", "worker.py"}
    offenders = []
    for path in root.rglob("*.py"):
        text = path.read_text()
        if ("os.environ.get(" in text or "getenv(" in text) and path.name not in allowed:
            offenders.append(str(path.relative_to(root)))
    assert offenders == []
