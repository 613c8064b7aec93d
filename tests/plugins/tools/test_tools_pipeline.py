"""The tools show each NeuronCore Pipeline stage of another process: its core and busy time."""

from __future__ import annotations

import json
import time

import pytest


def _wait_busy(ncrt_command, core: int, deadline: float = 20.0) -> list[dict]:
    """``ncrt ls --json`` rows once the stage on ``core`` has published some busy time."""
    end = time.monotonic() + deadline
    while True:
        rows = json.loads(ncrt_command("ls", "--json").stdout)["cores"]
        stages = next(row for row in rows if row["index"] == core)["stages"]
        if (stages and stages[0]["busy_seconds"] > 0) or time.monotonic() > end:
            return rows
        time.sleep(0.3)


@pytest.mark.slow
def test_ls_top_and_monitor_show_each_stage(start_worker, ncrt_command):
    worker, cores = start_worker(num_cores=2, model="piped", threads=2, tag="piped")
    rows = {row["index"]: row for row in _wait_busy(ncrt_command, cores[1])}
    first, second = rows[cores[0]]["stages"], rows[cores[1]]["stages"]
    assert [(s["model"], s["stage"], s["label"]) for s in first] == [("piped", 0, "matmul")]
    assert [(s["model"], s["stage"], s["label"]) for s in second] == [("piped", 1, "tanh")]
    assert first[0]["executions"] > 0 and second[0]["busy_seconds"] > 0
    assert rows[cores[0]]["pid"] == worker.pid
    text = ncrt_command("ls").stdout
    assert "piped[stage 0]" in text and "piped[stage 1]" in text

    frame = ncrt_command("top", "--once", "--width", "160", "--no-color").stdout
    assert "pipeline stages" in frame
    core_rows = {line.split()[1]: line for line in frame.splitlines() if line.startswith("│ NC")}
    assert "piped:s0" in core_rows[f"NC{cores[0]}"] and "piped:s1" in core_rows[f"NC{cores[1]}"]
    stage_rows = [line for line in frame.split("pipeline stages", 1)[1].splitlines() if str(worker.pid) in line]
    assert len(stage_rows) == 2 and f"NC{cores[1]}" in stage_rows[1] and "tanh" in stage_rows[1]

    reports = [json.loads(line) for line in ncrt_command("monitor", "--period", "0.5", "--count", "2").stdout.splitlines()]
    entry = next(e for e in reports[-1]["neuron_runtime_data"] if e["pid"] == worker.pid)
    in_use = entry["report"]["neuroncore_counters"]["neuroncores_in_use"]
    assert [s["stage"] for s in in_use[str(cores[1])]["pipeline_stages"]] == [1]
    model = next(m for m in entry["report"]["loaded_models"] if m["name"] == "piped")
    assert [(s["stage"], s["global_core"]) for s in model["stages"]] == [(0, cores[0]), (1, cores[1])]
    assert all(s["busy_seconds"] > 0 for s in model["stages"])
