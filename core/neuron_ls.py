"""``neuron-ls``: the host's emulated Neuron devices, as the Neuron tool prints them.

``neuron-ls --json-output`` (also ``ncrt ls --json-output``) prints the JSON array the
Neuron tool prints: one object per Neuron device (an emulated chip) with
``neuron_device``, ``bdf``, ``cpu_affinity``, ``numa_node``, ``connected_to``,
``nc_count``, ``memory_size`` (bytes), ``neuroncore_ids`` (global indices),
``neuron_processes`` (``pid``, ``command``, ``neuron_runtime_version`` of every process
holding a core of the device) and, as recent neuron-ls versions do, ``instance_type``
and ``instance_id``. Tools that count NeuronCores from it, Ray first of all (it sums
``nc_count``), count the emulated cores. Without ``--json-output`` it prints the table.

What is emulated is said so: ``bdf`` is a made-up PCI address, ``numa_node`` is ``"-1"``
(unknown), ``memory_size`` is the device memory of the instance type's chip (the host's
memory for the ``host`` topology), and the chips of a multi-chip instance are connected
in a ring. Holders are found by probing the core locks (``ncrt.reservation``), so a
killed process never appears.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, Sequence

from .config import parse_config
from .errors import NcrtError
from .reservation import Holder, cores_label, default_state_dir, probe_holders
from .topology import Topology, build_topology

__all__ = ["DEVICE_MEMORY", "device_records", "devices", "render_table", "build_parser", "main"]

GIB = 1024**3
# Device memory of one chip: Inferentia 8 GiB, Inferentia2 and Trainium 32 GiB.
DEVICE_MEMORY: dict[str, int] = {"inf1": 8 * GIB, "inf2": 32 * GIB, "trn1": 32 * GIB}


def _host_memory() -> int:
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):  # pragma: no cover - not POSIX
        return 0


def _device_memory(topology: Topology) -> int:
    return DEVICE_MEMORY.get(topology.arch) or _host_memory()


def _runtime_version() -> str:
    from . import __version__

    return f"ncrt-{__version__}"


def _connected_to(chip: int, chips: int) -> list[int] | None:
    """A chip's neighbours in the ring of an instance's chips (None on a one-chip instance)."""
    if chips == 1:
        return None
    return sorted({(chip - 1) % chips, (chip + 1) % chips})


def _processes(cores: Sequence[int], holders: dict[int, Holder | None]) -> list[dict[str, Any]]:
    """The processes holding any of ``cores``, in order of their first core."""
    seen: dict[int, dict[str, Any]] = {}
    for core in cores:
        holder = holders.get(core)
        if holder is not None and holder.pid > 0 and holder.pid not in seen:
            seen[holder.pid] = {"pid": holder.pid, "command": " ".join(holder.command.split()),
                                "neuron_runtime_version": _runtime_version()}
    return list(seen.values())


def devices(topology: Topology, state_dir: Path | None = None) -> list[dict[str, Any]]:
    """One neuron-ls device object per chip of ``topology``, with the processes holding its cores."""
    return device_records(topology, probe_holders(topology, state_dir))


def device_records(topology: Topology, holders: dict[int, Holder | None] | None = None) -> list[dict[str, Any]]:
    """The neuron-ls device objects of ``topology``; ``holders`` (by global core) name the processes."""
    holders = holders or {}
    chips = topology.chip_count
    result = []
    for chip in range(chips):
        cores = [core for core in topology.cores if core.chip == chip]
        ids = [core.index for core in cores]
        cpus = sorted({cpu for core in cores for cpu in core.cpus})
        result.append({
            "instance_type": topology.name,
            "instance_id": "",
            "neuron_device": chip,
            "bdf": f"0000:{0x10 + chip:02x}:00.0",
            "cpu_affinity": cores_label(cpus, prefix=""),
            "numa_node": "-1",
            "connected_to": _connected_to(chip, chips),
            "nc_count": len(cores),
            "memory_size": _device_memory(topology),
            "neuroncore_ids": ids,
            "neuron_processes": _processes(ids, holders),
        })
    return result


# --------------------------------------------------------------------------- the table


def _box(headers: list[tuple[str, str]], rows: list[list[list[str]]], ruled: bool) -> list[str]:
    """A ``+---+`` table: two-line headers; each row is a list of lines of cells (``ruled``: a rule after each)."""
    widths = [max(len(top), len(bottom)) for top, bottom in headers]
    for row in rows:
        for line in row:
            widths = [max(width, len(cell)) for width, cell in zip(widths, line)]
    rule = "+" + "+".join("-" * (width + 2) for width in widths) + "+"

    def line(cells: list[str], center: bool = False) -> str:
        fitted = [cell.center(width) if center else cell.ljust(width) for cell, width in zip(cells, widths)]
        return "| " + " | ".join(fitted) + " |"

    lines = [rule, line([top for top, _ in headers], True), line([bottom for _, bottom in headers], True), rule]
    for row in rows:
        lines += [line(cells) for cells in row] + ([rule] if ruled else [])
    return lines if ruled else lines + [rule]


def _memory_text(size: int) -> str:
    return f"{size / GIB:.0f} GB"


def render_table(device_list: list[dict[str, Any]], *, wide: bool = False) -> str:
    """The neuron-ls table (``wide``: with PID, COMMAND and RUNTIME VERSION of each process)."""
    headers = [("NEURON", "DEVICE"), ("NEURON", "CORES"), ("NEURON", "CORE IDS"), ("NEURON", "MEMORY"),
               ("CONNECTED", "DEVICES"), ("PCI", "BDF"), ("CPU", "AFFINITY"), ("NUMA", "NODE")]
    if wide:
        headers += [("PID", ""), ("COMMAND", ""), ("RUNTIME", "VERSION")]
    rows = []
    for device in device_list:
        first = [str(device["neuron_device"]), str(device["nc_count"]),
                 cores_label(device["neuroncore_ids"], prefix=""), _memory_text(device["memory_size"]),
                 ", ".join(map(str, device["connected_to"] or [])), device["bdf"],
                 device["cpu_affinity"], device["numa_node"]]
        if not wide:
            rows.append([first])
            continue
        processes = device["neuron_processes"] or [{"pid": "", "command": "", "neuron_runtime_version": ""}]
        lines = []
        for number, process in enumerate(processes):
            cells = first if number == 0 else [""] * len(first)
            command = process["command"] if len(process["command"]) <= 80 else process["command"][:77] + "..."
            lines.append(cells + [str(process["pid"]), command, process["neuron_runtime_version"]])
        rows.append(lines)
    instance = device_list[0]["instance_type"] if device_list else "unknown"
    return "\n".join([f"instance-type: {instance}", "instance-id: ", *_box(headers, rows, ruled=wide)])


# --------------------------------------------------------------------------- the command


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """neuron-ls's own options, plus ncrt's ``--instance-type`` and ``--state-dir``."""
    parser.add_argument("-j", "--json-output", action="store_true", help="print the devices as JSON")
    parser.add_argument("-w", "--wide", action="store_true", help="add the processes using each device")
    parser.add_argument("-a", "--show-all-procs", action="store_true",
                        help="accepted for neuron-ls compatibility (every ncrt process is a runtime process)")
    parser.add_argument("--instance-type", help="topology preset (default: NCRT_INSTANCE_TYPE or the host)")
    parser.add_argument("--state-dir", help="state directory (default: NCRT_STATE_DIR or the per-user one)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="neuron-ls", description="List the emulated Neuron devices and the processes using them (ncrt).")
    add_arguments(parser)
    return parser


def survey_devices(args: argparse.Namespace) -> list[dict[str, Any]]:
    """The devices of the topology and state directory named by ``args`` or the environment."""
    config = parse_config()
    topology = build_topology(args.instance_type or config.instance_type)
    return devices(topology, Path(args.state_dir or config.state_dir or default_state_dir()))


def print_devices(args: argparse.Namespace) -> int:
    """Print the devices as neuron-ls does: JSON with ``--json-output``, else the table."""
    device_list = survey_devices(args)
    if args.json_output:
        print(json.dumps(device_list, indent=4))
    else:
        print(render_table(device_list, wide=args.wide or args.show_all_procs))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """The ``neuron-ls`` console script."""
    args = build_parser().parse_args(argv)
    try:
        return print_devices(args)
    except NcrtError as error:
        print(f"neuron-ls: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
