"""``ncrt monitor``: neuron-monitor style JSON reports, and Prometheus metrics.

Every ``--period`` seconds one JSON line in the shape of neuron-monitor's report:
``neuron_runtime_data`` (one entry per live ncrt process: pid, ``neuron_runtime_tag``
from ``NEURON_PROCESS_TAG``, per-core utilization, execution summary and latency
percentiles for the period; each core's NeuronCore Pipeline stages, with their busy
time), ``system_data`` (host vCPU and memory) and
``instance_info``. ``--prometheus PORT`` also serves the same figures on
``http://127.0.0.1:PORT/metrics`` through the official ``prometheus_client``.
The figures come from the records each runtime publishes (:mod:`ncrt.plugins.tools.stats`).
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from typing import TYPE_CHECKING, Any, Iterator

from ncrt.cli import positive_seconds
from ncrt.errors import BadInputError
from ncrt.hookspecs import hookimpl
from ncrt.ls import stages_by_core

from .stats import ProcessStats, add_survey_arguments, read_processes, sample_host, survey_target

if TYPE_CHECKING:
    from pathlib import Path

    from ncrt.topology import Topology

__all__ = ["Monitor", "ReportCollector", "runtime_entry", "system_data", "instance_info", "run"]

SUMMARY_COUNTERS = {"completed": "completed", "completed_with_err": "errors", "timed_out": "timeouts"}


def _totals(process: ProcessStats) -> dict[str, float]:
    errors = process.total("errors")
    return {
        "completed": max(0, process.total("executions") - errors),
        "errors": errors,
        "timeouts": process.total("timeouts"),
        "busy_seconds": process.total("busy_seconds"),
    }


def _execution_summary(now: dict[str, float], before: dict[str, float] | None) -> dict[str, int]:
    before = before or {}
    summary = {name: int(now[key] - before.get(key, 0)) for name, key in SUMMARY_COUNTERS.items()}
    summary.update(completed_with_num_err=0, incorrect_input=0, failed_to_queue=0)
    return summary


def _core_utilization(process: ProcessStats, previous: ProcessStats | None) -> dict[str, dict[str, Any]]:
    """Per global core: utilization in percent over the period (the publisher's if no previous)."""
    elapsed = process.time - previous.time if previous else 0.0
    before = {core["global_index"]: core for core in previous.cores} if previous else {}
    stages = stages_by_core(process.models)
    cores = {}
    for core in process.cores:
        ratio = core.get("utilization", 0.0)
        if elapsed > 0 and core["global_index"] in before:
            busy = core.get("busy_seconds", 0.0) - before[core["global_index"]].get("busy_seconds", 0.0)
            ratio = min(1.0, max(0.0, busy / elapsed))
        cores[str(core["global_index"])] = {
            "neuroncore_utilization": round(100.0 * ratio, 3),
            "model_switches": core.get("model_switches", 0),
            "models": core.get("models", []),
            "pipeline_stages": stages.get(core["global_index"], []),
        }
    return cores


def runtime_entry(process: ProcessStats, previous: ProcessStats | None, period: float) -> dict[str, Any]:
    """One ``neuron_runtime_data`` entry, period figures relative to ``previous``."""
    latency = process.record.get("latency")
    return {
        "pid": process.pid,
        "neuron_runtime_tag": process.tag or str(process.pid),
        "error": "",
        "report": {
            "execution_stats": {
                "period": period,
                "execution_summary": _execution_summary(_totals(process), _totals(previous) if previous else None),
                "error_summary": {"generic": 0, "numerical": 0, "transient": 0, "model": 0, "runtime": 0},
                "latency_stats": {"total_latency": latency, "device_latency": latency},
                "error": "",
            },
            "neuroncore_counters": {
                "period": period,
                "neuroncores_in_use": _core_utilization(process, previous),
                "error": "",
            },
            "loaded_models": process.models,
            "command": process.command,
        },
    }


def system_data(host: dict[str, Any], period: float) -> dict[str, Any]:
    """``system_data``: vCPU usage (percent by type) and memory, as neuron-monitor names them."""
    times = host["vcpu_times"]
    return {
        "vcpu_usage": {
            "period": period,
            "average_usage": {
                "user": times["user"], "nice": times["nice"], "system": times["system"], "idle": times["idle"],
                "io_wait": times["iowait"], "irq": times["irq"], "soft_irq": times["softirq"],
            },
            "error": "",
        },
        "memory_info": {
            "period": period,
            **{key: host[key] for key in
               ("memory_total_bytes", "memory_used_bytes", "swap_total_bytes", "swap_used_bytes")},
            "error": "",
        },
    }


def instance_info(topology: Topology) -> dict[str, Any]:
    """``instance_info`` and the hardware shape of the emulated instance."""
    return {
        "instance_name": "", "instance_id": "", "instance_type": topology.name,
        "instance_availability_zone": "", "instance_region": "", "ami_id": "", "subnet_id": "",
        "error": "",
    }


def hardware_info(topology: Topology) -> dict[str, Any]:
    return {"neuron_device_count": topology.chip_count,
            "neuroncore_per_device_count": topology.cores_per_chip, "error": ""}


class Monitor:
    """Builds successive reports, remembering each process's previous record."""

    def __init__(self, topology: Topology, state_dir: Path, period: float) -> None:
        self.topology = topology
        self.state_dir = state_dir
        self.period = period
        self._previous: dict[int, ProcessStats] = {}
        self.processes: list[ProcessStats] = []
        self.host: dict[str, Any] = sample_host(interval=None)

    def report(self) -> dict[str, Any]:
        self.processes = read_processes(self.state_dir, self.topology)
        self.host = sample_host(interval=None)
        entries = [runtime_entry(p, self._previous.get(p.pid), self.period) for p in self.processes]
        self._previous = {process.pid: process for process in self.processes}
        return {
            "neuron_runtime_data": entries,
            "system_data": system_data(self.host, self.period),
            "instance_info": instance_info(self.topology),
            "neuron_hardware_info": hardware_info(self.topology),
        }


class ReportCollector:
    """A ``prometheus_client`` collector over the latest processes and host sample."""

    def __init__(self, monitor: Monitor) -> None:
        self.monitor = monitor
        self.lock = threading.Lock()

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        with self.lock:
            processes, host = list(self.monitor.processes), dict(self.monitor.host)
        yield from self._process_metrics(processes, CounterMetricFamily, GaugeMetricFamily)
        yield from self._system_metrics(host, GaugeMetricFamily)

    def _process_metrics(self, processes: list[ProcessStats], counter: Any, gauge: Any) -> Iterator[Any]:
        labels = ["runtime_tag", "pid", "instance_type"]
        status = counter("execution_status", "Executions by outcome", labels=[*labels, "status_type"])
        latency = gauge("execution_latency_seconds", "Execution latency percentiles",
                        labels=[*labels, "latency_type", "percentile"])
        utilization = gauge("neuroncore_utilization_ratio", "NeuronCore busy time over the last second",
                            labels=[*labels, "neuroncore"])
        switches = counter("neuroncore_model_switches", "Model switches per core", labels=[*labels, "neuroncore"])
        stage_busy = counter("pipeline_stage_busy_seconds", "Busy time of each NeuronCore Pipeline stage",
                             labels=[*labels, "model", "replica", "stage", "neuroncore"])
        for process in processes:
            base = [process.tag or str(process.pid), str(process.pid), self.monitor.topology.name]
            totals = _totals(process)
            for name, key in SUMMARY_COUNTERS.items():
                status.add_metric([*base, name], totals[key])
            for name, value in (process.record.get("latency") or {}).items():
                latency.add_metric([*base, "total", name], value)
            for core in process.cores:
                utilization.add_metric([*base, str(core["global_index"])], core.get("utilization", 0.0))
                switches.add_metric([*base, str(core["global_index"])], core.get("model_switches", 0))
            for model in process.models:
                for stage in model.get("stages", []):
                    stage_busy.add_metric([*base, model["name"], str(stage["replica"]), str(stage["stage"]),
                                           str(stage["global_core"])], stage.get("busy_seconds", 0.0))
        yield from (status, latency, utilization, switches, stage_busy)

    def _system_metrics(self, host: dict[str, Any], gauge: Any) -> Iterator[Any]:
        vcpu = gauge("system_vcpu_usage_ratio", "Host vCPU usage by type", labels=["usage_type"])
        for name, value in host["vcpu_times"].items():
            vcpu.add_metric([name], value / 100.0)
        yield vcpu
        for key in ("memory_total_bytes", "memory_used_bytes", "swap_total_bytes", "swap_used_bytes"):
            yield gauge(f"system_{key}", f"Host {key.replace('_', ' ')}", value=host[key])
        info = gauge("instance_info", "The emulated instance", labels=["instance_type", "neuron_device_count",
                                                                        "neuroncore_per_device_count"])
        topology = self.monitor.topology
        info.add_metric([topology.name, str(topology.chip_count), str(topology.cores_per_chip)], 1)
        yield info


def _serve(collector: ReportCollector, port: int) -> Any:
    """Serve ``collector`` on 127.0.0.1:``port``; returns the server (to shut down)."""
    from prometheus_client import CollectorRegistry, start_http_server

    from ncrt.errors import NcrtError, NrtStatus

    registry = CollectorRegistry(auto_describe=True)
    registry.register(collector)
    try:
        served = start_http_server(port, addr="127.0.0.1", registry=registry)
    except OSError as error:
        raise NcrtError(f"--prometheus {port}: cannot serve on 127.0.0.1:{port} ({error.strerror or error}); "
                        "the port is taken: choose another one, or stop the program using it",
                        status=NrtStatus.RESOURCE) from None
    return served[0] if isinstance(served, tuple) else served


def _check_args(args: argparse.Namespace) -> None:
    if args.period <= 0:
        raise BadInputError(f"--period {args.period} is not valid; accepted: a number of seconds > 0")
    if args.prometheus is not None and not 0 <= args.prometheus <= 65535:
        raise BadInputError(f"--prometheus {args.prometheus} is not valid; accepted: a TCP port 0-65535")


def run(args: argparse.Namespace) -> int:
    """Print a report every period (``--count`` of them, or until interrupted)."""
    _check_args(args)
    topology, state_dir = survey_target(args)
    monitor = Monitor(topology, state_dir, args.period)
    collector = ReportCollector(monitor)
    server = _serve(collector, args.prometheus) if args.prometheus is not None else None
    emitted, next_at = 0, time.monotonic()
    try:
        while args.count is None or emitted < args.count:
            next_at += args.period
            time.sleep(max(0.0, next_at - time.monotonic()))
            with collector.lock:
                report = monitor.report()
            if not args.quiet:
                print(json.dumps(report), flush=True)
            emitted += 1
    except (KeyboardInterrupt, BrokenPipeError):
        pass
    finally:
        if server is not None:
            server.shutdown()
    return 0


@hookimpl
def ncrt_add_commands(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("monitor", help="neuron-monitor style JSON reports (and Prometheus metrics)")
    parser.add_argument("--period", type=positive_seconds, default=1.0, help="seconds between reports (default 1)")
    parser.add_argument("--count", type=int, default=None, help="stop after this many reports")
    parser.add_argument("--prometheus", type=int, metavar="PORT", default=None,
                        help="also serve Prometheus metrics on 127.0.0.1:PORT/metrics")
    parser.add_argument("--quiet", action="store_true", help="no JSON lines (with --prometheus)")
    add_survey_arguments(parser)
    parser.set_defaults(func=run)
