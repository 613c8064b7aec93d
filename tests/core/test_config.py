"""Tests of ncrt.config: every variable, its errors, and the topology checks."""

from __future__ import annotations

import dataclasses
import warnings

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ncrt.config import (
    COMPONENTS,
    INT_MAX,
    MAX_CORE_SET_SIZE,
    VARIABLES,
    Config,
    check_against_topology,
    format_core_set,
    format_nc_range,
    parse_bool,
    parse_config,
    parse_core_set,
)
from ncrt.errors import ConfigError, NrtStatus

ALL_NAMES = [variable.name for variable in VARIABLES]
ACCEPTED = {variable.name: variable.accepted for variable in VARIABLES}


def rejects(name: str, value: str) -> ConfigError:
    """Parse ``name=value``, expect a ConfigError that names all three parts."""
    with pytest.raises(ConfigError) as caught:
        parse_config({name: value})
    error = caught.value
    message = str(error)
    assert error.variable == name
    assert name in message
    assert repr(value.strip()) in message
    assert ACCEPTED[name] in message
    return error


# --- the table and the defaults ----------------------------------------------------


def test_every_variable_is_documented_once() -> None:
    assert len(ALL_NAMES) == len(set(ALL_NAMES))
    for variable in VARIABLES:
        assert variable.description and variable.accepted and variable.default
    expected = {f"NEURON_RT_LOG_{kind}_{component}" for kind in ("LEVEL", "LOCATION") for component in COMPONENTS}
    assert expected <= set(ALL_NAMES)
    assert {"NEURON_MAX_NUM_INFERS", "NEURONCORE_GROUP_SIZES", "NCRT_STRICT"} <= set(ALL_NAMES)


def test_variable_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        VARIABLES[0].name = "X"  # type: ignore[misc]


def test_empty_environment_gives_the_defaults() -> None:
    config = parse_config({})
    assert config == Config()
    assert config.visible_cores is None
    assert config.num_cores == 0
    assert config.log_level == "ERROR"
    assert config.log_location == "console"
    assert config.component_log_levels == {} and config.component_log_locations == {}
    assert config.exec_timeout == 30.0
    assert config.validate_hash is False
    assert config.multi_instance_shared_weights is False
    assert config.async_exec_max_inflight_requests == 0
    assert config.allow_legacy_neff is False
    assert config.max_num_infers is None
    assert config.instance_type is None and config.state_dir is None
    assert config.strict is False
    assert config.queue_full == "block"
    assert config.disabled_plugins == ()
    assert config.settings == {}
    assert config.setting("NCRT_LEGACY_NCG") == "warn"  # a plugin's variable: its default


@pytest.mark.parametrize("name", ALL_NAMES)
def test_blank_value_is_unset(name: str) -> None:
    assert parse_config({name: ""}) == Config()
    assert parse_config({name: "  "}) == Config()


def test_default_reads_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEURON_RT_NUM_CORES", "2")
    assert parse_config().num_cores == 2


def test_config_is_mutable_and_settings_are_per_instance() -> None:
    first, second = Config(), Config()
    first.settings["NCRT_LEGACY_NCG"] = "error"
    first.num_cores = 4
    assert second.settings == {} and second.num_cores == 0


def test_unrelated_variables_are_ignored() -> None:
    assert parse_config({"PATH": "/bin", "NEURON_RT_UNKNOWN": "x"}) == Config()


# --- NEURON_RT_VISIBLE_CORES -------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "cores"),
    [
        ("3", (3,)),
        ("0", (0,)),
        ("0-2", (0, 1, 2)),
        ("3-5,6", (3, 4, 5, 6)),
        ("1,3", (1, 3)),
        (" 1 , 3 ", (1, 3)),
        ("3 - 5", (3, 4, 5)),
        ("6,3-5,4", (3, 4, 5, 6)),
        ("2,2,2", (2,)),
        ("4-4", (4,)),
        ("007", (7,)),
        (str(INT_MAX), (INT_MAX,)),
    ],
)
def test_visible_cores_valid(text: str, cores: tuple[int, ...]) -> None:
    assert parse_config({"NEURON_RT_VISIBLE_CORES": text}).visible_cores == cores


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("5-2", "range end 2 is before start 5"),
        ("abc", "not a non-negative decimal integer"),
        ("-1", "negative"),
        ("1-", "without both ends"),
        (",", "empty item"),
        ("1,,2", "empty item"),
        ("0x3", "not a non-negative decimal integer"),
        ("1.5", "not a non-negative decimal integer"),
        ("1-2-3", "not a non-negative decimal integer"),
        ("\u0663", "not a non-negative decimal integer"),  # Arabic-Indic 3: ASCII digits only
        (str(INT_MAX + 1), "larger than 2147483647"),
        ("9" * 5000, "larger than 2147483647"),
        (f"0-{MAX_CORE_SET_SIZE}", f"more than {MAX_CORE_SET_SIZE} cores"),
    ],
)
def test_visible_cores_invalid(text: str, reason: str) -> None:
    error = rejects("NEURON_RT_VISIBLE_CORES", text)
    assert reason in str(error)
    assert error.value == text


def test_config_error_is_a_value_error_with_status() -> None:
    error = rejects("NEURON_RT_VISIBLE_CORES", "5-2")
    assert isinstance(error, ValueError)
    assert error.status == NrtStatus.INVALID


def test_parse_core_set_names_the_given_variable() -> None:
    with pytest.raises(ConfigError, match="MY_CORES='x'"):
        parse_core_set("x", "MY_CORES")


# --- integers ----------------------------------------------------------------------


@pytest.mark.parametrize("text", ["0", "1", "16", " 4 ", str(INT_MAX)])
def test_num_cores_valid(text: str) -> None:
    assert parse_config({"NEURON_RT_NUM_CORES": text}).num_cores == int(text)


@pytest.mark.parametrize("text", ["abc", "-1", "1.5", "0x3", "1e3", "+3", str(INT_MAX + 1), "1" * 5000])
def test_num_cores_invalid(text: str) -> None:
    rejects("NEURON_RT_NUM_CORES", text)


@pytest.mark.parametrize("text", ["0", "3", str(INT_MAX)])
def test_async_inflight_valid(text: str) -> None:
    assert parse_config({"NEURON_RT_ASYNC_EXEC_MAX_INFLIGHT_REQUESTS": text}).async_exec_max_inflight_requests == int(
        text
    )


@pytest.mark.parametrize("text", ["-1", "x", "3.0", str(INT_MAX + 1)])
def test_async_inflight_invalid(text: str) -> None:
    rejects("NEURON_RT_ASYNC_EXEC_MAX_INFLIGHT_REQUESTS", text)


@pytest.mark.parametrize("text", ["1", "7", "64"])
def test_max_num_infers_valid(text: str) -> None:
    assert parse_config({"NEURON_MAX_NUM_INFERS": text}).max_num_infers == int(text)


@pytest.mark.parametrize("text", ["0", "-2", "four", "2.5"])
def test_max_num_infers_invalid(text: str) -> None:
    rejects("NEURON_MAX_NUM_INFERS", text)


def test_max_inflight_is_cores_plus_three_unless_set() -> None:
    assert Config().max_inflight(4) == 7
    assert Config().max_inflight(0) == 3
    assert parse_config({"NEURON_MAX_NUM_INFERS": "2"}).max_inflight(16) == 2


# --- NEURON_RT_EXEC_TIMEOUT --------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"), [("30", 30.0), ("0", 0.0), ("5", 5.0), ("0.5", 0.5), (".25", 0.25), ("2.", 2.0)]
)
def test_exec_timeout_valid(text: str, seconds: float) -> None:
    assert parse_config({"NEURON_RT_EXEC_TIMEOUT": text}).exec_timeout == seconds


@pytest.mark.parametrize("text", ["-1", "abc", "inf", "nan", "1e3", "0x10", ".", "1.2.3", str(INT_MAX + 1), "9" * 5000])
def test_exec_timeout_invalid(text: str) -> None:
    rejects("NEURON_RT_EXEC_TIMEOUT", text)


# --- booleans ----------------------------------------------------------------------

BOOLEANS = [
    ("NEURON_RT_VALIDATE_HASH", "validate_hash"),
    ("NEURON_RT_MULTI_INSTANCE_SHARED_WEIGHTS", "multi_instance_shared_weights"),
    ("NEURON_RT_ALLOW_LEGACY_NEFF", "allow_legacy_neff"),
    ("NCRT_STRICT", "strict"),
]


@pytest.mark.parametrize(("name", "attribute"), BOOLEANS)
@pytest.mark.parametrize(
    ("text", "value"),
    [("true", True), ("TRUE", True), ("True", True), ("1", True), (" true ", True),
     ("false", False), ("FALSE", False), ("0", False), ("False\n", False)],
)
def test_booleans_valid(name: str, attribute: str, text: str, value: bool) -> None:
    assert getattr(parse_config({name: text}), attribute) is value


@pytest.mark.parametrize(("name", "attribute"), BOOLEANS)
@pytest.mark.parametrize("text", ["yes", "no", "2", "on", "t", "truee", "-1"])
def test_booleans_invalid(name: str, attribute: str, text: str) -> None:
    rejects(name, text)


def test_parse_bool_direct() -> None:
    assert parse_bool("X", " TrUe ") is True
    with pytest.raises(ConfigError, match="X='maybe'"):
        parse_bool("X", "maybe")


# --- logging variables -------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "level"),
    [("ERROR", "ERROR"), ("warning", "WARNING"), ("WARN", "WARNING"), ("warn", "WARNING"), ("Info", "INFO"),
     ("debug", "DEBUG"), ("TRACE", "TRACE"), ("quiet", "QUIET")],
)
def test_log_level_valid(text: str, level: str) -> None:
    assert parse_config({"NEURON_RT_LOG_LEVEL": text}).log_level == level


@pytest.mark.parametrize("text", ["VERBOSE", "5", "ERR", "fatal"])
def test_log_level_invalid(text: str) -> None:
    rejects("NEURON_RT_LOG_LEVEL", text)


@pytest.mark.parametrize(("text", "location"), [("console", "console"), ("SYSLOG", "syslog"), ("tdrv.log", "tdrv.log"),
                                                ("/tmp/x/Console", "/tmp/x/Console")])
def test_log_location_valid(text: str, location: str) -> None:
    assert parse_config({"NEURON_RT_LOG_LOCATION": text}).log_location == location


def test_log_location_rejects_nul() -> None:
    rejects("NEURON_RT_LOG_LOCATION", "a\0b")


def test_component_levels_and_locations_only_those_set() -> None:
    config = parse_config(
        {
            "NEURON_RT_LOG_LEVEL": "info",
            "NEURON_RT_LOG_LEVEL_TDRV": "debug",
            "NEURON_RT_LOG_LEVEL_NMGR": "warn",
            "NEURON_RT_LOG_LOCATION_TDRV": "tdrv.log",
            "NEURON_RT_LOG_LOCATION_NMGR": "nmgr.log",
        }
    )
    assert config.log_level == "INFO"
    assert config.component_log_levels == {"TDRV": "DEBUG", "NMGR": "WARNING"}
    assert config.component_log_locations == {"TDRV": "tdrv.log", "NMGR": "nmgr.log"}


@pytest.mark.parametrize("component", COMPONENTS)
def test_component_level_invalid(component: str) -> None:
    rejects(f"NEURON_RT_LOG_LEVEL_{component}", "LOUD")


# --- raw and ncrt variables --------------------------------------------------------


def test_raw_strings_are_kept() -> None:
    config = parse_config(
        {
            "NEURONCORE_GROUP_SIZES": "2,4,3,4",
            "NCRT_INSTANCE_TYPE": "inf1.6xlarge",
            "NCRT_STATE_DIR": "/tmp/ncrt-state",
        }
    )
    assert config.setting("NEURONCORE_GROUP_SIZES") == "2,4,3,4"  # the ncg plugin's variable
    assert config.instance_type == "inf1.6xlarge"
    assert config.state_dir == "/tmp/ncrt-state"


@pytest.mark.parametrize(("text", "value"), [("block", "block"), ("ERROR", "error"), (" Error ", "error")])
def test_queue_full_valid(text: str, value: str) -> None:
    assert parse_config({"NCRT_QUEUE_FULL": text}).queue_full == value


@pytest.mark.parametrize("text", ["drop", "1", "blocking"])
def test_queue_full_invalid(text: str) -> None:
    rejects("NCRT_QUEUE_FULL", text)


@pytest.mark.parametrize(("text", "value"), [("warn", "warn"), ("Error", "error")])
def test_legacy_ncg_valid(text: str, value: str) -> None:
    assert parse_config({"NCRT_LEGACY_NCG": text}).setting("NCRT_LEGACY_NCG") == value


@pytest.mark.parametrize("text", ["ignore", "true"])
def test_legacy_ncg_invalid(text: str) -> None:
    rejects("NCRT_LEGACY_NCG", text)


@pytest.mark.parametrize(
    ("text", "names"), [("torch", ("torch",)), ("torch, ncg", ("torch", "ncg")), ("a,,b,a,", ("a", "b")), (",", ())]
)
def test_disabled_plugins(text: str, names: tuple[str, ...]) -> None:
    assert parse_config({"NCRT_DISABLE_PLUGINS": text}).disabled_plugins == names


def test_state_dir_rejects_nul() -> None:
    rejects("NCRT_STATE_DIR", "/tmp/\0x")


# --- properties --------------------------------------------------------------------

core_sets = st.lists(st.integers(0, INT_MAX), min_size=1, max_size=40) | st.lists(
    st.integers(0, 200), min_size=1, max_size=80
)


@settings(max_examples=200, deadline=None)
@given(core_sets)
def test_format_core_set_round_trips(cores: list[int]) -> None:
    expected = tuple(sorted(set(cores)))
    text = format_core_set(cores)
    assert parse_core_set(text) == expected
    assert parse_config({"NEURON_RT_VISIBLE_CORES": text}).visible_cores == expected
    assert format_core_set(expected) == text


@settings(max_examples=100, deadline=None)
@given(core_sets)
def test_format_nc_range_mirrors_format_core_set(cores: list[int]) -> None:
    assert format_nc_range(cores) == ",".join(
        "-".join(f"nc{end}" for end in item.split("-")) for item in format_core_set(cores).split(",")
    )


core_like_text = st.text(alphabet="0123456789-, x\t", max_size=30)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(ALL_NAMES), st.text(max_size=40) | core_like_text)
def test_parse_config_never_raises_anything_else(name: str, text: str) -> None:
    try:
        config = parse_config({name: text})
    except ConfigError as error:
        assert error.variable == name
    else:
        assert isinstance(config, Config)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40) | core_like_text)
def test_parse_core_set_result_is_sorted_unique_or_config_error(text: str) -> None:
    try:
        cores = parse_core_set(text)
    except ConfigError:
        return
    assert list(cores) == sorted(set(cores))
    assert all(0 <= index <= INT_MAX for index in cores)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=20))
def test_parse_bool_is_bool_or_config_error(text: str) -> None:
    try:
        assert parse_bool("B", text) in (True, False)
    except ConfigError:
        assert text.strip().lower() not in ("true", "false", "1", "0")


def test_format_examples() -> None:
    assert format_core_set([5, 0, 1, 2, 2]) == "0-2,5"
    assert format_core_set([]) == ""
    assert format_nc_range([3, 4, 5]) == "nc3-nc5"
    assert format_nc_range([1, 3]) == "nc1,nc3"
    assert format_nc_range([0, 1, 2, 5]) == "nc0-nc2,nc5"


# --- check_against_topology --------------------------------------------------------


def test_topology_accepts_cores_that_exist() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_against_topology(parse_config({"NEURON_RT_VISIBLE_CORES": "0-3"}), 4)
        check_against_topology(parse_config({"NEURON_RT_NUM_CORES": "4"}), 4)
        check_against_topology(Config(), 1)


def test_topology_rejects_core_past_the_last() -> None:
    with pytest.raises(ConfigError) as caught:
        check_against_topology(parse_config({"NEURON_RT_VISIBLE_CORES": "2-4"}), 4)
    message = str(caught.value)
    assert "NEURON_RT_VISIBLE_CORES" in message and "'2-4'" in message
    assert "0-3" in message and "core 4 does not exist" in message


def test_topology_rejects_too_many_cores() -> None:
    with pytest.raises(ConfigError) as caught:
        check_against_topology(parse_config({"NEURON_RT_NUM_CORES": "5"}), 4)
    message = str(caught.value)
    assert "NEURON_RT_NUM_CORES" in message and "'5'" in message
    assert "a value from 1 to 4" in message and "0 for all" in message


def test_topology_warns_about_non_contiguous_cores() -> None:
    with pytest.warns(RuntimeWarning, match="consecutive") as record:
        check_against_topology(parse_config({"NEURON_RT_VISIBLE_CORES": "1,3"}), 4)
    assert "nc1,nc3" in str(record[0].message)
    assert record[0].filename == __file__


def test_topology_strict_rejects_non_contiguous_cores() -> None:
    config = parse_config({"NEURON_RT_VISIBLE_CORES": "1,3", "NCRT_STRICT": "1"})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ConfigError, match="consecutive") as caught:
            check_against_topology(config, 4)
    assert caught.value.variable == "NEURON_RT_VISIBLE_CORES"


def test_topology_checks_existence_before_contiguity() -> None:
    config = parse_config({"NEURON_RT_VISIBLE_CORES": "1,9", "NCRT_STRICT": "1"})
    with pytest.raises(ConfigError, match="core 9 does not exist"):
        check_against_topology(config, 4)
