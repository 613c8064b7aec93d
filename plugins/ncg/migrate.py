"""``ncrt migrate``: move an application from NeuronCore Groups to runtime 2.x.

* ``ncrt migrate env [NAME=VALUE ...]`` prints the runtime 2.x settings that replace
  ``NEURONCORE_GROUP_SIZES`` (of the environment, or of the assignments given), with the
  start core of each group.
* ``ncrt migrate code PATH ...`` prints a unified diff that rewrites the legacy usage
  (:mod:`ncrt.plugins.ncg.migrate_code`); ``--write`` applies it.
* ``ncrt migrate check -- COMMAND ...`` runs COMMAND under its legacy settings, then
  (or ``--migrated COMMAND2``) under the translated runtime 2.x settings with
  ``NCRT_LEGACY_NCG=error``, prints both placement reports side by side and exits 1
  when any model lands on different cores.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import tempfile
from pathlib import Path
from typing import Any, Mapping, Sequence

from ncrt.config import format_core_set
from ncrt.errors import BadInputError, ConfigError
from ncrt.hookspecs import hookimpl

from .launcher import add_run_options, child_environment, command_of, run_command
from .report import read_report
from .shim import VARIABLE, GroupLayout, layout_of, legacy_value

__all__ = ["translation", "render_env", "compare_reports", "render_comparison", "check"]

EXIT_DIFFERENT = 1
EXIT_FAILED = 2


# --- env -----------------------------------------------------------------------------


def translation(layout: GroupLayout) -> dict[str, Any]:
    """The runtime 2.x equivalent of a layout, as ``migrate env --json`` prints it."""
    return {
        VARIABLE: ",".join(map(str, layout.sizes)),
        "NEURON_RT_NUM_CORES": str(layout.total),
        "NEURON_RT_VISIBLE_CORES": layout.visible_cores_text(),
        "groups": layout.describe_groups(),
        "tensorflow_replicas": layout.replication,
    }


def render_env(layout: GroupLayout) -> str:
    """Shell lines: the settings to use, and a table of the groups' start cores."""
    lines = [
        f"# {VARIABLE}={','.join(map(str, layout.sizes))} (Neuron Runtime 1.x) -> runtime 2.x:",
        f"unset {VARIABLE}",
        f"export NEURON_RT_NUM_CORES={layout.total}    # any {layout.total} free NeuronCores",
        f"# or: export NEURON_RT_VISIBLE_CORES={layout.visible_cores_text()}    # exactly these cores",
        "#",
        "# group  size  start core  cores      MXNet under NCG -> runtime 2.x (FlexEG)",
    ]
    for row in layout.describe_groups():
        lines.append(
            f"# {row['group']:>5}  {row['size']:>4}  {row['start']:>10}  {row['cores']:<9}  "
            f"mx.neuron({row['group']}) -> mx.neuron({row['start']})"
        )
    lines.append("# PyTorch and TensorFlow: load the models in the same order; each takes the next free group.")
    if layout.replication is not None:
        count = layout.replication
        lines.append(f"# TensorFlow: {count}x1 replicated 1-core models {count} times; runtime 2.x replicates "
                     "them on up to 4 cores by default" + ("." if count == 4 else
                     f"; for {count} use tfn.auto_multicore(..., num_cores={count}) or "
                     f"`ncrt tf-auto-multicore --num_cores {count}`."))
    return "\n".join(lines)


def _assignments(items: Sequence[str]) -> dict[str, str]:
    environ: dict[str, str] = {}
    for item in items:
        name, equals, value = item.partition("=")
        if not equals or not name:
            raise SystemExit(f"ncrt migrate env: expected NAME=VALUE, got {item!r}")
        environ[name.strip()] = value
    return environ


def _env_command(args: argparse.Namespace) -> int:
    environ = dict(os.environ) if not args.assignments else _assignments(args.assignments)
    value = args.group_sizes or legacy_value(environ)
    if value is None:
        print(f"# {VARIABLE} is not set: nothing to migrate (runtime 2.x settings already apply)")
        return 0
    layout = layout_of(value)
    _check_no_mix(environ)
    print(json.dumps(translation(layout), indent=2) if args.json else render_env(layout))
    return 0


def _check_no_mix(environ: Mapping[str, str]) -> None:
    for other in ("NEURON_RT_VISIBLE_CORES", "NEURON_RT_NUM_CORES"):
        if environ.get(other, "").strip():
            raise ConfigError(VARIABLE, legacy_value(dict(environ)), f"{VARIABLE} or {other}, not both",
                              f"{other} is also set; keep {other} and unset {VARIABLE}")


# --- code ----------------------------------------------------------------------------


def _code_command(args: argparse.Namespace) -> int:
    from .migrate_code import migrate_paths

    value = args.group_sizes or legacy_value()
    migrations = migrate_paths(args.paths, layout_of(value) if value else None)
    for migration in migrations:
        sys.stdout.write(migration.diff())
        if args.write and migration.changed:
            Path(migration.path).write_text(migration.rewritten)
    findings = [finding for migration in migrations for finding in migration.findings]
    for finding in findings:
        print(f"{finding}", file=sys.stderr)
    return 1 if findings else 0


# --- check ---------------------------------------------------------------------------


def _models(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    return list(report.get("models", []))


def _pairs(legacy: list[dict[str, Any]], migrated: list[dict[str, Any]]) -> list[tuple[dict | None, dict | None]]:
    """Models matched by name when names are unique on both sides, else by load order."""
    names = [m["name"] for m in legacy], [m["name"] for m in migrated]
    if all(len(set(side)) == len(side) for side in names) and set(names[0]) == set(names[1]):
        by_name = {m["name"]: m for m in migrated}
        return [(m, by_name[m["name"]]) for m in legacy]
    count = max(len(legacy), len(migrated))
    pad = [None] * count
    return list(zip((legacy + pad)[:count], (migrated + pad)[:count]))


CORE_VIEWS = {"process": "cores", "global": "global_cores"}
"""What ``compare_reports(cores=...)`` compares: per-process core indices or global ones."""


def _same(left: dict | None, right: dict | None, cores: str = "process") -> bool:
    if left is None or right is None:
        return False
    keys = (CORE_VIEWS[cores], "cores_per_replica", "framework")
    return all(left.get(key) == right.get(key) for key in keys)


def compare_reports(legacy: Mapping[str, Any], migrated: Mapping[str, Any],
                    cores: str = "process") -> list[dict[str, Any]]:
    """One row per model: both placements and whether they are the same.

    ``cores="process"`` compares the cores as each process indexes them (from 0);
    ``cores="global"`` compares the host's global core indices.
    """
    if cores not in CORE_VIEWS:
        raise BadInputError(f"cores={cores!r} is not valid; accepted: {' or '.join(map(repr, CORE_VIEWS))}")
    return [
        {"legacy": left, "migrated": right, "same": _same(left, right, cores)}
        for left, right in _pairs(_models(legacy), _models(migrated))
    ]


def _cell(model: dict | None) -> str:
    if model is None:
        return "(not loaded)"
    shared = f" shares {','.join(model['shared_with'])}" if model.get("shared_with") else ""
    replicas = f" x{model['replicas']}" if model.get("replicas", 1) > 1 else ""
    return f"{model['label']}{replicas} (global {_globals(model)}){shared} sw={model.get('model_switches', 0)}"


def _globals(model: dict) -> str:
    return format_core_set(model.get("global_cores", []))


def _settings(report: Mapping[str, Any]) -> str:
    settings = report.get("settings", {})
    names = (VARIABLE, "NEURON_RT_NUM_CORES", "NEURON_RT_VISIBLE_CORES")
    return " ".join(f"{name}={settings[name]}" for name in names if name in settings) or "(defaults)"


def render_comparison(rows: list[dict[str, Any]], legacy: Mapping[str, Any], migrated: Mapping[str, Any]) -> str:
    """The side-by-side table ``ncrt migrate check`` prints."""
    cells = [(_name(row), _cell(row["legacy"]), _cell(row["migrated"]), "same" if row["same"] else "DIFFERENT")
             for row in rows]
    header = ("model", f"legacy: {_settings(legacy)}", f"runtime 2.x: {_settings(migrated)}", "")
    widths = [max(len(row[i]) for row in [header, *cells]) for i in range(3)]
    lines = ["  ".join(text.ljust(width) for text, width in zip(row, widths + [0])).rstrip()
             for row in [header, *cells]]
    different = sum(not row["same"] for row in rows)
    lines.append(f"{len(rows)} model(s), {different} placed differently" if rows else "no models were loaded")
    return "\n".join(lines)


def _name(row: dict[str, Any]) -> str:
    model = row["legacy"] or row["migrated"]
    return f"{model['name']} [{model['framework']}]"


def _legacy_env(base: Mapping[str, str], value: str | None) -> dict[str, str]:
    env = dict(base)
    env["NCRT_LEGACY_NCG"] = "warn"
    if value:
        env[VARIABLE] = value
    return env


def _migrated_env(base: Mapping[str, str], layout: GroupLayout | None, visible: bool) -> dict[str, str]:
    env = {name: text for name, text in base.items() if name not in (VARIABLE, "NEURON_RT_NUM_CORES")}
    env["NCRT_LEGACY_NCG"] = "error"
    if layout is not None:
        if visible:
            env["NEURON_RT_VISIBLE_CORES"] = layout.visible_cores_text()
        else:
            env["NEURON_RT_NUM_CORES"] = str(layout.total)
    return env


def _run_with_report(label: str, command: Sequence[str], env: dict[str, str], report: Path) -> dict[str, Any] | None:
    """Run one side; its report, or None (explained on stderr) when it failed."""
    env["NCRT_PLACEMENT_REPORT"] = str(report)
    print(f"ncrt migrate check: {label}: {shlex.join(command)}", file=sys.stderr)
    code = run_command(command, env)
    if code != 0:
        print(f"ncrt migrate check: the {label} run exited with status {code}", file=sys.stderr)
        return None
    if not report.exists():
        return {"format": "none", "models": [], "settings": {}}
    return read_report(report)


def _layout_from(value: str | None, report: Mapping[str, Any]) -> GroupLayout | None:
    """The legacy layout: given, or as the legacy run itself set it."""
    ncg = report.get("ncg") or {}
    value = value or ncg.get("group_sizes")
    return layout_of(value) if value else None


def check(command: Sequence[str], migrated_command: Sequence[str] | None, base: Mapping[str, str],
          group_sizes: str | None = None, visible: bool = False, as_json: bool = False) -> int:
    """Run both sides, print the comparison; 0 same, 1 different, 2 a run failed."""
    value = group_sizes or legacy_value(dict(base))
    with tempfile.TemporaryDirectory(prefix="ncrt-migrate-check-") as folder:
        legacy = _run_with_report("legacy", command, _legacy_env(base, value), Path(folder, "legacy.json"))
        if legacy is None:
            return EXIT_FAILED
        layout = _layout_from(value, legacy)
        env = _migrated_env(base, layout, visible)
        migrated = _run_with_report("runtime 2.x", migrated_command or command, env, Path(folder, "migrated.json"))
        if migrated is None:
            return EXIT_FAILED
    rows = compare_reports(legacy, migrated)
    if as_json:
        print(json.dumps({"legacy": legacy, "migrated": migrated, "rows": rows}, indent=2))
    else:
        print(render_comparison(rows, legacy, migrated))
    return 0 if rows and all(row["same"] for row in rows) else EXIT_DIFFERENT


def _check_command(args: argparse.Namespace) -> int:
    command = command_of(args.command_line)
    base = child_environment(instance_type=args.instance_type, state_dir=args.state_dir)
    migrated = shlex.split(args.migrated) if args.migrated else None
    return check(command, migrated, base, args.group_sizes, args.visible_cores, args.json)


# --- commands ----------------------------------------------------------------------------


def _add_env(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("env", help="print the runtime 2.x settings that replace NEURONCORE_GROUP_SIZES")
    parser.add_argument("assignments", nargs="*", metavar="NAME=VALUE",
                        help="an environment to translate instead of the current one")
    parser.add_argument("--group-sizes", metavar="SIZES", help="translate this NEURONCORE_GROUP_SIZES value")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(func=_env_command)


def _add_code(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("code", help="rewrite legacy NeuronCore Group usage in Python and shell files")
    parser.add_argument("paths", nargs="+", metavar="PATH", help="files or folders")
    parser.add_argument("--group-sizes", metavar="SIZES",
                        help="the NEURONCORE_GROUP_SIZES the code runs under, for files that do not set it "
                        "(default: a value set in the files, else the environment)")
    parser.add_argument("--write", action="store_true", help="apply the changes instead of only printing the diff")
    parser.set_defaults(func=_code_command)


def _add_check(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "check", help="run a command under legacy and runtime 2.x settings and compare placements",
        usage="ncrt migrate check [options] -- COMMAND [ARG ...]",
    )
    add_run_options(parser)
    parser.add_argument("--group-sizes", metavar="SIZES", help="the legacy NEURONCORE_GROUP_SIZES (default: the "
                        "environment's, or the value the application sets itself)")
    parser.add_argument("--migrated", metavar="COMMAND", help="run this command (a shell-quoted string) for the "
                        "runtime 2.x side, such as the output of `ncrt migrate code --write`")
    parser.add_argument("--visible-cores", action="store_true",
                        help="translate to NEURON_RT_VISIBLE_CORES instead of NEURON_RT_NUM_CORES")
    parser.add_argument("--json", action="store_true", help="print both reports and the comparison as JSON")
    parser.add_argument("command_line", nargs=argparse.REMAINDER, metavar="COMMAND")
    parser.set_defaults(func=_check_command)


@hookimpl
def ncrt_add_commands(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("migrate", help="migrate from NEURONCORE_GROUP_SIZES to runtime 2.x settings")
    commands = parser.add_subparsers(dest="migrate_command", metavar="SUBCOMMAND")
    _add_env(commands)
    _add_code(commands)
    _add_check(commands)
    parser.set_defaults(func=lambda args: parser.print_help() or 2)
