"""The SIGKILL soak: hundreds of cycles of holders killed at random moments.

Each cycle starts one to three processes that reserve 1-4 cores of an emulated
inf1.6xlarge by ``NEURON_RT_NUM_CORES`` or ``NEURON_RT_VISIBLE_CORES`` — forked from a
zygote, or exec'ed — lets them run for a random 0-60 ms (so some are killed mid-way
through their reservation), SIGKILLs most of them and keeps a few alive into the next
cycles. After every cycle the core locks, ``ncrt ls`` and a fresh acquisition must agree:
0 cores leaked (held by a dead pid or by no one that reports them) and 0 doubly held.
``NCRT_SOAK_CYCLES`` changes the number of cycles (default 200).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ncrt.errors import CoresUnavailableError
from ncrt.ls import survey
from ncrt.reservation import Reservation, probe_holders
from ncrt.topology import build_topology

pytestmark = pytest.mark.slow

CHILD = Path(__file__).with_name("soakchild.py")
TOPOLOGY = build_topology("inf1.6xlarge")
CYCLES = int(os.environ.get("NCRT_SOAK_CYCLES", "200"))
EXEC_EVERY = 10  # every 10th cycle also exec's a fresh interpreter


@dataclass
class Child:
    """A soak child: its pid, how it was started, and what it reported."""

    pid: int
    request: str
    popen: subprocess.Popen | None = None  # exec'ed children only
    held: tuple[int, ...] | None = None
    refused: bool = False


@dataclass
class Lines:
    """What children print, by pid, read from one pipe by a thread."""

    by_pid: dict[int, str] = field(default_factory=dict)
    forked: list[int] = field(default_factory=list)
    changed: threading.Condition = field(default_factory=threading.Condition)

    def follow(self, stream) -> None:
        for line in stream:
            kind, pid, *rest = line.split()
            with self.changed:
                if kind == "FORKED":
                    self.forked.append(int(pid))
                else:
                    self.by_pid[int(pid)] = line.strip()
                self.changed.notify_all()

    def next_fork(self, timeout: float = 10.0) -> int:
        with self.changed:
            assert self.changed.wait_for(lambda: self.forked, timeout), "the zygote forked nothing"
            return self.forked.pop(0)


class Soak:
    """The children, the zygote that forks them, and the tallies of every check."""

    def __init__(self, state_dir: Path, seed: int) -> None:
        self.state_dir = state_dir
        self.rng = random.Random(seed)
        self.env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(CHILD.parent), os.environ.get("PYTHONPATH", "")])}
        self.lines = Lines()
        self.zygote = subprocess.Popen([sys.executable, str(CHILD), "zygote", str(state_dir)], env=self.env,
                                       stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        threading.Thread(target=self.lines.follow, args=(self.zygote.stdout,), daemon=True).start()
        self.alive: list[Child] = []
        self.tally = {"cycles": 0, "started": 0, "forked": 0, "exec'ed": 0, "killed": 0,
                      "killed before reporting": 0, "checks": 0, "leaked": 0, "doubly held": 0}

    def request(self) -> tuple[str, str]:
        count = self.rng.randint(1, 4)
        if self.rng.random() < 0.5:
            return "num", str(count)
        start = self.rng.randrange(len(TOPOLOGY) - count + 1)
        return "visible", f"{start}-{start + count - 1}" if count > 1 else str(start)

    def start(self, exec_it: bool) -> Child:
        mode, value = self.request()
        self.tally["started"] += 1
        if exec_it:
            self.tally["exec'ed"] += 1
            popen = subprocess.Popen([sys.executable, str(CHILD), "hold", str(self.state_dir), mode, value],
                                     env=self.env, stdout=subprocess.PIPE, text=True)
            threading.Thread(target=self.lines.follow, args=(popen.stdout,), daemon=True).start()
            return Child(popen.pid, f"{mode}={value}", popen)
        self.tally["forked"] += 1
        self.zygote.stdin.write(f"{mode} {value}\n")
        self.zygote.stdin.flush()
        return Child(self.lines.next_fork(), f"{mode}={value}")

    def read_reports(self, children: list[Child]) -> None:
        with self.lines.changed:
            for child in children:
                line = self.lines.by_pid.get(child.pid, "")
                if line.startswith("HELD "):
                    child.held = tuple(int(core) for core in line.split()[2].split(","))
                child.refused = line.startswith("REFUSED ")

    def kill(self, child: Child) -> None:
        if child.held is None and not child.refused:
            self.tally["killed before reporting"] += 1
        self.tally["killed"] += 1
        try:
            os.kill(child.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if child.popen is not None:
            child.popen.wait(10)
            return
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # the zygote reaps it (SIGCHLD ignored)
            try:
                os.kill(child.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.001)
        raise AssertionError(f"pid {child.pid} survived SIGKILL")

    def cycle(self, number: int) -> None:
        new = [self.start(exec_it=(number % EXEC_EVERY == 0 and index == 0))
               for index in range(self.rng.randint(1, 3))]
        time.sleep(self.rng.uniform(0.0, 0.06))
        self.read_reports(new)
        keep: list[Child] = []
        for child in self.alive + new:
            survives = child.held is not None and len(keep) < 4 and self.rng.random() < 0.3
            keep.append(child) if survives else self.kill(child)
        self.alive = keep
        self.check()
        self.tally["cycles"] += 1

    def check(self) -> None:
        """Locks, ``ncrt ls`` and a fresh acquisition agree with what the live children hold."""
        self.tally["checks"] += 1
        holders = probe_holders(TOPOLOGY, self.state_dir)
        held_by = {core: holder.pid for core, holder in holders.items() if holder is not None}
        claimed: dict[int, list[int]] = {}
        for child in self.alive:
            for core in child.held:
                claimed.setdefault(core, []).append(child.pid)
        doubly = [core for core, pids in claimed.items() if len(pids) > 1]
        leaked = [core for core, pid in held_by.items() if claimed.get(core) != [pid]]
        self.tally["doubly held"] += len(doubly)
        self.tally["leaked"] += len(leaked)
        assert not doubly and not leaked, (doubly, leaked, held_by, claimed)
        assert {core for core in claimed} == set(held_by)
        rows = survey(TOPOLOGY, self.state_dir)
        assert {row["index"]: row["pid"] for row in rows if row["pid"]} == held_by  # what ncrt ls shows
        free = tuple(core for core, holder in holders.items() if holder is None)
        if free:
            with Reservation.acquire(TOPOLOGY, visible=free, state_dir=self.state_dir) as fresh:
                assert fresh.cores == free
        if held_by:
            with pytest.raises(CoresUnavailableError):
                Reservation.acquire(TOPOLOGY, visible=(self.rng.choice(sorted(held_by)),), state_dir=self.state_dir)

    def close(self) -> None:
        for child in self.alive:
            self.kill(child)
        self.alive = []
        self.zygote.kill()
        self.zygote.wait(10)


def test_sigkill_soak_leaks_nothing_and_never_double_books(tmp_path, capsys):
    state_dir = tmp_path / "state"
    soak = Soak(state_dir, seed=14)
    started = time.monotonic()
    try:
        for number in range(CYCLES):
            soak.cycle(number)
        for child in list(soak.alive):
            soak.kill(child)
        soak.alive = []
        soak.check()  # everyone is dead: every core is free again
        assert all(holder is None for holder in probe_holders(TOPOLOGY, state_dir).values())
    finally:
        soak.close()
    tally = soak.tally
    with capsys.disabled():
        print(f"\nSIGKILL soak: {tally} in {time.monotonic() - started:.1f} s")
    assert tally["cycles"] == CYCLES and tally["leaked"] == 0 and tally["doubly held"] == 0
    assert tally["killed before reporting"] > 0 and tally["exec'ed"] >= CYCLES // EXEC_EVERY
