"""The Ray plugin tests need Ray (``pip install 'ncrt[ray]'``)."""

from __future__ import annotations

import pytest

pytest.importorskip("ray")
