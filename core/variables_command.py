"""``ncrt variables``: every environment variable this installation honours, from the one table.

The table is the core's variables plus those each registered plugin declares
(``ncrt_add_variables``); ``--markdown`` prints the README's configuration table,
``--json`` the same for scripts.
"""

from __future__ import annotations

import argparse
import json

from .config import Variable, variable_table

__all__ = ["add_command", "markdown_table"]


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def markdown_table(variables: list[Variable]) -> str:
    """The configuration table as Markdown: variable, default, what it does, what it accepts."""
    lines = ["| variable | default | what it does | accepted |", "| --- | --- | --- | --- |"]
    for variable in variables:
        lines.append(f"| `{variable.name}` | {_cell(variable.default)} | {_cell(variable.description)} | "
                     f"{_cell(variable.accepted)} |")
    return "\n".join(lines)


def _plain(variables: list[Variable]) -> str:
    width = max(len(variable.name) for variable in variables)
    return "\n".join(f"{variable.name:<{width}}  {variable.description} (default: {variable.default})"
                     for variable in variables)


def run(args: argparse.Namespace) -> int:
    variables = list(variable_table())
    if args.markdown:
        print(markdown_table(variables))
    elif args.json:
        print(json.dumps([{"name": v.name, "description": v.description, "accepted": v.accepted,
                           "default": v.default} for v in variables], indent=2))
    else:
        print(_plain(variables))
    return 0


def add_command(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("variables", help="list every environment variable ncrt and its plugins read")
    form = parser.add_mutually_exclusive_group()
    form.add_argument("--markdown", action="store_true", help="the README's configuration table")
    form.add_argument("--json", action="store_true", help="JSON for scripts")
    parser.set_defaults(func=run)
