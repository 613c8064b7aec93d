"""Fuzzed configuration: every value of every variable is accepted sensibly or refused cleanly.

Any text given to one of the ten runtime variables either parses or raises ConfigError
(never another exception); keywords are compared as ASCII only; limits as large as
INT_MAX cost O(1) memory and start-up time.
"""

from __future__ import annotations

import time
import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ncrt
from ncrt.config import INT_MAX, LOG_LEVELS, parse_config
from ncrt.errors import ConfigError

VARIABLES = [
    "NEURON_RT_VISIBLE_CORES", "NEURON_RT_NUM_CORES", "NEURON_RT_LOG_LEVEL", "NEURON_RT_LOG_LOCATION",
    "NEURON_RT_EXEC_TIMEOUT", "NEURON_RT_VALIDATE_HASH", "NEURON_RT_MULTI_INSTANCE_SHARED_WEIGHTS",
    "NEURON_RT_ASYNC_EXEC_MAX_INFLIGHT_REQUESTS", "NEURON_RT_ALLOW_LEGACY_NEFF", "NEURON_MAX_NUM_INFERS",
]

EDGE_VALUES = [
    "0", "1", "-1", "2147483647", "2147483648", "99999999999999999999", "1e9", "0x10", "1.5", ".5", "5.",
    "nan", "inf", "-inf", " 3 ", "3-", "-3", "3--5", "5-3", "0-2147483647", "1,,2", ",", "٣", "３", "²",
    "ınfo", "İNFO", "\u212aelvin", "ｔｒｕｅ", "TRUE", "True", "yes", "", "   ", "\t", "\x00", "console\x00",
    "é" * 10_000, "9" * 10_000,
]

LOOKALIKES = {
    "NEURON_RT_LOG_LEVEL": ["ınfo", "İnfo", "\u0130NFO", "ｉｎｆｏ", "erro\u0280"],
    "NEURON_RT_VALIDATE_HASH": ["ｔｒｕｅ", "tru\u0435", "\u0442rue"],
    "NCRT_QUEUE_FULL": ["bloc\u212a", "\u212block"],
    "NCRT_LEGACY_NCG": ["\u212aarn", "warn\u0131"],
}


def parses_or_refuses(name: str, value: str) -> ncrt.Config | None:
    try:
        return parse_config({name: value})
    except ConfigError as error:
        assert error.variable == name and name in str(error)
        return None


@pytest.mark.parametrize("name", VARIABLES)
@pytest.mark.parametrize("value", EDGE_VALUES, ids=lambda value: repr(value)[:24])
def test_edge_values_parse_or_fail_cleanly(name, value):
    config = parses_or_refuses(name, value)
    if config is not None and name == "NEURON_RT_LOG_LEVEL" and value.strip():
        assert config.log_level in LOG_LEVELS and value.isascii()


@settings(max_examples=300, deadline=None)
@given(name=st.sampled_from(VARIABLES), value=st.text(max_size=40))
def test_fuzzed_values_parse_or_fail_cleanly(name, value):
    parses_or_refuses(name, value)


@pytest.mark.parametrize("name,value", [(name, value) for name, values in LOOKALIKES.items() for value in values])
def test_keywords_are_ascii_only(name, value):
    with pytest.raises(ConfigError):
        parse_config({name: value})


@pytest.mark.parametrize("name", ["NEURON_MAX_NUM_INFERS", "NEURON_RT_ASYNC_EXEC_MAX_INFLIGHT_REQUESTS"])
def test_the_largest_limit_costs_constant_memory_and_time(runtime_env, name):
    tracemalloc.start()
    started = time.monotonic()
    try:
        runtime = runtime_env(**{name: str(INT_MAX)})
        model = runtime.load(lambda x: x + 1)
        assert [model.submit((i,)).result() for i in range(50)] == list(range(1, 51))
        assert model(1) == 2
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.monotonic() - started < 5 and peak < 20 * 2**20, (time.monotonic() - started, peak)


def test_a_huge_limit_still_limits(runtime_env):
    from ncrt.runtime import Tokens

    tokens = Tokens(INT_MAX)
    taken = sum(tokens.take(block=False) for _ in range(2 * Tokens.QUEUED + 10))
    for _ in range(taken):
        tokens.give()
    assert taken == 2 * Tokens.QUEUED + 10 and tokens._queue.qsize() <= Tokens.QUEUED
    small = Tokens(3)
    assert [small.take(block=False) for _ in range(4)] == [True, True, True, False]
    small.give()
    assert small.take(block=False) and not small.take(block=False)
