"""Core reservation across real processes (seed 004, NeuronCore allocation; seed 000)."""

from __future__ import annotations

import json
import os
import select
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Iterator

import pytest

from ncrt.errors import CoresUnavailableError, StateDirError
from ncrt.reservation import (
    Holder,
    Reservation,
    cores_label,
    default_state_dir,
    ensure_state_dir,
    lock_path,
    probe_holders,
)
from ncrt.topology import build_topology

HOLDER_SCRIPT = Path(__file__).with_name("holder.py")
INF1_6X = build_topology("inf1.6xlarge")  # 16 cores
INF1_X = build_topology("inf1.xlarge")  # 4 cores


class Proc:
    """A holder subprocess and the lines it printed."""

    def __init__(self, popen: subprocess.Popen[bytes]) -> None:
        self.popen = popen
        self.pid = popen.pid
        self.child_pids: list[int] = []

    def read_line(self, timeout: float = 15.0) -> str:
        ready, _, _ = select.select([self.popen.stdout], [], [], timeout)
        assert ready, f"holder {self.pid} printed nothing within {timeout}s"
        line = self.popen.stdout.readline().decode().strip()  # type: ignore[union-attr]
        assert line, f"holder {self.pid} exited: {self.popen.wait()}"
        return line

    def wait_ready(self) -> tuple[int, ...]:
        line = self.read_line()
        while line.startswith("CHILD "):
            self.child_pids.append(int(line.split()[1]))
            self.child_line = line
            line = self.read_line()
        assert line.startswith("READY "), line
        return tuple(int(core) for core in line.split()[1].split(","))

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
        self.popen.wait()


Spawn = Callable[..., Proc]


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Spawn]:
    """Start holder processes (not waiting for them); kill them all, children too, at the end."""
    procs: list[Proc] = []

    def start(*args: str, instance: str = "inf1.6xlarge", state_dir: Path | None = None) -> Proc:
        command = [sys.executable, str(HOLDER_SCRIPT), "--instance", instance]
        command += ["--state-dir", str(state_dir or tmp_path / "state"), *args]
        proc = Proc(subprocess.Popen(command, stdout=subprocess.PIPE, bufsize=0))
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        proc.kill()
        for child in proc.child_pids:
            try:
                os.kill(child, signal.SIGKILL)
            except ProcessLookupError:
                pass


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return tmp_path / "state"


def acquire(topology=INF1_6X, state_dir: Path | None = None, **kwargs) -> Reservation:
    assert state_dir is not None
    return Reservation.acquire(topology, state_dir=state_dir, **kwargs)


# ----------------------------------------------------------------------- in one process


def test_default_reserves_all_cores(state: Path) -> None:
    with acquire(INF1_6X, state) as reservation:
        assert reservation.cores == tuple(range(16))
        assert reservation.held and not reservation.forked
        assert all(lock_path(state, core).exists() for core in range(16))
    assert not reservation.held


def test_visible_reserves_exactly_those_cores(state: Path) -> None:
    with acquire(INF1_6X, state, visible=(5, 3, 4)) as reservation:
        assert reservation.cores == (3, 4, 5)
        holders = probe_holders(INF1_6X, state)
        assert [core for core, holder in holders.items() if holder] == [3, 4, 5]


def test_num_takes_lowest_contiguous_run(state: Path) -> None:
    with acquire(INF1_X, state, visible=(1,)):
        with acquire(INF1_X, state, num=2) as pair:
            assert pair.cores == (2, 3)
    with acquire(INF1_X, state, visible=(1,)):
        with acquire(INF1_X, state, num=3) as scattered:  # no run of 3: lowest free
            assert scattered.cores == (0, 2, 3)


def test_visible_wins_over_num(state: Path) -> None:
    with acquire(INF1_6X, state, visible=(9, 10), num=5) as reservation:
        assert reservation.cores == (9, 10)


def test_release_is_idempotent_and_frees_cores(state: Path) -> None:
    reservation = acquire(INF1_X, state, num=4)
    assert "nc0-nc3" in repr(reservation) and "held" in repr(reservation)
    reservation.release()
    reservation.release()
    assert "released" in repr(reservation)
    assert all(holder is None for holder in probe_holders(INF1_X, state).values())
    with acquire(INF1_X, state) as again:
        assert again.cores == (0, 1, 2, 3)


def test_busy_visible_core_fails_and_releases_the_others(state: Path) -> None:
    with acquire(INF1_X, state, visible=(2,)):
        with pytest.raises(CoresUnavailableError) as caught:
            acquire(INF1_X, state, visible=(0, 1, 2))
        error = caught.value
        assert "Requested:nc0-nc2 Available:3" in str(error)
        assert error.requested == (0, 1, 2) and error.free == (0, 1, 3)
        assert error.holders == {2: Holder(os.getpid(), error.holders[2].command)}
        assert "this process" in str(error)
        with acquire(INF1_X, state, visible=(0, 1)) as rest:  # nothing left locked
            assert rest.cores == (0, 1)


def test_index_outside_topology_is_refused(state: Path) -> None:
    with pytest.raises(CoresUnavailableError, match=r"Requested:nc3-nc4 .*nc4 does not exist"):
        acquire(INF1_X, state, visible=(3, 4))
    with pytest.raises(CoresUnavailableError, match=r"Requested:5 NeuronCore\(s\) Available:4"):
        acquire(INF1_X, state, num=5)


def test_cores_label() -> None:
    assert cores_label((3, 4, 5)) == "nc3-nc5"
    assert cores_label((1, 4, 5)) == "nc1,nc4-nc5"
    assert cores_label((7,), prefix="") == "7"


def test_default_state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    assert default_state_dir() == tmp_path / "ncrt"
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "missing"))
    assert default_state_dir() == Path(f"/tmp/ncrt-{os.getuid()}")
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    assert default_state_dir() == Path(f"/tmp/ncrt-{os.getuid()}")


# ----------------------------------------------------------------------- state directory


def test_state_dir_is_created_private(tmp_path: Path) -> None:
    old_umask = os.umask(0o022)
    try:
        path = ensure_state_dir(tmp_path / "a" / "b" / "ncrt")
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o700
    assert ensure_state_dir(path) == path  # an existing private dir is fine


def test_symlinked_state_dir_is_refused(tmp_path: Path) -> None:
    real = ensure_state_dir(tmp_path / "real")
    (tmp_path / "link").symlink_to(real)
    with pytest.raises(StateDirError, match=r"link.* symbolic link.*NCRT_STATE_DIR"):
        acquire(INF1_X, tmp_path / "link")
    with pytest.raises(StateDirError):
        probe_holders(INF1_X, tmp_path / "link")


@pytest.mark.parametrize("mode", [0o770, 0o707, 0o777])
def test_group_or_world_writable_state_dir_is_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "open"
    path.mkdir()
    path.chmod(mode)
    with pytest.raises(StateDirError, match=r"group- or world-writable.*chmod 700"):
        acquire(INF1_X, path)


def test_state_dir_of_another_user_is_refused(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to give a directory to another uid")
    path = tmp_path / "theirs"
    path.mkdir(mode=0o700)
    os.chown(path, 65534, 65534)
    with pytest.raises(StateDirError, match=r"owned by uid 65534"):
        acquire(INF1_X, path)


def test_symlinked_lock_file_is_refused(state: Path, tmp_path: Path) -> None:
    ensure_state_dir(state)
    target = tmp_path / "victim"
    target.write_text("precious")
    lock_path(state, 1).symlink_to(target)
    with pytest.raises(StateDirError, match=r"core-001.lock is a symbolic link"):
        acquire(INF1_X, state)
    assert target.read_text() == "precious"
    with pytest.raises(StateDirError):
        probe_holders(INF1_X, state)
    with acquire(INF1_X, state, visible=(0,)) as other:  # core 0 was not left locked
        assert other.cores == (0,)


def test_lock_file_of_another_user_is_refused(state: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to give a file to another uid")
    ensure_state_dir(state)
    lock_path(state, 2).touch()
    os.chown(lock_path(state, 2), 65534, 65534)
    with pytest.raises(StateDirError, match=r"core-002.lock is owned by uid 65534"):
        acquire(INF1_X, state, visible=(2,))


def test_probe_creates_nothing(tmp_path: Path, state: Path) -> None:
    assert probe_holders(INF1_X, tmp_path / "nowhere") == {0: None, 1: None, 2: None, 3: None}
    assert not (tmp_path / "nowhere").exists()
    ensure_state_dir(state)
    assert set(probe_holders(INF1_X, state).values()) == {None}
    assert list(state.iterdir()) == []


# ----------------------------------------------------------------------- real processes


@pytest.mark.slow
def test_seed_five_processes_of_three_cores_then_a_sixth_fails(spawn: Spawn, state: Path) -> None:
    procs = [spawn("--num", "3") for _ in range(5)]
    taken = [proc.wait_ready() for proc in procs]
    cores = [core for group in taken for core in group]
    assert sorted(cores) == list(range(15)) and all(len(group) == 3 for group in taken)
    with pytest.raises(CoresUnavailableError) as caught:
        acquire(INF1_6X, state, num=3)
    message = str(caught.value)
    assert "NeuronCore(s) not available - Requested:3 NeuronCore(s) Available:1" in message
    assert "free: nc15" in message
    assert "NEURON_RT_NUM_CORES=1 or NEURON_RT_VISIBLE_CORES=15" in message
    assert all(f"pid {proc.pid}" in message for proc in procs) and "holder.py" in message
    assert caught.value.free == (15,)
    assert {holder.pid for holder in caught.value.holders.values()} == {p.pid for p in procs}


@pytest.mark.slow
def test_visible_ranges_partition_the_host(spawn: Spawn, state: Path) -> None:
    ranges = ["0-2", "3-5", "6-8", "9-11", "12-14"]
    procs = [spawn("--visible", text) for text in ranges]
    assert [proc.wait_ready() for proc in procs] == [
        tuple(range(start, start + 3)) for start in range(0, 15, 3)
    ]
    with pytest.raises(CoresUnavailableError) as caught:
        acquire(INF1_6X, state, visible=(3, 4, 5))
    message = str(caught.value)
    assert "Requested:nc3-nc5 Available:1" in message
    assert f"nc3-nc5 held by pid {procs[1].pid} (" in message and "--visible 3-5" in message
    assert f"stop pid {procs[1].pid}" in message
    assert set(caught.value.holders) == {3, 4, 5}
    with acquire(INF1_6X, state, visible=(15,)) as last:
        assert last.cores == (15,)


@pytest.mark.slow
def test_sigkilled_holder_frees_its_cores_at_once(spawn: Spawn, state: Path) -> None:
    holder = spawn("--visible", "0-3", instance="inf1.xlarge")
    assert holder.wait_ready() == (0, 1, 2, 3)
    with pytest.raises(CoresUnavailableError):
        acquire(INF1_X, state, visible=(2,))
    os.kill(holder.pid, signal.SIGKILL)
    holder.popen.wait()
    with acquire(INF1_X, state) as reservation:  # no cleanup, no waiting
        assert reservation.cores == (0, 1, 2, 3)
    assert all(lock_path(state, core).exists() for core in range(4))


@pytest.mark.slow
def test_forked_child_does_not_keep_parent_cores(spawn: Spawn, state: Path) -> None:
    short_lived = spawn("--visible", "0-1", "--fork", "exit", instance="inf1.xlarge")
    assert short_lived.wait_ready() == (0, 1)
    assert short_lived.child_line.endswith(" - True")  # child: no cores, forked
    holders = probe_holders(INF1_X, state)  # the child's exit left the parent's locks alone
    assert holders[0] == holders[1] and holders[0].pid == short_lived.pid

    parent = spawn("--visible", "2-3", "--fork", "sleep", instance="inf1.xlarge")
    assert parent.wait_ready() == (2, 3)
    child = parent.child_pids[0]
    os.kill(parent.pid, signal.SIGKILL)
    parent.popen.wait()
    os.kill(child, 0)  # the child still runs
    with acquire(INF1_X, state, visible=(2, 3)) as reservation:
        assert reservation.cores == (2, 3)
    assert Path(f"/proc/{child}").exists()


@pytest.mark.slow
def test_probe_holders_names_other_processes(spawn: Spawn, state: Path) -> None:
    first = spawn("--visible", "0", instance="inf1.xlarge")
    second = spawn("--visible", "2-3", instance="inf1.xlarge")
    first.wait_ready(), second.wait_ready()
    holders = probe_holders(INF1_X, state)
    assert holders[1] is None
    assert holders[0].pid == first.pid and "holder.py" in holders[0].command
    assert holders[2] == holders[3] and holders[2].pid == second.pid
    assert "--visible 2-3" in holders[2].command
    record = json.loads(lock_path(state, 2).read_text())
    assert record["pid"] == second.pid and record["topology"] == "inf1.xlarge:4x4"

    second.kill()  # its stale record stays behind and must read as free
    assert json.loads(lock_path(state, 2).read_text())["pid"] == second.pid
    holders = probe_holders(INF1_X, state)
    assert holders[2] is None and holders[3] is None and holders[0].pid == first.pid


@pytest.mark.slow
def test_topology_disagreement_is_refused_while_held(spawn: Spawn, state: Path) -> None:
    holder = spawn("--num", "2", instance="inf1.6xlarge")
    holder.wait_ready()
    with pytest.raises(StateDirError) as caught:
        acquire(INF1_X, state)
    message = str(caught.value)
    assert "'inf1.6xlarge:16x4'" in message and "'inf1.xlarge:4x4'" in message
    assert "NCRT_STATE_DIR" in message and f"pid {holder.pid}" in message
    holder.kill()
    with acquire(INF1_X, state) as reservation:  # the stale topology.json does not block
        assert reservation.cores == (0, 1, 2, 3)
    assert json.loads((state / "topology.json").read_text())["fingerprint"] == "inf1.xlarge:4x4"


@pytest.mark.slow
def test_racing_processes_never_share_cores(spawn: Spawn, state: Path) -> None:
    start_at = str(time.time() + 1.0)
    procs = [spawn("--num", "2", "--start-at", start_at, instance="inf1.xlarge") for _ in range(4)]
    lines = [proc.read_line() for proc in procs]
    won = [line.split()[1] for line in lines if line.startswith("READY ")]
    lost = [line for line in lines if line.startswith("FAIL ")]
    assert len(won) == 2 and len(lost) == 2, lines
    assert sorted(won) == ["0,1", "2,3"]
    assert all("Requested:2 NeuronCore(s) Available:0" in line for line in lost)
