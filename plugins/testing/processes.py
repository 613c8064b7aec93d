"""Programs run the way production runs them: each under ncrt, in its own process.

:class:`NeuronProcesses` is what the ``neuron_process`` fixture gives a test. Each call
starts a command as ``ncrt run`` would (the Neuron SDK names provided by ncrt, through
:func:`ncrt.plugins.ncg.launcher.child_environment`), with the test's state directory, the
emulated instance and the variables asked for, and a placement report
(``NCRT_PLACEMENT_REPORT``) per ncrt process. Output goes to files, so any number of
processes can run at once without filling a pipe; a process past its time limit is
killed with its process group.
"""

from __future__ import annotations

import itertools
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

from ncrt.errors import BadInputError, ProcessTimeoutError

from .placements import NeuronRun, ProcessPlacement
from ncrt.plugins.ncg import launcher, report
from .settings import NeuronSettings, neuron_variables

__all__ = ["DEFAULT_TIMEOUT", "NeuronProcesses", "RunningProcess", "command_line", "process_environment"]

DEFAULT_TIMEOUT = 300.0
"""Seconds a process may run before it is killed (per call: ``timeout=``)."""

_REPORT_NAME = "placement-{pid}.json"
_POLL = 0.02


def command_line(command: Any, args: Sequence[Any] = ()) -> list[str]:
    """``command`` and ``args`` as an argument list; a ``.py`` script runs under this Python.

    ``command`` is a path, a shell-quoted text (``"app.py --batch 4"``) or a sequence.
    """
    if isinstance(command, os.PathLike):
        parts = [os.fspath(command)]
    elif isinstance(command, str):
        parts = shlex.split(command)
    elif isinstance(command, Sequence) and command:
        parts = [os.fspath(part) if isinstance(part, os.PathLike) else str(part) for part in command]
    else:
        raise BadInputError(f"command {command!r:.80} is not valid; accepted: a script path, a command text "
                            "or a non-empty sequence of arguments")
    if not parts:
        raise BadInputError("the command is empty; accepted: a script path, a command text or a sequence")
    parts += [os.fspath(arg) if isinstance(arg, os.PathLike) else str(arg) for arg in args]
    return [sys.executable, *parts] if parts[0].endswith(".py") else parts


def process_environment(settings: NeuronSettings, state_dir: Path, report_pattern: Path,
                        base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The child's environment: ``base`` without its Neuron variables (the instance kept),
    then the settings, the state directory, the report, and the boot folder on PYTHONPATH."""
    env = dict(os.environ if base is None else base)
    for name in neuron_variables(env):
        if name != "NCRT_INSTANCE_TYPE":
            del env[name]
    env.update(settings.variables())
    return launcher.child_environment(env, state_dir=str(state_dir), placement_report=str(report_pattern))


def _kill_group(process: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
    """Signal the process's group (it leads one: started in a new session) while it runs."""
    if process.poll() is not None:
        return  # reaped: its pid (and group id) may already belong to another process
    try:
        os.killpg(process.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""


class RunningProcess:
    """A process started by :class:`NeuronProcesses`; :meth:`wait` gives its :class:`NeuronRun`."""

    def __init__(self, command: list[str], popen: subprocess.Popen, folder: Path, timeout: float) -> None:
        self.command = tuple(command)
        self.folder = folder
        self.timeout = timeout
        self.deadline = time.monotonic() + timeout
        self._popen = popen
        self._result: NeuronRun | None = None

    @property
    def pid(self) -> int:
        return self._popen.pid

    @property
    def running(self) -> bool:
        return self._popen.poll() is None

    def poll(self) -> int | None:
        """The return code once it exited, else None."""
        return self._popen.poll()

    @property
    def stdout(self) -> str:
        """What it printed so far."""
        return _read(self.folder / "stdout.txt")

    @property
    def stderr(self) -> str:
        return _read(self.folder / "stderr.txt")

    def wait(self, timeout: float | None = None) -> NeuronRun:
        """Wait for it to exit (at most ``timeout`` s, default its time limit); its result.

        Past the limit the process group is killed and :class:`ProcessTimeoutError` raised.
        """
        if self._result is None:
            limit = max(self.deadline - time.monotonic(), 0.0) if timeout is None else timeout
            try:
                self._popen.wait(limit)
            except subprocess.TimeoutExpired:
                self.kill()
                raise ProcessTimeoutError(
                    f"{self.describe()} was still running after {limit:.1f} s and was killed; "
                    f"give a larger timeout= if it needs longer{self._tail()}") from None
            self._result = self._collect()
        return self._result

    def wait_for_output(self, text: str, timeout: float = 60.0) -> str:
        """The first line of stdout containing ``text``, once printed.

        AssertionError when the process exits without printing it, :class:`ProcessTimeoutError`
        when ``timeout`` passes first (the process keeps running).
        """
        deadline = time.monotonic() + timeout
        while True:
            exited = self.poll() is not None
            for line in self.stdout.splitlines():
                if text in line:
                    return line
            if exited:
                raise AssertionError(f"{self.describe()} exited with status {self.poll()} without printing "
                                     f"{text!r}{self._tail()}")
            if time.monotonic() >= deadline:
                raise ProcessTimeoutError(f"{self.describe()} did not print {text!r} within {timeout} s"
                                          f"{self._tail()}")
            time.sleep(_POLL)

    def send_signal(self, sig: int) -> None:
        """Send ``sig`` to the process itself."""
        if self.running:
            self._popen.send_signal(sig)

    def terminate(self) -> None:
        """SIGTERM to its process group (the process and any it started)."""
        _kill_group(self._popen, signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL to its process group; its cores are free as soon as it is gone."""
        _kill_group(self._popen, signal.SIGKILL)
        self._popen.wait()

    def stop(self, grace: float = 10.0) -> NeuronRun:
        """SIGTERM, then SIGKILL after ``grace`` seconds; its result."""
        if self.running:
            self.terminate()
            try:
                self._popen.wait(grace)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.wait()

    def describe(self) -> str:
        return f"{shlex.join(self.command)} (pid {self.pid})"

    def _tail(self) -> str:
        parts = (("stdout", self.stdout[-2000:]), ("stderr", self.stderr[-2000:]))
        return "".join(f"\n--- {name} ---\n{text.rstrip()}" for name, text in parts if text.strip())

    def _collect(self) -> NeuronRun:
        reports = [report.read_report(path) for path in sorted(self.folder.glob("placement-*.json"))]
        reports.sort(key=lambda data: (data.get("pid") != self.pid, data.get("time", 0.0)))
        return NeuronRun(
            command=self.command, pid=self.pid, returncode=self._popen.returncode,
            stdout=self.stdout, stderr=self.stderr,
            processes=tuple(ProcessPlacement.from_report(data) for data in reports),
        )

    def __repr__(self) -> str:
        state = "running" if self.running else f"exited {self.poll()}"
        return f"<RunningProcess {self.describe()} {state}>"


class NeuronProcesses:
    """Starts programs under ncrt for one test, all in its state directory.

    ``neuron_process(command, *args, num_cores=2)`` runs a command to the end and returns its
    :class:`NeuronRun`; ``neuron_process.start(...)`` returns a :class:`RunningProcess` at
    once, so several can hold cores at the same time. Keyword arguments: ``instance``,
    ``num_cores``, ``visible_cores``, ``group_sizes`` (as the ``neuron`` marker takes them),
    ``env`` (more variables), ``cwd``, ``timeout`` (seconds; default :data:`DEFAULT_TIMEOUT`).
    The instance defaults to the test's (its ``neuron`` marker, ``--neuron-instance``, or
    ``NCRT_INSTANCE_TYPE``); no other Neuron variable of the test's environment is passed on.
    """

    def __init__(self, state_dir: Path, workdir: Path, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.state_dir = Path(state_dir)
        self.workdir = Path(workdir)
        self.timeout = timeout
        self.started: list[RunningProcess] = []
        self._serial = itertools.count(1)

    def start(self, command: Any, *args: Any, env: Mapping[str, Any] | None = None, cwd: Any = None,
              timeout: float | None = None, **neuron: Any) -> RunningProcess:
        """Start ``command`` (see :func:`command_line`) under ncrt; do not wait for it."""
        settings = NeuronSettings.from_arguments({**neuron, "env": env}, where="neuron_process call")
        argv = command_line(command, args)
        folder = self.workdir / f"process-{next(self._serial):03d}"
        folder.mkdir(parents=True)
        environment = process_environment(settings, self.state_dir, folder / _REPORT_NAME)
        with open(folder / "stdout.txt", "wb") as out, open(folder / "stderr.txt", "wb") as err:
            try:
                popen = subprocess.Popen(argv, env=environment, cwd=cwd, stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=err, start_new_session=True)
            except OSError as error:
                raise BadInputError(f"cannot start {shlex.join(argv)}: {error.strerror or error}") from None
        process = RunningProcess(argv, popen, folder, self.timeout if timeout is None else timeout)
        self.started.append(process)
        return process

    def run(self, command: Any, *args: Any, **options: Any) -> NeuronRun:
        """Run ``command`` to the end under ncrt (options as :meth:`start`); its result."""
        return self.start(command, *args, **options).wait()

    __call__ = run

    def cleanup(self) -> list[RunningProcess]:
        """Kill the processes still running; those it killed."""
        leftover = [process for process in self.started if process.running]
        for process in leftover:
            process.kill()
        return leftover
