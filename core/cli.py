"""The ``ncrt`` command. Built-in: ``ls``, ``variables``; plugins add theirs through ``ncrt_add_commands``."""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from .errors import NcrtError
from .manager import shared_plugin_manager

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    from . import __version__, ls, variables_command

    parser = argparse.ArgumentParser(prog="ncrt", description="A NeuronCore runtime for any host.")
    parser.add_argument("--version", action="version", version=f"ncrt {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    ls.add_command(subparsers)
    variables_command.add_command(subparsers)
    shared_plugin_manager().hook.ncrt_add_commands(subparsers=subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except NcrtError as error:
        print(f"ncrt {args.command}: {error}", file=sys.stderr)
        return 1
