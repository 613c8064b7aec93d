"""Children of the SIGKILL soak: processes that reserve NeuronCores until they are killed.

``python soakchild.py hold STATE_DIR MODE VALUE`` (exec'ed) starts a runtime with
``NEURON_RT_NUM_CORES=VALUE`` (MODE ``num``) or ``NEURON_RT_VISIBLE_CORES=VALUE`` (MODE
``visible``) on an emulated inf1.6xlarge, prints ``HELD <pid> <cores>`` (or ``REFUSED
<pid>``) and sleeps. ``python soakchild.py zygote STATE_DIR`` imports ncrt once and forks
such a holder for every ``MODE VALUE`` line it reads, printing ``FORKED <pid>``.
"""

from __future__ import annotations

import os
import signal
import sys
import time

import ncrt
from ncrt.errors import NcrtError

INSTANCE = "inf1.6xlarge"


def hold(state_dir: str, mode: str, value: str) -> None:
    variable = "NEURON_RT_NUM_CORES" if mode == "num" else "NEURON_RT_VISIBLE_CORES"
    environ = {"NCRT_STATE_DIR": state_dir, "NCRT_INSTANCE_TYPE": INSTANCE, variable: value}
    try:
        runtime = ncrt.Runtime(environ)
    except NcrtError:
        line = f"REFUSED {os.getpid()}\n"
    else:
        line = f"HELD {os.getpid()} {','.join(str(core.global_index) for core in runtime.cores)}\n"
    os.write(1, line.encode())  # one write: lines of concurrent children never interleave
    while True:
        time.sleep(60)


def zygote(state_dir: str) -> None:
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps killed children at once
    ncrt.Runtime  # noqa: B018 - everything a holder needs is imported before the first fork
    from ncrt.manager import plugin_manager

    plugin_manager()  # imports every built-in plugin once, so forked holders start fast
    while True:
        line = sys.stdin.readline()
        if not line:
            return
        mode, value = line.split()
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            hold(state_dir, mode, value)
        os.write(1, f"FORKED {pid}\n".encode())


if __name__ == "__main__":
    if sys.argv[1] == "zygote":
        zygote(sys.argv[2])
    else:
        hold(*sys.argv[2:5])
