"""neuron-cc options in every spelling: what ncrt honours, records, or warns about."""

from __future__ import annotations

import warnings

import pytest

from ncrt import neuron_cc
from ncrt.errors import BadInputError
from ncrt.neuron_cc import CompilerOptionWarning, flag_list, read_flags


@pytest.mark.parametrize("spelling", [
    ["--neuroncore-pipeline-cores", "4"],
    ["--neuroncore-pipeline-cores=4"],
    "--neuroncore-pipeline-cores 4",
    ["--neuroncore-pipeline-cores 4"],
    {"--neuroncore-pipeline-cores": 4},
    {"--neuroncore-pipeline-cores": "4"},
])
def test_every_spelling_gives_the_pipeline_size(spelling):
    assert read_flags(flag_list(spelling)).pipeline_cores == 4


@pytest.mark.parametrize("args,cores", [
    (None, 1), ([], 1), (["--neuroncore-pipeline-cores", "16"], 16),
    ("--neuroncore-pipeline-cores=4 --fast-math none", 4), (["--other", "1"], 1),
    ({"--neuroncore-pipeline-cores": 2, "--fast-math": "none"}, 2),
])
def test_pipeline_cores_among_other_options(args, cores):
    assert read_flags(flag_list(args)).pipeline_cores == cores


def test_switches_values_and_multi_value_options():
    flags = read_flags(flag_list("--dynamic-batch-size --fast-math fp32-cast-matmult no-fast-relayout "
                                 "--extract-weights inf1.2xlarge --workdir=logs/ --static-weights"))
    assert flags.dynamic_batch_size and flags.pipeline_cores == 1 and flags.unknown == []
    assert set(flags.ignored) == {"--fast-math", "--extract-weights", "--workdir", "--static-weights"}
    assert all(flags.ignored.values())  # each says why it has no effect here
    assert flag_list({"--enable-fast-context-switch": True, "--off": False, "--verbose": "INFO"}) == [
        "--enable-fast-context-switch", "--verbose", "INFO"]


def test_unknown_options_are_recorded_and_warned_about_once(monkeypatch):
    monkeypatch.setattr(neuron_cc, "_warned", set())
    flags = read_flags(["stray", "--neuroncore-pipline-cores", "2"])
    assert flags.unknown == ["stray", "--neuroncore-pipline-cores=2"]
    assert flags.record()["unknown_compiler_options"] == flags.unknown
    with pytest.warns(CompilerOptionWarning, match="stray, --neuroncore-pipline-cores=2"):
        neuron_cc.warn_unknown(flags, "here")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        neuron_cc.warn_unknown(flags, "here")  # once per process


@pytest.mark.parametrize("bad", [["--neuroncore-pipeline-cores"], ["--neuroncore-pipeline-cores=0"],
                                 ["--neuroncore-pipeline-cores", "two"], ["--neuroncore-pipeline-cores=x"],
                                 ["--neuroncore-pipeline-cores", "\u0664"], ["--workdir"]])
def test_bad_values_are_refused(bad):
    with pytest.raises(BadInputError, match="accepted"):
        read_flags(bad)
