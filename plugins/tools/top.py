"""``ncrt top``: a live terminal view of the NeuronCores in the manner of neuron-top.

Per-core utilization bars grouped by chip, a tab per process (pid, command, cores,
models; a NeuronCore Pipeline stage shows as ``model:sK`` on its core, and a table lists
each stage's cores, executions and busy time) and the host's vCPU and memory, refreshed about once a second; ``q`` quits,
``Tab``/arrow keys or a digit switch tabs. ``--once`` prints one frame for scripts and
tests. Drawing is done by ``rich`` (imported when the command runs); the figures come
from the records every runtime publishes (:mod:`ncrt.plugins.tools.stats`) and from the core
locks, so cores held by any process show up, published or not.
"""

from __future__ import annotations

import argparse
import os
import select
import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterator

from ncrt.cli import positive_seconds
from ncrt.errors import BadInputError
from ncrt.hookspecs import hookimpl
from ncrt.ls import stages_by_core

from .stats import (
    ProcessStats,
    add_survey_arguments,
    probe_core_holders,
    read_processes,
    sample_host,
    survey_target,
)

if TYPE_CHECKING:
    from pathlib import Path

    from ncrt.topology import Topology

__all__ = ["Frame", "Sampler", "render_frame", "run"]

BAR_WIDTH = 20
GIB = 1024 ** 3


@dataclass
class Frame:
    """What one refresh shows: holders, processes, utilization by core, host usage."""

    topology: Topology
    holders: dict[int, int]
    processes: list[ProcessStats]
    utilization: dict[int, float]
    host: dict[str, Any]
    taken_at: float = field(default_factory=time.time)

    def process(self, pid: int) -> ProcessStats | None:
        return next((p for p in self.processes if p.pid == pid), None)

    def models_on(self, core: int) -> list[str]:
        """The models on ``core``; a pipelined model's as ``name:sK`` (the stage running there)."""
        holder = self.process(self.holders.get(core, -1))
        entry = next((c for c in holder.cores if c.get("global_index") == core), None) if holder else None
        if not entry:
            return []
        staged = {stage["model"]: f"{stage['model']}:s{stage['stage']}"
                  for stage in stages_by_core(holder.models).get(core, [])}
        return [staged.get(name, name) for name in entry.get("models", [])]


class Sampler:
    """Reads frames; utilization is busy time over the time since the previous frame."""

    def __init__(self, topology: Topology, state_dir: Path) -> None:
        self.topology = topology
        self.state_dir = state_dir
        self._seen: dict[tuple[int, int], tuple[float, float, float]] = {}

    def frame(self, host_interval: float | None = None) -> Frame:
        holders = probe_core_holders(self.topology, self.state_dir)
        processes = read_processes(self.state_dir, self.topology, holders=holders)
        utilization = {core: ratio for process in processes for core, ratio in self._utilization(process)}
        return Frame(self.topology, holders, processes, utilization, sample_host(host_interval))

    def _utilization(self, process: ProcessStats) -> Iterator[tuple[int, float]]:
        """(core, ratio): from the busy-time delta since the last frame, else the publisher's."""
        for core in process.cores:
            key = (process.pid, core["global_index"])
            busy, seen = core.get("busy_seconds", 0.0), process.time
            ratio = core.get("utilization", 0.0)
            previous = self._seen.get(key)
            if previous is not None and seen > previous[1]:
                ratio = min(1.0, max(0.0, (busy - previous[0]) / (seen - previous[1])))
            elif previous is not None:
                ratio = previous[2]  # the same record as last time: keep its figure
            self._seen[key] = (busy, seen, ratio)
            yield core["global_index"], ratio


# --------------------------------------------------------------------------- drawing


def _tabs(frame: Frame, selected: int) -> Any:
    from rich.text import Text

    labels = ["all"] + [f"{p.pid} {p.tag or p.command.split(' ')[0].rsplit('/', 1)[-1]}" for p in frame.processes]
    text = Text()
    for position, label in enumerate(labels):
        style = "reverse bold" if position == selected else "dim"
        text.append(f" {position}:{label} ", style=style)
        text.append(" ")
    return text


def _core_row(frame: Frame, core: int, focus: int | None) -> list[Any]:
    from rich.progress_bar import ProgressBar
    from rich.text import Text

    ratio = frame.utilization.get(core, 0.0)
    pid = frame.holders.get(core)
    dim = focus is not None and pid != focus
    style = "dim" if dim else ""
    holder = str(pid) if pid else "free"
    bar = ProgressBar(total=100, completed=100 * ratio, width=BAR_WIDTH, style="grey23",
                      complete_style="grey50" if dim else "green")
    models = ",".join(frame.models_on(core)) or "-"
    return [Text(f"NC{core}", style=style), bar, Text(f"{100 * ratio:5.1f}%", style=style),
            Text(holder, style=style), Text(models, style=style, overflow="ellipsis", no_wrap=True)]


def _chip_panel(frame: Frame, chip: int, focus: int | None) -> Any:
    from rich.panel import Panel
    from rich.table import Table

    table = Table(box=None, show_header=False, pad_edge=False, padding=(0, 1))
    for column in ("core", "bar", "util", "pid", "models"):
        table.add_column(column, no_wrap=True, max_width=18 if column == "models" else None)
    for core in (c.index for c in frame.topology.cores if c.chip == chip):
        table.add_row(*_core_row(frame, core, focus))
    return Panel(table, title=f"chip {chip}", title_align="left", expand=False)


def _process_table(frame: Frame, focus: int | None) -> Any:
    from rich.table import Table

    table = Table(title="processes", title_justify="left", expand=True, show_lines=False)
    for column in ("PID", "TAG", "CORES", "MODELS", "EXEC", "ERR", "p50 ms", "p99 ms"):
        table.add_column(column, no_wrap=True, overflow="ellipsis", min_width=max(len(column), 7), max_width=30)
    table.add_column("COMMAND", no_wrap=True, overflow="ellipsis", min_width=10, ratio=1)
    for process in frame.processes:
        if focus is not None and process.pid != focus:
            continue
        table.add_row(*_process_cells(process))
    return table


def _process_cells(process: ProcessStats) -> list[str]:
    latency = process.record.get("latency") or {}
    cores = ",".join(str(core["global_index"]) for core in process.cores)
    models = ", ".join(f"{m['name']}@{m.get('label', '')}" for m in process.models) or "-"
    milliseconds = [f"{1000 * latency[key]:.2f}" if key in latency else "-" for key in ("p50", "p99")]
    return [str(process.pid), process.tag or "-", cores, models, str(int(process.total("executions"))),
            str(int(process.total("errors") + process.total("timeouts"))), *milliseconds, process.command]


def _stage_table(frame: Frame, focus: int | None) -> Any:
    """Each NeuronCore Pipeline stage: its process, model, replica, core(s), executions, busy time."""
    from rich.table import Table

    table = Table(title="pipeline stages", title_justify="left", expand=False)
    for column in ("PID", "MODEL", "REPLICA", "STAGE", "CORES", "EXEC", "BUSY s", "LAYERS"):
        table.add_column(column, no_wrap=True, overflow="ellipsis", max_width=40)
    for process in frame.processes:
        if focus is not None and process.pid != focus:
            continue
        for model in process.models:
            for stage in model.get("stages", []):
                cores = ",".join(f"NC{core}" for core in stage.get("global_cores", [stage["global_core"]]))
                table.add_row(str(process.pid), model["name"], str(stage["replica"]), str(stage["stage"]), cores,
                              str(stage.get("executions", 0)), f"{stage.get('busy_seconds', 0.0):.3f}",
                              stage.get("label", ""))
    return table if table.row_count else None


def _header(frame: Frame) -> Any:
    from rich.text import Text

    host = frame.host
    topology = frame.topology
    used, total = host["memory_used_bytes"] / GIB, host["memory_total_bytes"] / GIB
    text = Text()
    text.append("ncrt top", style="bold")
    text.append(f"  {topology.name}: {len(topology)} NeuronCore(s) on {topology.chip_count} chip(s)")
    text.append(f"  vCPU {host['vcpu_count']} x {host['vcpu_percent']:.1f}%")
    text.append(f"  memory {used:.1f}/{total:.1f} GiB")
    text.append(time.strftime("  %H:%M:%S", time.localtime(frame.taken_at)), style="dim")
    return text


def render_frame(frame: Frame, selected: int = 0, interactive: bool = False) -> Any:
    """The frame as a rich renderable; ``selected`` 0 is "all", N the N-th process."""
    from rich.columns import Columns
    from rich.console import Group
    from rich.text import Text

    selected = min(selected, len(frame.processes))
    focus = frame.processes[selected - 1].pid if selected else None
    chips = sorted({core.chip for core in frame.topology.cores})
    parts = [_header(frame), _tabs(frame, selected),
             Columns([_chip_panel(frame, chip, focus) for chip in chips]), _process_table(frame, focus)]
    stages = _stage_table(frame, focus)
    if stages is not None:
        parts.append(stages)
    if interactive:
        parts.append(Text("q quit   tab/arrows/0-9 switch process", style="dim"))
    return Group(*parts)


# --------------------------------------------------------------------------- the loop


class KeyReader:
    """Single keys from a terminal in cbreak mode (restored on exit); no-op off a tty."""

    def __init__(self, stream: Any) -> None:
        self.fd = stream.fileno() if stream.isatty() else None
        self._saved: Any = None

    def __enter__(self) -> KeyReader:
        if self.fd is not None:
            import termios
            import tty

            self._saved = termios.tcgetattr(self.fd)
            tty.setcbreak(self.fd)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._saved is not None:
            import termios

            termios.tcsetattr(self.fd, termios.TCSADRAIN, self._saved)

    def read(self, timeout: float) -> str:
        """The keys pressed within ``timeout`` seconds ("" when none)."""
        if self.fd is None:
            time.sleep(timeout)
            return ""
        ready, _, _ = select.select([self.fd], [], [], timeout)
        return os.read(self.fd, 32).decode(errors="replace") if ready else ""


def next_tab(keys: str, selected: int, count: int) -> int | None:
    """The tab after ``keys`` (``count`` tabs, "all" included); None means quit."""
    for key in _split_keys(keys):
        if key in ("q", "Q"):
            return None
        if key in ("\t", "\x1b[C", "l"):
            selected = (selected + 1) % count
        elif key in ("\x1b[Z", "\x1b[D", "h"):
            selected = (selected - 1) % count
        elif key.isascii() and key.isdigit() and int(key) < count:
            selected = int(key)
    return selected


def _split_keys(keys: str) -> Iterator[str]:
    position = 0
    while position < len(keys):
        width = 3 if keys.startswith("\x1b[", position) else 1
        yield keys[position : position + width]
        position += width


def _live(sampler: Sampler, interval: float, console: Any) -> int:
    from rich.live import Live

    selected = 0
    frame = sampler.frame(host_interval=0.1)
    with KeyReader(sys.stdin) as keys, Live(render_frame(frame, 0, True), console=console, screen=True,
                                            auto_refresh=False) as live:
        deadline = time.monotonic() + interval
        while True:
            pressed = keys.read(max(0.0, deadline - time.monotonic()))
            selected = next_tab(pressed, selected, len(frame.processes) + 1)
            if selected is None:
                return 0
            if time.monotonic() >= deadline:
                frame = sampler.frame()
                deadline = time.monotonic() + interval
            live.update(render_frame(frame, selected, True), refresh=True)


def run(args: argparse.Namespace) -> int:
    """``--once``: print one frame; otherwise the live view until ``q``."""
    from rich.console import Console

    if args.interval <= 0:
        raise BadInputError(f"--interval {args.interval} is not valid; accepted: a number of seconds > 0")
    topology, state_dir = survey_target(args)
    sampler = Sampler(topology, state_dir)
    if args.once:
        console = Console(width=args.width, no_color=args.no_color or None, highlight=False)
        console.print(render_frame(sampler.frame(host_interval=0.2), args.tab))
        return 0
    try:
        return _live(sampler, args.interval, Console(no_color=args.no_color or None))
    except KeyboardInterrupt:
        return 0


@hookimpl
def ncrt_add_commands(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("top", help="live view of NeuronCore use by every process (like neuron-top)")
    parser.add_argument("--once", action="store_true", help="print one frame and exit (for scripts)")
    parser.add_argument("--interval", type=positive_seconds, default=1.0, help="seconds between refreshes (default 1)")
    parser.add_argument("--tab", type=int, default=0, help="with --once: 0 = all, N = the N-th process")
    parser.add_argument("--width", type=int, default=None, help="with --once: columns (default: the terminal's)")
    parser.add_argument("--no-color", action="store_true", help="plain text, no colours")
    add_survey_arguments(parser)
    parser.set_defaults(func=run)
