"""ncrt run, the placement report and ncrt migrate env/code/check (plain Python models)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ncrt.cli import main
from ncrt.plugins.ncg.migrate import compare_reports
from ncrt.plugins.ncg.migrate_code import migrate_python, migrate_shell
from ncrt.plugins.ncg.report import read_report

LEGACY_APP = """\
import os
os.environ['NEURONCORE_GROUP_SIZES'] = '2,4,3,4'  # four groups
import ncrt

for index, size in enumerate((2, 4, 3, 4)):
    model = ncrt.Model(f"m{index}", "python", ncrt.Manifest(framework="python", pipeline_cores=size), abs)
    placed = ncrt.get_runtime().place(model, ncrt.PlacementRequest(cores_per_replica=size, device_index=index))
    print(placed.name, "->", placed.placement.label)
    assert placed.run((-index,)) == index
"""


def run_ncrt(args, env, **kwargs):
    return subprocess.run([sys.executable, "-m", "ncrt", *args], env=env, capture_output=True, text=True,
                          timeout=120, **kwargs)


def test_report_lists_models_cores_sharing_and_switches(tmp_path, python_env):
    script = tmp_path / "app.py"
    script.write_text(textwrap.dedent("""\
        import ncrt
        a = ncrt.load(lambda x: x + 1, name="a", start=0)
        b = ncrt.load(lambda x: x * 2, name="b", start=0)
        for i in range(3):
            assert a(i) == i + 1 and b(i) == 2 * i
    """))
    report = tmp_path / "out" / "report.json"
    env = dict(python_env, NCRT_INSTANCE_TYPE="inf1.xlarge", NEURON_RT_VISIBLE_CORES="1-2",
               NCRT_PLACEMENT_REPORT=str(report))
    subprocess.run([sys.executable, "-W", "ignore", str(script)], env=env, check=True, timeout=60)
    data = read_report(report)
    assert data["reserved_cores"] == [1, 2] and data["topology"] == "inf1.xlarge:4x4"
    a, b = data["models"]
    assert (a["name"], a["cores"], a["global_cores"], a["framework"]) == ("a", [0], [1], "python")
    assert a["shared_with"] == ["b"] and b["shared_with"] == ["a"]
    assert a["model_switches"] == 5  # a,b,a,b,a,b on NC0: five switches
    assert data["settings"]["NEURON_RT_VISIBLE_CORES"] == "1-2"


def test_report_keeps_models_unloaded_before_exit(tmp_path, python_env):
    """A model freed by the application is unloaded, and the report still says where it was."""
    script = tmp_path / "app.py"
    script.write_text(textwrap.dedent("""\
        import ncrt
        def run():
            a = ncrt.load(lambda x: x + 1, name="a", start=0)
            assert a(1) == 2
            a.unload()
            b = ncrt.load(lambda x: x * 2, name="b", start=0)  # NC0 is free again: b shares with no a
            assert b(2) == 4
        run()
        c = ncrt.load(lambda x: x, name="c", start=0)
    """))
    report = tmp_path / "report.json"
    env = dict(python_env, NCRT_INSTANCE_TYPE="inf1.xlarge", NCRT_PLACEMENT_REPORT=str(report))
    subprocess.run([sys.executable, "-W", "ignore", str(script)], env=env, check=True, timeout=60)
    models = {model["name"]: model for model in read_report(report)["models"]}
    assert sorted(models) == ["a", "b", "c"] and models["a"]["unloaded"] and not models["c"]["unloaded"]
    assert models["a"]["shared_with"] == [] and models["b"]["shared_with"] == ["c"]
    assert models["a"]["cores"] == models["b"]["cores"] == [0]


def test_ncrt_run_installs_compat_and_options(tmp_path, python_env):
    script = tmp_path / "app.py"
    script.write_text("import sys, ncrt\nprint('compat' if 'ncrt.compat' in sys.modules else 'none')\n"
                      "print(len(ncrt.get_runtime().cores))\nsys.exit(3)\n")
    report, state = tmp_path / "r.json", tmp_path / "state"
    result = run_ncrt(["run", "--instance-type", "inf1.6xlarge", "--state-dir", str(state),
                       "--placement-report", str(report), "--", sys.executable, str(script)], python_env)
    assert result.returncode == 3, result.stderr
    assert result.stdout.split() == ["compat", "16"]
    assert read_report(report)["models"] == [] and state.is_dir()


def test_ncrt_run_chains_an_existing_sitecustomize(tmp_path, python_env):
    (tmp_path / "sitecustomize.py").write_text("import builtins; builtins.CHAINED = True\n")
    env = dict(python_env, PYTHONPATH=f"{tmp_path}:{python_env['PYTHONPATH']}")
    result = run_ncrt(["run", "--", sys.executable, "-c", "import sys; print(CHAINED, 'ncrt.compat' in sys.modules)"],
                      env)
    assert result.stdout.split() == ["True", "True"], result.stderr


def test_ncrt_run_needs_a_command(python_env):
    result = run_ncrt(["run"], python_env)
    assert result.returncode != 0 and "after --" in result.stderr


def test_migrate_env(capsys, monkeypatch):
    monkeypatch.setenv("NEURONCORE_GROUP_SIZES", "2,4,3,4")
    assert main(["migrate", "env"]) == 0
    out = capsys.readouterr().out
    assert "NEURON_RT_NUM_CORES=13" in out and "NEURON_RT_VISIBLE_CORES=0-12" in out
    assert "mx.neuron(1) -> mx.neuron(2)" in out and "mx.neuron(3) -> mx.neuron(9)" in out
    assert main(["migrate", "env", "--json", "NEURONCORE_GROUP_SIZES=4x1"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["NEURON_RT_NUM_CORES"] == "4" and data["tensorflow_replicas"] == 4
    assert [g["start"] for g in data["groups"]] == [0, 1, 2, 3]


def test_migrate_env_unset_and_mixed(capsys, monkeypatch):
    assert main(["migrate", "env"]) == 0
    assert "nothing to migrate" in capsys.readouterr().out
    assert main(["migrate", "env", "NEURONCORE_GROUP_SIZES=2", "NEURON_RT_NUM_CORES=2"]) == 1
    assert "keep NEURON_RT_NUM_CORES" in capsys.readouterr().err


def test_migrate_python_keeps_formatting_and_comments():
    source = textwrap.dedent("""\
        import os
        import mxnet as mx
        os.environ["NEURONCORE_GROUP_SIZES"] = "2,4,3,4"   # legacy
        ctx = [mx.neuron(0), mx.neuron( 1 ), mx.neuron(3)]  # groups
        env = dict(NEURONCORE_GROUP_SIZES='2,4,3,4')
    """)
    migration = migrate_python("app.py", source)
    assert migration.rewritten == textwrap.dedent("""\
        import os
        import mxnet as mx
        os.environ["NEURON_RT_NUM_CORES"] = "13"   # legacy
        ctx = [mx.neuron(0), mx.neuron( 2 ), mx.neuron(9)]  # groups
        env = dict(NEURON_RT_NUM_CORES='13')
    """)
    assert migration.findings == []
    assert "-ctx = [mx.neuron(0), mx.neuron( 1 )" in migration.diff()


def test_migrate_python_reports_what_it_cannot_rewrite():
    source = textwrap.dedent("""\
        import os, mxnet as mx
        os.environ['NEURONCORE_GROUP_SIZES'] = '2,2'
        a = mx.neuron(i)
        b = mx.neuron(5)
        print(os.environ.get('NEURONCORE_GROUP_SIZES'))
        os.environ['NEURONCORE_GROUP_SIZES'] = sizes
    """)
    migration = migrate_python("app.py", source)
    lines = {finding.line: finding.message for finding in migration.findings}
    assert sorted(lines) == [3, 4, 5, 6]
    assert "mx.neuron([0, 2][index])" in lines[3] and "group 5 does not exist" in lines[4]
    assert "cannot rewrite safely" in lines[5] and "cannot rewrite safely" in lines[6]
    assert "mx.neuron(i)" in migration.rewritten


def test_mx_neuron_is_left_alone_without_group_sizes():
    assert not migrate_python("a.py", "import mxnet as mx\nmx.neuron(2)\n").changed


def test_migrate_shell():
    source = "export NEURONCORE_GROUP_SIZES=2,4,3,4\nNEURONCORE_GROUP_SIZES='8x1' python app.py\n" \
             "# NEURONCORE_GROUP_SIZES=1 in a comment\nNEURONCORE_GROUP_SIZES=$SIZES python app.py\n"
    migration = migrate_shell("run.sh", source)
    assert migration.rewritten.splitlines()[:3] == [
        "export NEURON_RT_NUM_CORES=13", "NEURON_RT_NUM_CORES='8' python app.py", "# NEURONCORE_GROUP_SIZES=1 in a comment"]
    assert [(f.line, "computed" in f.message) for f in migration.findings] == [(4, True)]


def test_migrate_code_command_writes(tmp_path, capsys):
    (tmp_path / "app.py").write_text("import mxnet as mx\nctx = mx.neuron(1)\n")
    (tmp_path / "run.sh").write_text("NEURONCORE_GROUP_SIZES=2,4,3,4 python app.py\n")
    assert main(["migrate", "code", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "+ctx = mx.neuron(2)" in out and "+NEURON_RT_NUM_CORES=13 python app.py" in out
    assert (tmp_path / "app.py").read_text().endswith("mx.neuron(1)\n")
    assert main(["migrate", "code", "--write", str(tmp_path)]) == 0
    assert (tmp_path / "app.py").read_text().endswith("mx.neuron(2)\n")
    capsys.readouterr()
    assert main(["migrate", "code", str(tmp_path)]) == 0  # already migrated: nothing to do
    assert capsys.readouterr().out == ""


@pytest.mark.slow
def test_migrate_check_same_and_different(tmp_path, python_env):
    legacy = tmp_path / "legacy.py"
    legacy.write_text(LEGACY_APP)
    migrated = tmp_path / "migrated.py"
    migrated.write_text(LEGACY_APP.replace("NEURONCORE_GROUP_SIZES'] = '2,4,3,4'", "NEURON_RT_NUM_CORES'] = '13'")
                        .replace("device_index=index", "start=(0, 2, 6, 9)[index]"))
    env = dict(python_env, NCRT_INSTANCE_TYPE="inf1.6xlarge")
    same = run_ncrt(["migrate", "check", "--migrated", f"{sys.executable} {migrated}", "--",
                     sys.executable, str(legacy)], env)
    assert same.returncode == 0, same.stderr
    assert "4 model(s), 0 placed differently" in same.stdout and "NC2-5" in same.stdout
    unmigrated = run_ncrt(["migrate", "check", "--", sys.executable, str(legacy)], env)
    assert unmigrated.returncode == 2 and "NCRT_LEGACY_NCG=error" in unmigrated.stderr
    wrong = tmp_path / "wrong.py"
    wrong.write_text(migrated.read_text().replace("(0, 2, 6, 9)", "(0, 2, 5, 9)"))
    different = run_ncrt(["migrate", "check", "--migrated", f"{sys.executable} {wrong}", "--",
                          sys.executable, str(legacy)], env)
    assert different.returncode == 1 and "DIFFERENT" in different.stdout


def test_compare_reports_pairs_by_name():
    left = {"models": [{"name": "a", "cores": [0], "cores_per_replica": 1, "framework": "x"},
                       {"name": "b", "cores": [1], "cores_per_replica": 1, "framework": "x"}]}
    right = {"models": list(reversed(left["models"]))}
    assert all(row["same"] for row in compare_reports(left, right))
    right = {"models": left["models"][:1]}
    assert [row["same"] for row in compare_reports(left, right)] == [True, False]
