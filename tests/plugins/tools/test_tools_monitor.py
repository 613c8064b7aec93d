"""``ncrt monitor`` against real processes running models: JSON reports and Prometheus metrics."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

pytestmark = pytest.mark.slow


def _reports(result: subprocess.CompletedProcess) -> list[dict]:
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_reports_follow_neuron_monitor_shape(start_worker, ncrt_command):
    busy, busy_cores = start_worker(num_cores=2, tag="busy", replicas=2, threads=2)
    broken, _ = start_worker(num_cores=1, model="failing")
    reports = _reports(ncrt_command("monitor", "--period", "0.5", "--count", "3"))
    assert len(reports) == 3
    last = reports[-1]
    entries = {entry["pid"]: entry for entry in last["neuron_runtime_data"]}
    assert set(entries) == {busy.pid, broken.pid}
    busy_report = entries[busy.pid]["report"]
    assert entries[busy.pid]["neuron_runtime_tag"] == "busy"
    assert entries[broken.pid]["neuron_runtime_tag"] == str(broken.pid)
    in_use = busy_report["neuroncore_counters"]["neuroncores_in_use"]
    assert sorted(map(int, in_use)) == busy_cores
    assert all(in_use[str(core)]["neuroncore_utilization"] > 0 for core in busy_cores)
    assert all(in_use[str(core)]["models"] == ["dense"] for core in busy_cores)
    # Periods after the first: on a loaded host a period can end before the worker republished
    # its record (a 0-call period, rightly), so the figures are checked over the periods together.
    summaries = [entry["report"]["execution_stats"]["execution_summary"] for report in reports[1:]
                 for entry in report["neuron_runtime_data"] if entry["pid"] == busy.pid]
    assert sum(summary["completed"] for summary in summaries) > 0
    assert all(summary["completed_with_err"] == 0 and summary["timed_out"] == 0 for summary in summaries)
    latency = busy_report["execution_stats"]["latency_stats"]["total_latency"]
    assert 0 < latency["p0"] <= latency["p50"] <= latency["p99"] <= latency["p100"]
    errors = [r["neuron_runtime_data"] for r in reports]
    failed = sum(e["report"]["execution_stats"]["execution_summary"]["completed_with_err"]
                 for entries_ in errors for e in entries_ if e["pid"] == broken.pid)
    assert failed > 0
    assert last["system_data"]["memory_info"]["memory_total_bytes"] > 0
    assert set(last["system_data"]["vcpu_usage"]["average_usage"]) >= {"user", "system", "idle"}
    assert last["instance_info"]["instance_type"] == "inf1.6xlarge"
    assert last["neuron_hardware_info"]["neuroncore_per_device_count"] == 4


def test_period_figures_add_up_to_the_totals(start_worker, ncrt_command, tools_env):
    worker, _ = start_worker(num_cores=1, seconds=3)
    reports = _reports(ncrt_command("monitor", "--period", "0.4", "--count", "12"))
    assert worker.pid not in [e["pid"] for e in reports[-1]["neuron_runtime_data"]]  # exited: withdrawn
    completed = sum(e["report"]["execution_stats"]["execution_summary"]["completed"]
                    for r in reports for e in r["neuron_runtime_data"] if e["pid"] == worker.pid)
    out, _ = worker.communicate(timeout=30)
    done = int(out.split("DONE")[1].split()[0])
    assert 0 < completed <= done + 200  # the warm-up calls before READY are counted too


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _fetch_metrics(port: int, want: str, timeout: float = 30.0) -> str:
    deadline, text = time.monotonic() + timeout, ""
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
                text = response.read().decode()
        except OSError:
            time.sleep(0.2)
            continue
        if want in text:
            return text
        time.sleep(0.2)
    raise AssertionError(f"{want!r} not served within {timeout} s; last page:\n{text[:2000]}")


def _value(text: str, name: str, **labels: str) -> float:
    """The sample ``name`` whose labels include ``labels``, parsed with the official client."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and labels.items() <= sample.labels.items():
                return sample.value
    raise AssertionError(f"no {name} {labels} in:\n{text[:3000]}")


def test_prometheus_metrics_on_loopback(start_worker, tools_env):
    worker, cores = start_worker(num_cores=2, tag="served", replicas=2)
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "ncrt", "monitor", "--prometheus", str(port), "--quiet",
                               "--period", "0.3"], env=tools_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        text = _fetch_metrics(port, 'runtime_tag="served"')
        mine = {"pid": str(worker.pid), "runtime_tag": "served", "instance_type": "inf1.6xlarge"}
        assert _value(text, "execution_status_total", status_type="completed", **mine) > 0
        assert _value(text, "execution_status_total", status_type="timed_out", **mine) == 0
        for core in cores:
            assert 0.0 <= _value(text, "neuroncore_utilization_ratio", neuroncore=str(core), **mine) <= 1.0
        assert _value(text, "execution_latency_seconds", percentile="p50", latency_type="total", **mine) > 0
        assert _value(text, "system_memory_total_bytes") > 0
        assert 'instance_info{instance_type="inf1.6xlarge"' in text
        with socket.socket() as probe:  # bound to loopback only
            assert probe.connect_ex(("127.0.0.1", port)) == 0
        assert server.poll() is None
    finally:
        server.terminate()
        server.communicate(timeout=10)


@pytest.mark.parametrize("period", ["0", "-1", "nan", "inf", "soon"])
def test_bad_period_is_refused(ncrt_command, period):
    result = ncrt_command("monitor", "--period", period, "--count", "1")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"argument --period: '{period}' is not valid; accepted: a finite number of seconds > 0" in result.stderr
