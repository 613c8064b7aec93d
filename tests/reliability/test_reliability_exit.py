"""Interpreter exit: ncrt's threads finish the calls they are in and end before finalization.

A daemon thread still running when the interpreter finalizes is ended the next time it
takes the GIL; inside a framework's C++ code (torch frees a tensor with the GIL released)
that aborts the process ("terminate called without an active exception"). So at exit the
cores' workers, the runners and the watchdog are stopped and waited for, a bounded time.
Each test is a real process that exits while ncrt still has work running.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import pytest

RUNNING_AT_EXIT = textwrap.dedent("""
    import pathlib, sys, threading, time
    import ncrt

    marker = pathlib.Path(sys.argv[1])
    started = threading.Event()

    def slow(x):
        started.set()
        time.sleep(0.5)
        marker.write_text(f"done {x}")
        return x

    model = ncrt.get_runtime().load(slow)
    model.submit((7,))  # queued to the core's worker; nobody waits for it
    started.wait(10)
    print("exiting", flush=True)
""")

TORCH_RUNNING_AT_EXIT = textwrap.dedent("""
    import pathlib, sys
    import torch
    import ncrt
    from ncrt.plugins import torch as neuron

    marker = pathlib.Path(sys.argv[1])
    model = torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.ReLU(), torch.nn.Linear(256, 64)).eval()
    traced = neuron.trace(model, torch.rand(4, 64))
    traced(torch.rand(4, 64))  # placed on first use
    futures = [traced.loaded.submit((torch.rand(4, 64),)) for _ in range(200)]  # tensors in flight at exit
    futures[-1].add_done_callback(lambda done: marker.write_text(str(tuple(done.result().shape))))
    futures[0].result()
    print("exiting", flush=True)
""")


STUCK_AT_EXIT = textwrap.dedent("""
    import threading
    import ncrt

    started = threading.Event()

    def stuck(x):
        started.set()
        threading.Event().wait()  # never returns

    model = ncrt.get_runtime().load(stuck)
    model.submit((1,))
    started.wait(10)
    print("exiting", flush=True)
""")


def _run(python_env, script: str, *args: str, env: dict[str, str] | None = None) -> tuple[subprocess.CompletedProcess, float]:
    began = time.monotonic()
    done = subprocess.run([sys.executable, "-c", script, *args], env={**python_env, **(env or {})},
                          capture_output=True, text=True, timeout=120)
    return done, time.monotonic() - began


def test_a_call_running_at_exit_finishes_before_the_process_ends(python_env, tmp_path):
    marker = tmp_path / "marker"
    done, _ = _run(python_env, RUNNING_AT_EXIT, str(marker), env={"NEURON_RT_EXEC_TIMEOUT": "0"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "exiting"
    assert marker.read_text() == "done 7"  # the worker finished its call during the interpreter's exit


def test_torch_jobs_in_flight_at_exit_finish_and_never_abort_the_process(python_env, tmp_path):
    pytest.importorskip("torch")
    for attempt in range(3):
        marker = tmp_path / f"last-{attempt}"
        done, _ = _run(python_env, TORCH_RUNNING_AT_EXIT, str(marker))
        assert done.returncode == 0, done.stderr[-2000:]
        assert "terminate called" not in done.stderr
        assert marker.read_text() == "(4, 64)"  # the last of the 200 jobs ran before the process ended


def test_a_call_stuck_at_exit_delays_it_a_bounded_time_and_says_so(python_env):
    from ncrt.runtime import EXIT_WAIT

    done, seconds = _run(python_env, STUCK_AT_EXIT, env={"NEURON_RT_EXEC_TIMEOUT": "0", "NEURON_RT_LOG_LEVEL": "WARNING"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert "ncrt-nc0 still ran after 2 s (stuck in a call)" in done.stderr
    assert EXIT_WAIT <= seconds < EXIT_WAIT + 30  # waited for it, then left it behind
