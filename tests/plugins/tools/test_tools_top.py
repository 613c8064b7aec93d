"""``ncrt top``: one frame for scripts, and the live view driven in a real terminal (tmux)."""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
import time

import pytest

from ncrt.plugins.tools.top import next_tab


def test_keys_switch_tabs_and_quit():
    assert next_tab("\t", 0, 3) == 1
    assert next_tab("\x1b[C\x1b[C\x1b[C", 0, 3) == 0
    assert next_tab("\x1b[D", 0, 3) == 2
    assert next_tab("2", 0, 3) == 2 and next_tab("7", 1, 3) == 1
    assert next_tab("1q", 0, 3) is None


@pytest.mark.slow
def test_once_shows_each_process_cores_and_models(start_worker, ncrt_command):
    first, first_cores = start_worker(num_cores=2, tag="alpha", replicas=2, name="dense_a", threads=2)
    second, second_cores = start_worker(num_cores=3, name="dense_b")
    result = ncrt_command("top", "--once", "--width", "160", "--no-color")
    assert result.returncode == 0, result.stderr
    frame = result.stdout
    assert "inf1.6xlarge: 16 NeuronCore(s) on 4 chip(s)" in frame
    assert all(f"chip {chip}" in frame for chip in range(4))
    assert "vCPU" in frame and "memory" in frame
    rows = {line.split()[1]: line for line in frame.splitlines() if line.startswith("│ NC")}
    for core in first_cores:
        assert str(first.pid) in rows[f"NC{core}"] and "dense_a" in rows[f"NC{core}"]
    assert str(second.pid) in rows[f"NC{second_cores[0]}"] and "dense_b" in rows[f"NC{second_cores[0]}"]
    assert "free" in rows["NC15"]
    assert f"1:{first.pid} alpha" in frame
    process_rows = [line for line in frame.splitlines() if line.startswith("│ ") and "NC" not in line[:6]]
    assert any(str(first.pid) in row and "alpha" in row and "dense_a@NC0-1" in row for row in process_rows)
    focused = ncrt_command("top", "--once", "--width", "160", "--no-color", "--tab", "1").stdout
    table = focused.split("processes", 1)[1]
    assert str(first.pid) in table and str(second.pid) not in table


@pytest.mark.slow
def test_once_drops_a_killed_process(start_worker, ncrt_command):
    victim, cores = start_worker(num_cores=2, name="victim")
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=10)
    frame = ncrt_command("top", "--once", "--width", "160", "--no-color").stdout
    assert "victim" not in frame and str(victim.pid) not in frame


class Tmux:
    """A private tmux server (its own socket) running one command in a fixed-size window."""

    def __init__(self, socket_name: str) -> None:
        self.base = ["tmux", "-L", socket_name]

    def start(self, command: str) -> None:
        subprocess.run([*self.base, "new-session", "-d", "-x", "150", "-y", "45", "-s", "top", command],
                       check=True, timeout=10)

    def send(self, *keys: str) -> None:
        subprocess.run([*self.base, "send-keys", "-t", "top", *keys], check=True, timeout=10)

    def screen(self) -> str:
        return subprocess.run([*self.base, "capture-pane", "-p", "-t", "top"], capture_output=True, text=True,
                              timeout=10).stdout

    def wait_for(self, *texts: str, timeout: float = 40.0) -> str:
        """The screen once every one of ``texts`` is on it (a frame may be caught half drawn)."""
        deadline, screen = time.monotonic() + timeout, ""
        while time.monotonic() < deadline:
            screen = self.screen()
            if all(text in screen for text in texts):
                return screen
            time.sleep(0.2)
        raise AssertionError(f"{texts!r} not all on screen within {timeout} s:\n{screen}")

    def kill(self) -> None:
        subprocess.run([*self.base, "kill-server"], capture_output=True, timeout=10)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (apt-get install tmux)")
def test_live_view_in_a_terminal(start_worker, tools_env):
    worker, cores = start_worker(num_cores=2, tag="live", replicas=2, threads=2)
    exports = " ".join(f"{name}={shlex.quote(value)}" for name, value in tools_env.items()
                       if name.startswith(("NCRT_", "PYTHONPATH")))
    tmux = Tmux(f"ncrt-top-test-{os.getpid()}")
    command = f"env -u COLUMNS -u LINES {exports} {shlex.quote(sys.executable)} -m ncrt top --interval 0.5; echo TOP-EXIT=$?; sleep 30"
    tmux.start(command)
    try:
        tmux.wait_for(f"1:{worker.pid} live", "chip 3", f"NC{cores[0]}", "q quit")
        tmux.wait_for("dense@NC0-1")
        tmux.send("1")
        screen = tmux.wait_for("dense@NC0-1 │", f"│ {worker.pid} ")
        row = next(line for line in screen.splitlines() if line.startswith(f"│ {worker.pid} "))
        assert [cell.strip() for cell in row.split("│")[1:4]] == [str(worker.pid), "live", "0,1"]
        tmux.send("q")
        tmux.wait_for("TOP-EXIT=0", timeout=15)
    finally:
        tmux.kill()
