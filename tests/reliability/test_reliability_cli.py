"""The tool commands on bad arguments and missing extras: one clear line, never a traceback."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from ncrt.cli import main as ncrt_main


@pytest.mark.parametrize("argv", [
    ["monitor", "--period", "nan"], ["monitor", "--period", "inf"], ["monitor", "--period", "-0"],
    ["top", "--once", "--interval", "nan"], ["top", "--once", "--interval", "inf"],
    ["bench", "x:y", "--duration", "nan"], ["bench", "x:y", "--latency-budget-ms", "inf"],
])
def test_periods_must_be_finite_and_positive(argv, capsys):
    with pytest.raises(SystemExit) as info:
        ncrt_main(argv)
    assert info.value.code == 2
    assert "is not valid; accepted: a finite number of" in capsys.readouterr().err


def test_a_taken_prometheus_port_is_named(capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert ncrt_main(["monitor", "--prometheus", str(port), "--count", "1", "--period", "0.05"]) == 1
    error = capsys.readouterr().err
    assert f"--prometheus {port}: cannot serve on 127.0.0.1:{port}" in error and "the port is taken" in error
    assert "[NRT_RESOURCE]" in error


@pytest.mark.slow
@pytest.mark.parametrize("command,module", [
    (["top", "--once"], "rich"), (["monitor", "--count", "1", "--period", "0.05"], "psutil"),
    (["monitor", "--count", "1", "--prometheus", "0", "--quiet"], "prometheus_client"),
])
def test_a_missing_extra_names_what_to_install(python_env, command, module):
    script = (f"import sys; sys.modules[{module!r}] = None\n"
              f"from ncrt.cli import main; sys.exit(main({command!r}))")
    result = subprocess.run([sys.executable, "-c", script], env=python_env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert f"ncrt {command[0]} needs {module}, which is not installed; install it with: " \
           "pip install 'ncrt[tools]'" in result.stderr
