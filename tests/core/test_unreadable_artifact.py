"""ncrt.errors.unreadable_artifact: a framework loader's raw error becomes a ModelLoadError."""

from __future__ import annotations

import pytest

from ncrt.errors import BadInputError, ModelLoadError, NrtStatus, unreadable_artifact


class FrameworkError(Exception):
    pass


def test_a_raw_loader_error_becomes_a_model_load_error_naming_the_file():
    with pytest.raises(ModelLoadError) as raised:
        with unreadable_artifact("the archive /m/x.pt", (FrameworkError,), "save it again"):
            raise FrameworkError("invalid header\nmore detail")
    message = str(raised.value)
    assert "/m/x.pt" in message and "FrameworkError: invalid header" in message and "save it again" in message
    assert "more detail" not in message
    assert raised.value.status is NrtStatus.INVALID
    assert isinstance(raised.value.__cause__, FrameworkError)


def test_a_traceback_shaped_message_gives_its_last_line():
    with pytest.raises(ModelLoadError, match=r"\(FrameworkError: Check failed: magic\)"):
        with unreadable_artifact("f", (FrameworkError,), "fix"):
            raise FrameworkError("Traceback (most recent call last):\n  File x\nFrameworkError: Check failed: magic")


def test_ncrt_errors_and_unlisted_exceptions_pass_unchanged():
    with pytest.raises(BadInputError):
        with unreadable_artifact("f", (ValueError,), "fix"):  # BadInputError is a ValueError
            raise BadInputError("bad")
    with pytest.raises(ZeroDivisionError):
        with unreadable_artifact("f", (FrameworkError,), "fix"):
            1 / 0
