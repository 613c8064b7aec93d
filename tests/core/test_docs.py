"""Every hook is documented in docs/plugins.md with its exact signature."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from ncrt import hookspecs

DOCS = (Path(__file__).resolve().parents[2] / "docs" / "plugins.md").read_text()
HOOKS = sorted(name for name in dir(hookspecs) if name.startswith("ncrt_"))


def documented_signature(name: str) -> str:
    signature = inspect.signature(getattr(hookspecs, name))
    params = ", ".join(f"{p.name}: {p.annotation}" for p in signature.parameters.values())
    return f"### `{name}({params}) -> {signature.return_annotation}`"


@pytest.mark.parametrize("name", HOOKS)
def test_hook_is_documented_with_its_signature(name):
    assert documented_signature(name) in DOCS


@pytest.mark.parametrize("name", HOOKS)
def test_hook_has_a_docstring(name):
    assert getattr(hookspecs, name).__doc__.strip()


def test_no_documented_hook_is_missing_from_the_code():
    documented = {line.split("`")[1].split("(")[0] for line in DOCS.splitlines() if line.startswith("### `ncrt_")}
    assert documented == set(HOOKS)
