"""Garbage in the state directory: every tool keeps working, every bad record is named once.

A live process holds cores and its record (``procs/<pid>.json``) is replaced by garbage:
wrong JSON shapes, wrong types, 100,000-deep nesting, 2 MiB of data, bytes that are not
UTF-8, a FIFO, a link to ``/dev/zero``, a directory. ``ncrt ls``, ``ls --json``, ``top
--once`` and ``monitor`` must all still run, show the holder (from its locks), and warn
once naming the record. Planted links and directories where ncrt keeps its own folders
and lock files are refused with a clear StateDirError, never followed. Then records
mutated at random (hypothesis) must never crash a reader or a tool.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ncrt
from ncrt.cli import main as ncrt_main
from ncrt.errors import StateDirError
from ncrt.records import read_records
from ncrt.statefiles import StateRecordWarning
from ncrt.topology import build_topology

APP = Path(__file__).resolve().parents[1] / "core" / "app.py"
INSTANCE = "inf1.xlarge"


@pytest.fixture(scope="module")
def holder(tmp_path_factory):
    """A process holding 2 cores of inf1.xlarge in its own state dir (no stats publisher,
    so nothing rewrites its record behind the test's back)."""
    state_dir = tmp_path_factory.mktemp("planted_state")
    env = {**os.environ, "NCRT_STATE_DIR": str(state_dir), "NCRT_INSTANCE_TYPE": INSTANCE,
           "NEURON_RT_NUM_CORES": "2", "NCRT_DISABLE_PLUGINS": "stats"}
    process = subprocess.Popen([sys.executable, str(APP), "resnet:1"], env=env, stdout=subprocess.PIPE, text=True)
    line = process.stdout.readline()
    assert line.startswith("READY"), line
    yield process.pid, state_dir, [int(core) for core in line.split()[1].split(",")]
    process.kill()
    process.wait(10)


def plant(path: Path, content: bytes | None, kind: str = "file") -> None:
    """Replace ``path`` by ``content`` (a file), a FIFO, a link to /dev/zero or a directory."""
    if path.is_dir() and not path.is_symlink():
        path.rmdir()
    elif os.path.lexists(path):
        path.unlink()
    if kind == "fifo":
        os.mkfifo(path, 0o600)
    elif kind == "link":
        path.symlink_to("/dev/zero")
    elif kind == "dir":
        path.mkdir()
    else:
        path.write_bytes(content)


def tool_runs(state_dir: Path, capsys) -> dict[str, str]:
    """Run ls, ls --json, top --once and monitor in this process; their stdout by name."""
    survey = ["--state-dir", str(state_dir), "--instance-type", INSTANCE]
    outputs = {}
    for name, argv in {"ls": ["ls", *survey], "ls --json": ["ls", "--json", *survey],
                       "top": ["top", "--once", "--width", "160", *survey],
                       "monitor": ["monitor", "--count", "1", "--period", "0.05", *survey]}.items():
        assert ncrt_main(argv) == 0, name
        outputs[name] = capsys.readouterr().out
    return outputs


def record_of(pid: int, **changes) -> dict:
    record = {"pid": pid, "topology": "inf1.xlarge", "command": "app", "time": 1.0, "models": [],
              "cores": [{"index": 0, "global_index": 0, "models": ["resnet"], "executions": 1}]}
    record.update(changes)
    return record


PLANTED = {
    "a JSON list": (b"[1, 2, 3]", "file", "the record is a list, not an object"),
    "a JSON string": (b'"hello"', "file", "the record is a string, not an object"),
    "null": (b"null", "file", "the record is null, not an object"),
    "cores not a list": (None, "cores", "cores is 5; accepted: a list of core entries"),
    "a core without keys": (None, "core-keys", "cores[0] lacks 'index'"),
    "latencies of the wrong type": (None, "latency", "cores[0].latency is an object; accepted: null or an object"),
    "models of the wrong type": (None, "models", "models[0] is a string, not an object"),
    "nested 100,000 deep": (b"[" * 100_000 + b"]" * 100_000, "file", "nested too deeply"),
    "2 MiB of data": (b" " * (2 << 20) + b"{}", "file", "holds 2097154 bytes; the most ncrt reads is 1048576"),
    "not UTF-8": (b'{"pid": "\xff"}', "file", "is not UTF-8 text"),
    "NaN counters": (None, "nan", "cores[0].busy_seconds is NaN"),
    "another pid": (None, "pid", "the record names pid 1, not the pid"),
    "a FIFO": (None, "fifo", "is a FIFO, not a regular file"),
    "a link to /dev/zero": (None, "link", "is a symbolic link; ncrt never follows links"),
    "a directory": (None, "dir", "is a directory, not a regular file"),
}


def planted_content(pid: int, kind: str) -> tuple[bytes | None, str]:
    core = {"index": 0, "global_index": 0}
    records = {
        "cores": record_of(pid, cores=5),
        "core-keys": record_of(pid, cores=[{"global_index": 0}]),
        "latency": record_of(pid, cores=[{**core, "latency": {"p50": "fast"}}]),
        "models": record_of(pid, models=["resnet"]),
        "nan": record_of(pid, cores=[{**core, "busy_seconds": float("nan")}]),
        "pid": record_of(1),
    }
    if kind in records:
        return json.dumps(records[kind]).encode(), "file"
    return None, kind


@pytest.mark.timeout(60)
@pytest.mark.parametrize("case", list(PLANTED))
def test_every_tool_survives_a_bad_record_and_names_it_once(holder, capsys, case):
    pid, state_dir, cores = holder
    content, kind, reason = PLANTED[case]
    if content is None:
        content, kind = planted_content(pid, kind)
    path = state_dir / "procs" / f"{pid}.json"
    plant(path, content, kind)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        outputs = tool_runs(state_dir, capsys)
    named = [w for w in caught if issubclass(w.category, StateRecordWarning)]
    assert len(named) == 1, [str(w.message) for w in caught]
    assert str(path) in str(named[0].message) and reason in str(named[0].message), str(named[0].message)
    rows = json.loads(outputs["ls --json"])["cores"]
    assert [row["pid"] for row in rows if row["index"] in cores] == [pid] * len(cores)  # seen through its locks
    assert f"{pid}" in outputs["ls"] and f"{pid}" in outputs["top"]
    assert json.loads(outputs["monitor"])["neuron_runtime_data"] == []  # no sound record: no runtime entry


def test_a_sound_record_is_used_again_once_repaired(holder, capsys):
    pid, state_dir, cores = holder
    path = state_dir / "procs" / f"{pid}.json"
    plant(path, json.dumps(record_of(pid, cores=[{"index": 0, "global_index": cores[0], "models": ["fixed"]}])).encode())
    outputs = tool_runs(state_dir, capsys)
    assert "fixed" in outputs["ls"] and json.loads(outputs["monitor"])["neuron_runtime_data"][0]["pid"] == pid


PLANTED_PATHS = [(name, kind) for name in ("procs", "core-000.lock", "alloc.lock", "topology.json")
                 for kind in ("link", "dir", "fifo") if (name, kind) != ("procs", "dir")]


@pytest.mark.parametrize("name,kind", PLANTED_PATHS)
def test_planted_folders_and_lock_files_are_refused_never_followed(tmp_path, capsys, name, kind):
    state_dir = tmp_path / "state"
    state_dir.mkdir(mode=0o700)
    outside = tmp_path / "outside"
    outside.mkdir()
    target = state_dir / name
    if name == "procs" and kind == "link":
        target.symlink_to(outside)  # a directory outside the state dir
    else:
        plant(target, None, kind)
    environ = {"NCRT_STATE_DIR": str(state_dir), "NCRT_INSTANCE_TYPE": INSTANCE}
    with pytest.raises(StateDirError, match=f"{target}.*(symbolic link|directory|FIFO)"):
        ncrt.Runtime(environ)
    assert list(outside.iterdir()) == []  # nothing was written through the link
    assert ncrt_main(["ls", "--state-dir", str(state_dir), "--instance-type", INSTANCE]) in (0, 1)
    output = capsys.readouterr()
    assert "Traceback" not in output.err
    if name in ("procs", "core-000.lock"):
        assert str(target) in output.err and "[NRT_FAILURE]" in output.err


# --------------------------------------------------------------------------- fuzzed records

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-2**63, 2**63) | st.floats() | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=12,
)


def _paths(value, prefix=()):
    """Every path into a JSON value (dict keys and list indices)."""
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for position, item in enumerate(value):
            yield from _paths(item, (*prefix, position))


def _replace(value, path, new):
    if not path:
        return new
    value[path[0]] = _replace(value[path[0]], path[1:], new)
    return value


@pytest.fixture(scope="module")
def sound_record(tmp_path_factory):
    """A real record, as the stats publisher writes it, of a runtime with two models."""
    from ncrt.plugins.tools.stats import add_statistics
    from ncrt.records import build_record

    state_dir = tmp_path_factory.mktemp("record_state")
    runtime = ncrt.Runtime({"NCRT_INSTANCE_TYPE": INSTANCE, "NCRT_STATE_DIR": str(state_dir)})
    try:
        for name in ("a", "b"):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                runtime.load(lambda x: x, name=name, replicas=2)(1)
        record = build_record(runtime)
        add_statistics(record, runtime, [0.25] * len(runtime.cores))
        return record
    finally:
        runtime.close()


def render_everything(records: dict, topology) -> None:
    """What ls, top and monitor do with records: must not raise for any accepted record."""
    from rich.console import Console

    from ncrt.ls import _models_by_core, render
    from ncrt.plugins.tools.monitor import Monitor, ReportCollector, runtime_entry
    from ncrt.plugins.tools.stats import ProcessStats
    from ncrt.plugins.tools.top import Frame, Sampler, render_frame

    host = {"vcpu_count": 2, "vcpu_percent": 1.0, "memory_used_bytes": 1, "memory_total_bytes": 2,
            "swap_total_bytes": 0, "swap_used_bytes": 0, "vcpu_times": dict.fromkeys(
                ("user", "nice", "system", "idle", "iowait", "irq", "softirq"), 0.0)}
    for pid, record in records.items():
        by_core = _models_by_core(records, pid)
        rows = [{"index": c.index, "chip": c.chip, "cpus": list(c.cpus), "pid": pid, "command": "x",
                 "models": by_core.get(c.index, [])} for c in topology.cores]
        render(topology, rows)
        process = ProcessStats(pid, True, record)
        sampler = Sampler(topology, Path("."))
        utilization = dict(sampler._utilization(process))
        utilization.update(sampler._utilization(process))
        frame = Frame(topology, {core.index: pid for core in topology.cores}, [process], utilization, host)
        Console(file=io.StringIO(), width=160).print(render_frame(frame, 1))
        runtime_entry(process, process, 1.0)
        monitor = Monitor.__new__(Monitor)
        monitor.topology, monitor.processes, monitor.host = topology, [process], host
        list(ReportCollector(monitor).collect())


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzzed_records_never_crash_a_reader_or_a_tool(sound_record, tmp_path, data):
    record = json.loads(json.dumps(sound_record))
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(list(_paths(record))))
        record = _replace(record, path, data.draw(JSON_VALUES))
    procs = tmp_path / "state" / "procs"
    procs.mkdir(parents=True, exist_ok=True, mode=0o700)
    pid = sound_record["pid"]
    (procs / f"{pid}.json").write_text(json.dumps(record))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StateRecordWarning)
        records = read_records(tmp_path / "state")
    assert set(records) <= {pid}
    render_everything(records, build_topology(INSTANCE))
