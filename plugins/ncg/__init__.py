"""Migration from runtime 1.x: the ``NEURONCORE_GROUP_SIZES`` shim, ``ncrt run``, ``ncrt migrate``.

Modules: ``shim`` (the legacy NeuronCore Group shim: parsing, the deprecation warning,
translation to runtime 2.x, placement by group), ``launcher`` (``ncrt run``), ``report``
(the placement report written at exit), ``migrate`` (``ncrt migrate env|code|check``),
``migrate_code`` (the source rewriter), ``boot`` (the ``sitecustomize`` that ``ncrt run``
puts first on ``PYTHONPATH``).
"""

from __future__ import annotations

from .launcher import boot_dir, child_environment, run_command
from .migrate import compare_reports, render_comparison, translation
from .migrate_code import migrate_python, migrate_shell, migrate_source
from .report import build_report, read_report, write_report
from .shim import ACCEPTED, VARIABLE, GroupLayout, layout_of, legacy_value, parse_group_sizes, replacement_text

__all__ = [
    "ACCEPTED",
    "VARIABLE",
    "GroupLayout",
    "boot_dir",
    "build_report",
    "child_environment",
    "compare_reports",
    "layout_of",
    "legacy_value",
    "migrate_python",
    "migrate_shell",
    "migrate_source",
    "parse_group_sizes",
    "read_report",
    "render_comparison",
    "replacement_text",
    "run_command",
    "translation",
    "write_report",
]
