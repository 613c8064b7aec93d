"""What the testing plugin builds on: ``ncrt run``, the placement report, ``ncrt migrate``.

Every import of another ncrt plugin module is on the one line below, so that moving those
modules (into ``ncrt.plugins.ncg``) is a one-line change here:
``from ncrt.plugins.ncg import launcher, migrate, report, shim as ncg``.
"""

from __future__ import annotations

from ncrt.plugins import launcher, migrate, ncg, report

__all__ = ["launcher", "migrate", "ncg", "report"]
