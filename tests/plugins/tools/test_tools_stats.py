"""The statistics publisher: records that other processes can read, never torn, dead ones seen as dead."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import ncrt
import toolmodels
from ncrt.plugins.tools import stats
from ncrt.records import read_records


def _wait_for(condition, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def test_percentiles_nearest_rank():
    values = [float(v) for v in range(1, 101)]
    result = stats.percentiles(values)
    assert result["p0"] == 1.0 and result["p100"] == 100.0
    assert result["p50"] == pytest.approx(np.percentile(values, 50, method="nearest"), abs=1)
    assert stats.percentiles([]) is None


def test_record_carries_counters_latencies_and_utilization(runtime_env):
    runtime = runtime_env(NCRT_INSTANCE_TYPE="inf1.xlarge", NEURON_RT_NUM_CORES="2")
    model = ncrt.load(toolmodels.dense, replicas=2)
    batch = np.ones((4, 32), dtype="float32")
    for _ in range(40):
        np.testing.assert_allclose(model(batch), toolmodels.reference_dense(batch), rtol=1e-6)
    path = runtime.state_dir / "procs" / f"{runtime.pid}.json"
    record = _wait_for(lambda: (r := json.loads(path.read_text())) and
                       sum(c["executions"] for c in r["cores"]) == 40 and r)
    assert record["pid"] == runtime.pid and record["tag"] == ""
    assert [c["models"] for c in record["cores"]] == [["dense"], ["dense"]]
    assert set(record["latency"]) == {f"p{p}" for p in stats.PERCENTILES}
    assert all(0.0 <= core["utilization"] <= 1.0 for core in record["cores"])
    assert record["latency"]["p0"] <= record["latency"]["p50"] <= record["latency"]["p100"]


def test_record_is_withdrawn_and_publisher_stopped_on_close(runtime_env):
    runtime = runtime_env()
    publisher = stats.publisher_of(runtime)
    assert publisher is not None
    ncrt.reset_runtime()
    assert not publisher._thread.is_alive()
    time.sleep(2 * stats.PUBLISH_PERIOD)
    assert runtime.pid not in read_records(runtime.state_dir)


def test_reader_never_sees_a_torn_record(runtime_env):
    runtime = runtime_env()
    ncrt.load(toolmodels.dense, name="a-model-with-a-long-name-" + "x" * 2000)
    publisher = stats.StatsPublisher(runtime, period=0.0005)
    publisher.start()
    path = runtime.state_dir / "procs" / f"{runtime.pid}.json"
    reads, deadline = 0, time.monotonic() + 0.7
    try:
        while time.monotonic() < deadline:
            assert json.loads(path.read_text())["pid"] == runtime.pid
            reads += 1
    finally:
        publisher.stop()
    assert reads > 50


@pytest.mark.slow
def test_killed_process_record_reads_as_dead(start_worker, tools_env, isolated_runtime):
    from ncrt.topology import build_topology

    topology = build_topology("inf1.6xlarge")
    first, _ = start_worker(num_cores=2, tag="first")
    second, _ = start_worker(num_cores=2)
    live = {p.pid: p for p in stats.read_processes(isolated_runtime, topology)}
    assert set(live) == {first.pid, second.pid}
    assert live[first.pid].tag == "first" and live[first.pid].total("executions") > 0
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    every = {p.pid: p for p in stats.read_processes(isolated_runtime, topology, include_dead=True)}
    assert every[first.pid].alive is False and every[second.pid].alive is True
    assert [p.pid for p in stats.read_processes(isolated_runtime, topology)] == [second.pid]


def test_tool_modules_import_nothing_heavy(tools_env):
    code = (
        "import sys, ncrt.cli\n"
        "import ncrt.plugins.tools.stats, ncrt.plugins.tools.top, ncrt.plugins.tools.monitor, ncrt.plugins.tools.bench, "
        "ncrt.plugins.tools.check_model\n"
        "ncrt.cli.build_parser()\n"
        "heavy = [m for m in ('rich', 'matplotlib', 'prometheus_client', 'psutil') if m in sys.modules]\n"
        "print(heavy)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], env=tools_env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
