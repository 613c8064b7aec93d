"""Targets for multiprocessing children (importable by name, as forkserver and spawn need)."""

from __future__ import annotations

import time
from typing import Any


def double(x: Any) -> Any:
    return x * 2


def call_and_report(model: Any, how: str, results: Any) -> None:
    """Call ``model`` (inherited from a forked parent) and put (outcome, seconds) on ``results``."""
    started = time.monotonic()
    try:
        value = model(3) if how == "sync" else model.submit((3,)).result()
        outcome = f"ran: {value}"
    except Exception as error:  # noqa: BLE001 - reported to the parent
        outcome = f"{type(error).__name__}: {error}"
    results.put((outcome, time.monotonic() - started))


def call_global_model(x: int) -> str:
    """For a fork Pool: call the model the parent stored in ``MODEL`` before forking."""
    try:
        return f"ran: {MODEL(x)}"
    except Exception as error:  # noqa: BLE001 - reported to the parent
        return f"{type(error).__name__}: {error}"


def load_own_and_call(x: int) -> str:
    """For any child: load a model of its own (on its own cores) and call it."""
    import ncrt

    model = ncrt.load(double)
    cores = [ncrt.get_runtime().cores[index].global_index for index in model.cores]
    return f"ran: {model(x)} on global cores {cores}"


MODEL: Any = None
