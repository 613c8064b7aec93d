"""Tests of ncrt.logs: per-component levels and locations, the runtime's line format."""

from __future__ import annotations

import logging
import logging.handlers
import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from ncrt import logs
from ncrt.config import parse_config
from ncrt.errors import ConfigError
from ncrt.logs import COMPONENTS, QUIET, TRACE, RuntimeFormatter, configure_logging, get_logger, reset_logging

LINE = re.compile(
    r"^(?P<date>\d{4}-[A-Z][a-z]{2}-\d{2}) (?P<time>\d{2}:\d{2}:\d{2}\.\d{4}) "
    r"(?P<pid>\d+):(?P<tid>\d+) (?P<level>[A-Z]+) (?P<component>[A-Z]+):(?P<function>\w+) (?P<message>.*)$"
)


@pytest.fixture(autouse=True)
def clean_loggers() -> Iterator[None]:
    """Every test starts and ends with bare component loggers."""
    reset_logging()
    logs._syslog_warned.clear()
    yield
    reset_logging()
    logs._syslog_warned.clear()


def configure(**environ: str) -> None:
    configure_logging(parse_config(environ))


def lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def emit_all(level: int, text: str = "hello") -> None:
    for component in COMPONENTS:
        get_logger(component).log(level, "%s from %s", text, component)


def test_get_logger_names_and_validation() -> None:
    assert COMPONENTS == ("NRT", "NMGR", "TDRV")
    assert get_logger("NRT").name == "ncrt.NRT"
    assert get_logger("tdrv") is logging.getLogger("ncrt.TDRV")
    with pytest.raises(ValueError, match="KMGR"):
        get_logger("KMGR")


def test_trace_is_a_named_level_below_debug() -> None:
    assert TRACE == 5 < logging.DEBUG
    assert logging.getLevelName(TRACE) == "TRACE"
    assert QUIET > logging.CRITICAL


def test_default_is_error_on_the_console(capfd: pytest.CaptureFixture[str]) -> None:
    configure()
    for component in COMPONENTS:
        logger = get_logger(component)
        assert logger.level == logging.ERROR
        assert logger.propagate is False
    emit_all(logging.WARNING, "hidden")
    emit_all(logging.ERROR, "shown")
    captured = capfd.readouterr()
    assert captured.out == ""
    err = captured.err.splitlines()
    assert len(err) == 3
    assert all(LINE.match(line) for line in err)
    assert "hidden" not in captured.err


def test_console_follows_a_replaced_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    configure(NEURON_RT_LOG_LEVEL="INFO")
    get_logger("NRT").info("to capsys")
    assert "INFO NRT:test_console_follows_a_replaced_stderr to capsys" in capsys.readouterr().err


def test_file_location_uses_the_runtime_format(tmp_path: Path) -> None:
    path = tmp_path / "rt.log"

    def exec_consume_infer_status_notifications() -> None:
        get_logger("TDRV").error("inference timeout (%d ms) on Neuron Device 0 NC 0", 600000)

    configure(NEURON_RT_LOG_LOCATION=str(path))
    exec_consume_infer_status_notifications()
    (line,) = lines(path)
    match = LINE.match(line)
    assert match, line
    assert match["level"] == "ERROR" and match["component"] == "TDRV"
    assert match["function"] == "exec_consume_infer_status_notifications"
    assert match["message"] == "inference timeout (600000 ms) on Neuron Device 0 NC 0"
    assert int(match["pid"]) == os.getpid()
    assert int(match["tid"]) == threading.get_native_id()


def test_formatter_date_and_fraction() -> None:
    record = logging.LogRecord("ncrt.NMGR", logging.ERROR, __file__, 1, "x", (), None, func="dlr_infer")
    record.created = 1673296061.0593
    record.msecs = 59.3
    text = RuntimeFormatter().format(record)
    assert re.match(r"^2023-Jan-(09|10) \d\d:\d\d:41\.0593 \d+:\d+ ERROR NMGR:dlr_infer x$", text), text


def test_formatter_keeps_tracebacks() -> None:
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        import sys

        record = logging.LogRecord("ncrt.NRT", logging.ERROR, __file__, 1, "failed", (), sys.exc_info(), func="f")
    text = RuntimeFormatter().format(record)
    assert "NRT:f failed\nTraceback" in text and "RuntimeError: boom" in text


def test_global_level_applies_to_every_component(tmp_path: Path) -> None:
    path = tmp_path / "all.log"
    configure(NEURON_RT_LOG_LEVEL="DEBUG", NEURON_RT_LOG_LOCATION=str(path))
    emit_all(logging.DEBUG)
    emit_all(TRACE, "too verbose")
    found = [LINE.match(line) for line in lines(path)]
    assert [(m["level"], m["component"]) for m in found if m] == [("DEBUG", c) for c in COMPONENTS]


def test_component_levels_override_the_global_one(tmp_path: Path) -> None:
    path = tmp_path / "mixed.log"
    configure(
        NEURON_RT_LOG_LEVEL="WARN",
        NEURON_RT_LOG_LEVEL_TDRV="TRACE",
        NEURON_RT_LOG_LEVEL_NMGR="ERROR",
        NEURON_RT_LOG_LOCATION=str(path),
    )
    assert get_logger("TDRV").level == TRACE
    assert get_logger("NMGR").level == logging.ERROR
    assert get_logger("NRT").level == logging.WARNING
    emit_all(TRACE, "trace")
    emit_all(logging.WARNING, "warn")
    text = path.read_text()
    assert "TRACE TDRV:" in text and "WARNING TDRV:" in text
    assert "WARNING NRT:" in text and "TRACE NRT:" not in text
    assert "NMGR" not in text


def test_quiet_disables_a_component(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "q.log"
    configure(NEURON_RT_LOG_LEVEL_NRT="QUIET", NEURON_RT_LOG_LOCATION=str(path))
    emit_all(logging.CRITICAL, "critical")
    text = path.read_text()
    assert "TDRV:" in text and "NMGR:" in text and "NRT:" not in text
    assert get_logger("NRT").handlers == []
    assert capfd.readouterr().err == ""


def test_quiet_globally_silences_the_console(capfd: pytest.CaptureFixture[str]) -> None:
    configure(NEURON_RT_LOG_LOCATION="console", NEURON_RT_LOG_LEVEL="QUIET")
    emit_all(logging.CRITICAL, "nothing")
    assert capfd.readouterr().err == ""


def test_component_locations_go_to_separate_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    shared = tmp_path / "rest.log"
    configure(
        NEURON_RT_LOG_LOCATION=str(shared),
        NEURON_RT_LOG_LOCATION_TDRV="tdrv.log",
        NEURON_RT_LOG_LOCATION_NMGR="nmgr.log",
    )
    emit_all(logging.ERROR)
    assert [LINE.match(line)["component"] for line in lines(tmp_path / "tdrv.log")] == ["TDRV"]
    assert [LINE.match(line)["component"] for line in lines(tmp_path / "nmgr.log")] == ["NMGR"]
    assert [LINE.match(line)["component"] for line in lines(shared)] == ["NRT"]


def test_file_location_appends(tmp_path: Path) -> None:
    path = tmp_path / "append.log"
    path.write_text("earlier line\n")
    configure(NEURON_RT_LOG_LOCATION=str(path))
    get_logger("NRT").error("later")
    assert lines(path)[0] == "earlier line" and lines(path)[1].endswith("later")


def test_unopenable_file_is_a_config_error(tmp_path: Path) -> None:
    bad = tmp_path / "missing-dir" / "x.log"
    with pytest.raises(ConfigError) as caught:
        configure(NEURON_RT_LOG_LOCATION_NMGR=str(bad))
    assert caught.value.variable == "NEURON_RT_LOG_LOCATION_NMGR"
    assert str(bad) in str(caught.value)


def test_reconfiguring_replaces_only_its_own_handlers(tmp_path: Path) -> None:
    foreign = logging.NullHandler()
    get_logger("NRT").addHandler(foreign)
    try:
        first, second = tmp_path / "first.log", tmp_path / "second.log"
        configure(NEURON_RT_LOG_LOCATION=str(first))
        configure(NEURON_RT_LOG_LOCATION=str(second))
        configure(NEURON_RT_LOG_LOCATION=str(second))
        for component in COMPONENTS:
            ours = [h for h in get_logger(component).handlers if h is not foreign]
            assert len(ours) == 1
        assert foreign in get_logger("NRT").handlers
        get_logger("NRT").error("once")
        assert first.read_text() == ""
        assert len(lines(second)) == 1
    finally:
        get_logger("NRT").removeHandler(foreign)


def test_reset_logging_restores_propagation() -> None:
    configure()
    reset_logging()
    for component in COMPONENTS:
        logger = get_logger(component)
        assert logger.propagate is True and logger.level == logging.NOTSET and logger.handlers == []


def test_no_root_handlers_are_added() -> None:
    before = list(logging.getLogger().handlers)
    configure(NEURON_RT_LOG_LEVEL="DEBUG")
    assert logging.getLogger().handlers == before


def test_syslog_falls_back_to_console_with_one_warning(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(logs, "SYSLOG_ADDRESS", str(tmp_path / "no-such-socket"))
    configure(NEURON_RT_LOG_LOCATION="syslog")
    configure(NEURON_RT_LOG_LOCATION="syslog")
    get_logger("TDRV").error("still logged")
    err = capfd.readouterr().err
    assert err.count("syslog is not available") == len(COMPONENTS)
    assert "ERROR TDRV:" in err and "still logged" in err
    for component in COMPONENTS:
        (handler,) = get_logger(component).handlers
        assert not isinstance(handler, logging.handlers.SysLogHandler)


def test_syslog_socket_that_refuses_falls_back(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    not_a_socket = tmp_path / "log"
    not_a_socket.write_text("")
    monkeypatch.setattr(logs, "SYSLOG_ADDRESS", str(not_a_socket))
    configure(NEURON_RT_LOG_LOCATION_NRT="syslog", NEURON_RT_LOG_LEVEL_NRT="QUIET")
    configure(NEURON_RT_LOG_LOCATION_NMGR="syslog")
    assert "syslog is not available" in capfd.readouterr().err


def test_syslog_location_sends_to_the_socket(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import socket

    address = str(tmp_path / "log")
    if len(address) > 100:
        pytest.skip("temporary path too long for a unix socket")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(address)
    server.settimeout(1)
    try:
        monkeypatch.setattr(logs, "SYSLOG_ADDRESS", address)
        configure(NEURON_RT_LOG_LOCATION_NMGR="syslog")
        (handler,) = get_logger("NMGR").handlers
        assert isinstance(handler, logging.handlers.SysLogHandler)
        get_logger("NMGR").error("to syslog")
        packet = server.recv(4096).decode()
        assert "ERROR NMGR:test_syslog_location_sends_to_the_socket to syslog" in packet
    finally:
        reset_logging()
        server.close()


def test_thread_id_is_the_emitting_threads(tmp_path: Path) -> None:
    path = tmp_path / "threads.log"
    configure(NEURON_RT_LOG_LOCATION=str(path))
    native: list[int] = []

    def worker() -> None:
        native.append(threading.get_native_id())
        get_logger("NRT").error("from worker")

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    (line,) = lines(path)
    assert int(LINE.match(line)["tid"]) == native[0] != threading.get_native_id()
