"""``ncrt run -- COMMAND ...``: run an unmodified Neuron application under ncrt.

The child gets the directory of :mod:`ncrt.plugins.ncg.boot` prepended to ``PYTHONPATH``;
its ``sitecustomize`` imports :mod:`ncrt.compat` before the application's code runs,
so ``import torch_neuron``, ``torch.neuron``, ``tensorflow.neuron``, ``mx.neuron`` and
``import mx_neuron`` resolve to ncrt. Options set the instance preset
(``NCRT_INSTANCE_TYPE``), the state directory (``NCRT_STATE_DIR``), the placement
report (``NCRT_PLACEMENT_REPORT``) and ``NCRT_LEGACY_NCG``.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Mapping, Sequence

from ncrt.hookspecs import hookimpl

__all__ = ["boot_dir", "child_environment", "run_command", "command_of", "add_run_options"]


def boot_dir() -> Path:
    """The folder whose ``sitecustomize.py`` installs the compatibility names."""
    import ncrt.plugins.ncg.boot

    return Path(ncrt.plugins.ncg.boot.__file__).resolve().parent


def child_environment(
    base: Mapping[str, str] | None = None,
    *,
    instance_type: str | None = None,
    state_dir: str | None = None,
    placement_report: str | None = None,
    legacy_ncg: str | None = None,
) -> dict[str, str]:
    """``base`` (default ``os.environ``) with the boot folder on PYTHONPATH and the options set."""
    env = dict(os.environ if base is None else base)
    paths = [str(boot_dir())] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    options = {
        "NCRT_INSTANCE_TYPE": instance_type,
        "NCRT_STATE_DIR": state_dir and str(Path(state_dir).resolve()),
        "NCRT_PLACEMENT_REPORT": placement_report and str(Path(placement_report).resolve()),
        "NCRT_LEGACY_NCG": legacy_ncg,
    }
    env.update({name: value for name, value in options.items() if value})
    return env


def command_of(remainder: Sequence[str]) -> list[str]:
    """The command after an optional ``--``; SystemExit(2) with a usage line when empty."""
    command = list(remainder)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        raise SystemExit("ncrt: give the command to run after --, for example: ncrt run -- python app.py")
    return command


def run_command(command: Sequence[str], env: Mapping[str, str]) -> int:
    """Run ``command`` with ``env``; its exit status (128+N when killed by signal N)."""
    try:
        process = subprocess.Popen(list(command), env=dict(env))
    except OSError as error:
        print(f"ncrt: cannot run {command[0]!r}: {error.strerror or error}", file=sys.stderr)
        return 127
    try:
        code = process.wait()
    except KeyboardInterrupt:
        process.send_signal(signal.SIGINT)
        code = process.wait()
    return 128 - code if code < 0 else code


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """The options ``ncrt run`` and ``ncrt migrate check`` share."""
    parser.add_argument("--instance-type", metavar="TYPE", help="instance preset to emulate (NCRT_INSTANCE_TYPE)")
    parser.add_argument("--state-dir", metavar="DIR", help="directory of the core locks (NCRT_STATE_DIR)")


def _run(args: argparse.Namespace) -> int:
    command = command_of(args.command_line)
    env = child_environment(
        instance_type=args.instance_type, state_dir=args.state_dir,
        placement_report=args.placement_report, legacy_ncg=args.legacy_ncg,
    )
    return run_command(command, env)


@hookimpl
def ncrt_add_commands(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "run", help="run an unmodified Neuron application under ncrt",
        description="Run COMMAND with the Neuron SDK names (torch.neuron, tensorflow.neuron, "
        "mx.neuron, torch_neuron, mx_neuron) provided by ncrt.",
        usage="ncrt run [options] -- COMMAND [ARG ...]",
    )
    add_run_options(parser)
    parser.add_argument("--placement-report", metavar="FILE",
                        help="write the placement of every model as JSON at exit (NCRT_PLACEMENT_REPORT)")
    parser.add_argument("--legacy-ncg", choices=("warn", "error"),
                        help="what NEURONCORE_GROUP_SIZES does (NCRT_LEGACY_NCG)")
    parser.add_argument("command_line", nargs=argparse.REMAINDER, metavar="COMMAND")
    parser.set_defaults(func=_run)
