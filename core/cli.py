"""The ``ncrt`` command. Built-in: ``ls``, ``variables``; plugins add theirs through ``ncrt_add_commands``.

A command that fails with an :class:`~ncrt.errors.NcrtError`, or on an optional
dependency that is not installed, prints one line saying so (and, for the latter, the
pip extra to install) instead of a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import sys
import warnings
from typing import Any, Iterator, Sequence

from .errors import NcrtError
from .manager import shared_plugin_manager

__all__ = ["EXTRAS", "build_parser", "main", "positive_milliseconds", "positive_seconds"]

EXTRAS: dict[str, str] = {
    "rich": "tools", "prometheus_client": "tools", "matplotlib": "tools", "psutil": "tools",
    "libcst": "tools", "torch": "torch", "tensorflow": "tensorflow", "mxnet": "mxnet",
}
"""The top-level modules of ncrt's optional dependencies, and the pip extra that installs each."""


def _positive(text: str, unit: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"{text!r} is not valid; accepted: a finite number of {unit} > 0")
    return value


def positive_seconds(text: str) -> float:
    """An argparse type: a finite number of seconds above 0 (``nan`` and ``inf`` refused)."""
    return _positive(text, "seconds")


def positive_milliseconds(text: str) -> float:
    """An argparse type: a finite number of milliseconds above 0."""
    return _positive(text, "milliseconds")


def _missing_extra(error: ModuleNotFoundError) -> str | None:
    """The pip extra whose module ``error`` did not find, None for any other module."""
    name = (error.name or "").split(".", 1)[0]
    return EXTRAS.get(name)


def build_parser() -> argparse.ArgumentParser:
    from . import __version__, ls, variables_command

    parser = argparse.ArgumentParser(prog="ncrt", description="A NeuronCore runtime for any host.")
    parser.add_argument("--version", action="version", version=f"ncrt {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    ls.add_command(subparsers)
    variables_command.add_command(subparsers)
    shared_plugin_manager().hook.ncrt_add_commands(subparsers=subparsers)
    return parser


@contextlib.contextmanager
def _one_line_warnings(command: str) -> Iterator[None]:
    """Format ncrt's state-record warnings as ``ncrt <command>: warning: ...`` lines.

    Only the formatting changes (``warnings.formatwarning``), so code that records
    warnings (``warnings.catch_warnings(record=True)``, pytest) still sees them.
    """
    from .statefiles import StateRecordWarning

    formatted = warnings.formatwarning

    def one_line(message: Any, category: type[Warning], filename: str, lineno: int, line: str | None = None) -> str:
        if issubclass(category, StateRecordWarning):
            return f"ncrt {command}: warning: {message}\n"
        return formatted(message, category, filename, lineno, line)

    warnings.formatwarning = one_line
    try:
        yield
    finally:
        warnings.formatwarning = formatted


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    with _one_line_warnings(args.command):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    try:
        return int(args.func(args) or 0)
    except NcrtError as error:
        print(f"ncrt {args.command}: {error}", file=sys.stderr)
        return 1
    except ModuleNotFoundError as error:
        extra = _missing_extra(error)
        if extra is None:
            raise
        print(f"ncrt {args.command} needs {error.name.split('.')[0]}, which is not installed; install it with: "
              f"pip install 'ncrt[{extra}]'", file=sys.stderr)
        return 1
