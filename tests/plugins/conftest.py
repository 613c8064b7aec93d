"""Fixtures the framework plugins' tests share."""

from __future__ import annotations

import threading
import time
from types import ModuleType

import pytest


class StageTimeline:
    """When each NeuronCore Pipeline stage ran: a plugin's ``run_stage`` wrapped so that every
    stage takes 30 ms more (long enough to see overlap on a busy host) and is recorded."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.monkeypatch = monkeypatch
        self.intervals: list[tuple[int, float, float]] = []  # (core, start, end)
        self._lock = threading.Lock()

    def record(self, plugin_pipeline: ModuleType) -> None:
        original = plugin_pipeline.run_stage

        def recording(model, inputs, core):
            start = time.monotonic()
            time.sleep(0.03)
            result = original(model, inputs, core)
            with self._lock:
                self.intervals.append((core.index, start, time.monotonic()))
            return result

        self.monkeypatch.setattr(plugin_pipeline, "run_stage", recording)

    def overlaps(self) -> int:
        """For how many requests ``k`` a later request ran in stage 0 (core 0) while ``k`` ran in
        stage 1: streaming. (Stage 0 may be more than one request ahead when the host is busy.)"""
        stage0 = sorted((s, e) for core, s, e in self.intervals if core == 0)
        stage1 = sorted((s, e) for core, s, e in self.intervals if core == 1)
        return sum(1 for k, (start, end) in enumerate(stage1)
                   if any(later_start < end and start < later_end for later_start, later_end in stage0[k + 1:]))


@pytest.fixture
def stage_timeline(monkeypatch: pytest.MonkeyPatch) -> StageTimeline:
    return StageTimeline(monkeypatch)
