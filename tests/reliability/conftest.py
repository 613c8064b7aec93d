"""Fixtures of the reliability suite."""

from __future__ import annotations

import threading

import pytest


@pytest.fixture
def hang():
    """An event the never-returning models and stages wait on; released when the test ends."""
    event = threading.Event()
    yield event
    event.set()
