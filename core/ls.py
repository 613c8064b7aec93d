"""``ncrt ls``: the host's cores, who holds each, and the models placed on them.

Works from any process while others hold cores: holders are found by probing the core
locks, and their models come from their records in the state directory (trusted only
for pids that still hold locks). A core running a NeuronCore Pipeline stage lists it
(``stages``: model, replica, stage, executions, busy seconds). ``--json`` prints these
rows for scripts; ``--json-output`` prints what ``neuron-ls --json-output`` prints
(``ncrt.neuron_ls``).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from .config import parse_config
from .records import read_records
from .reservation import default_state_dir, probe_holders
from .runtime import Runtime, current_runtime
from .topology import Topology, build_topology

__all__ = ["add_command", "render", "stages_by_core", "survey"]


def _models_by_core(records: dict[int, dict[str, Any]], pid: int) -> dict[int, list[str]]:
    by_core: dict[int, list[str]] = {}
    for core in records.get(pid, {}).get("cores", []):
        by_core[core["global_index"]] = core.get("models", [])
    return by_core


def _own_models(runtime: Runtime | None) -> dict[int, list[str]]:
    if runtime is None or runtime.closed:
        return {}
    return {entry["global_index"]: entry["models"] for entry in runtime.describe()["cores"]}


def stages_by_core(models: list[dict[str, Any]]) -> dict[int, list[dict[str, Any]]]:
    """Global core -> the NeuronCore Pipeline stages running there: model, replica, stage, busy time."""
    by_core: dict[int, list[dict[str, Any]]] = {}
    for model in models:
        for stage in model.get("stages", []):
            entry = {"model": model["name"], "replica": stage["replica"], "stage": stage["stage"],
                     "label": stage.get("label", ""), "executions": stage.get("executions", 0),
                     "busy_seconds": stage.get("busy_seconds", 0.0)}
            for core in stage.get("global_cores", [stage["global_core"]]):
                by_core.setdefault(core, []).append(entry)
    return by_core


def _stages(records: dict[int, dict[str, Any]], runtime: Runtime | None) -> dict[int, dict[int, list[dict[str, Any]]]]:
    """pid -> global core -> stages, from this process's runtime and the others' records."""
    found = {pid: stages_by_core(record.get("models", [])) for pid, record in records.items()}
    if runtime is not None and not runtime.closed:
        found[os.getpid()] = stages_by_core(runtime.describe()["models"])
    return found


def survey(topology: Topology, state_dir: Path, runtime: Runtime | None = None) -> list[dict[str, Any]]:
    """One row per host core: index, chip, cpus, holder pid/command, models."""
    holders = probe_holders(topology, state_dir)
    records = read_records(state_dir)
    own = _own_models(runtime)
    stages = _stages(records, runtime)
    rows = []
    for core in topology.cores:
        holder = holders.get(core.index)
        models = own.get(core.index) if holder and holder.pid == os.getpid() else None
        if models is None and holder:
            models = _models_by_core(records, holder.pid).get(core.index, [])
        rows.append({
            "index": core.index, "chip": core.chip, "cpus": list(core.cpus),
            "pid": holder.pid if holder else None, "command": holder.command if holder else None,
            "models": models or [],
            "stages": stages.get(holder.pid, {}).get(core.index, []) if holder else [],
        })
    return rows


def render(topology: Topology, rows: list[dict[str, Any]]) -> str:
    lines = [f"{topology.name}: {len(topology)} NeuronCore(s) on {topology.chip_count} chip(s)",
             f"{'NC':>4} {'CHIP':>4} {'CPUS':<10} {'PID':>8}  {'MODELS':<28} COMMAND"]
    for row in rows:
        cpus = ",".join(map(str, row["cpus"]))
        pid = str(row["pid"]) if row["pid"] else "free"
        staged = {entry["model"]: f"{entry['model']}[stage {entry['stage']}]" for entry in row.get("stages", [])}
        models = ",".join(staged.get(name, name) for name in row["models"]) or "-"
        command = " ".join((row["command"] or "").split())[:80]
        lines.append(f"{row['index']:>4} {row['chip']:>4} {cpus:<10} {pid:>8}  {models:<28} {command}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    if args.json_output:
        from .neuron_ls import print_devices

        return print_devices(args)
    config = parse_config()
    topology = build_topology(args.instance_type or config.instance_type)
    state_dir = Path(args.state_dir or config.state_dir or default_state_dir())
    rows = survey(topology, state_dir, current_runtime())
    if args.json:
        print(json.dumps({"topology": topology.fingerprint(), "cores": rows}, indent=2))
    else:
        print(render(topology, rows))
    return 0


def add_command(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("ls", help="list NeuronCores, their holders and models")
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")
    parser.add_argument("--json-output", action="store_true",
                        help="print the devices as neuron-ls --json-output does (what Ray reads)")
    parser.add_argument("--instance-type", help="topology preset (default: NCRT_INSTANCE_TYPE or the host)")
    parser.add_argument("--state-dir", help="state directory (default: NCRT_STATE_DIR or the per-user one)")
    parser.set_defaults(func=run)
