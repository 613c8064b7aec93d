"""The ``neuron`` marker and ``--neuron-instance``, in pytest runs made by pytester (in process)."""

from __future__ import annotations

import os

import pytest

MARKED_TESTS = '''
import os
import pytest
import ncrt

SEEN = {}

@pytest.mark.neuron(instance="inf1.6xlarge", num_cores=4, env={"NEURON_RT_EXEC_TIMEOUT": "5"})
def test_a():
    assert ncrt.current_runtime() is None
    assert os.environ["NCRT_INSTANCE_TYPE"] == "inf1.6xlarge"
    assert os.environ["NEURON_RT_NUM_CORES"] == "4"
    assert os.environ["NEURON_RT_EXEC_TIMEOUT"] == "5"
    assert "NEURON_RT_VISIBLE_CORES" not in os.environ  # the inherited value is not seen
    runtime = ncrt.get_runtime()
    assert len(runtime.topology) == 16
    assert [core.global_index for core in runtime.cores] == [0, 1, 2, 3]
    assert runtime.config.exec_timeout == 5.0
    SEEN["a"] = (os.environ["NCRT_STATE_DIR"], runtime)

@pytest.mark.neuron(instance="inf1.xlarge", visible_cores=[1, 2])
def test_b():
    assert ncrt.current_runtime() is None  # a fresh runtime: test_a's was closed
    state_dir, runtime_a = SEEN["a"]
    assert runtime_a.closed
    assert os.environ["NCRT_STATE_DIR"] != state_dir  # a private state directory per test
    assert os.environ["NEURON_RT_VISIBLE_CORES"] == "1-2"
    assert [core.global_index for core in ncrt.get_runtime().cores] == [1, 2]

def test_c_unmarked():
    assert os.environ["NEURON_RT_VISIBLE_CORES"] == "3"
    assert os.environ["NCRT_STATE_DIR"] == os.environ["OUTER_STATE_DIR"]
    assert "NCRT_INSTANCE_TYPE" not in os.environ
    assert ncrt.current_runtime() is None
'''


def test_marker_sets_instance_variables_private_state_and_fresh_runtime(inner, monkeypatch):
    monkeypatch.setenv("NEURON_RT_VISIBLE_CORES", "3")
    monkeypatch.setenv("OUTER_STATE_DIR", os.environ["NCRT_STATE_DIR"])
    inner.makepyfile(test_marked=MARKED_TESTS)
    result = inner.runpytest("-p", "no:randomly")
    result.assert_outcomes(passed=3)
    assert os.environ["NEURON_RT_VISIBLE_CORES"] == "3"  # restored for the outer test too


def test_module_class_and_test_marks_merge_closest_first(inner):
    inner.makepyfile(test_merge='''
        import os
        import pytest

        pytestmark = pytest.mark.neuron(instance="inf1.xlarge", num_cores=3)

        @pytest.mark.neuron(num_cores=1)
        class TestGroup:
            def test_class_mark(self):
                assert os.environ["NCRT_INSTANCE_TYPE"] == "inf1.xlarge"
                assert os.environ["NEURON_RT_NUM_CORES"] == "1"

            @pytest.mark.neuron(num_cores=2, group_sizes=None)
            def test_own_mark(self):
                assert os.environ["NEURON_RT_NUM_CORES"] == "2"

        def test_module_mark():
            assert os.environ["NEURON_RT_NUM_CORES"] == "3"
    ''')
    inner.runpytest().assert_outcomes(passed=3)


def test_group_sizes_marker_reserves_the_groups(inner):
    inner.makepyfile(test_groups='''
        import warnings
        import pytest
        import ncrt

        @pytest.mark.neuron(instance="inf1.6xlarge", group_sizes=[2, 4, 3, 4])
        def test_groups():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                runtime = ncrt.get_runtime()
            assert len(runtime.cores) == 13
            from ncrt.plugins.ncg.shim import active_layout
            assert active_layout(runtime.config).groups == [(0, 2), (2, 4), (6, 3), (9, 4)]
    ''')
    inner.runpytest().assert_outcomes(passed=1)


BAD_MARKERS = [
    ('cores=2', "BadInputError: the neuron marker got unknown argument(s) cores; accepted: instance, num_cores, "
     "visible_cores, group_sizes, env"),
    ('"inf1.xlarge"', "BadInputError: the neuron marker takes keyword arguments only, got ('inf1.xlarge',)"),
    ('instance="inf9.huge"', "ConfigError: NCRT_INSTANCE_TYPE='inf9.huge' is not valid; accepted: one of inf1.xlarge"),
    ('num_cores="many"', "ConfigError: NEURON_RT_NUM_CORES='many' is not valid"),
    ('num_cores=[2]', "ConfigError: NEURON_RT_NUM_CORES=[2] is not valid (num_cores got a list); accepted: a whole"),
    ('instance="inf1.xlarge", num_cores=5',
     "ConfigError: NEURON_RT_NUM_CORES='5' is not valid (this host has only 4 NeuronCores)"),
    ('instance="inf1.xlarge", visible_cores=[0, 9]',
     "ConfigError: NEURON_RT_VISIBLE_CORES='0,9' is not valid (core 9 does not exist"),
    ('group_sizes="2,x"', "ConfigError: NEURONCORE_GROUP_SIZES='2,x' is not valid"),
    ('instance="inf1.xlarge", group_sizes="4,4"',
     "ConfigError: NEURONCORE_GROUP_SIZES='4,4' is not valid (inf1.xlarge has 4 NeuronCores, the groups need 8)"),
    ('env={"NEURON_RT_LOG_LEVEL": 1.5}', "BadInputError: env entry 'NEURON_RT_LOG_LEVEL': 1.5 is not valid"),
]


def test_bad_marker_arguments_are_setup_errors_that_say_what_is_accepted(inner):
    tests = "\n".join(f"@pytest.mark.neuron({arguments})\ndef test_bad_{index}():\n    raise AssertionError('ran')\n"
                       for index, (arguments, _) in enumerate(BAD_MARKERS))
    inner.makepyfile(test_bad="import pytest\n\n" + tests)
    result = inner.runpytest()
    result.assert_outcomes(errors=len(BAD_MARKERS))
    output = result.stdout.str()
    for index, (_, message) in enumerate(BAD_MARKERS):
        assert f"neuron marker of test_bad.py::test_bad_{index}: {message}" in output
    assert "AssertionError: ran" not in output and "plugin.py" not in output


INSTANCE_TESTS = '''
import os
import pytest

@pytest.mark.neuron(num_cores=1)
def test_marked_without_instance():
    assert os.environ["NCRT_INSTANCE_TYPE"] == "inf2.xlarge"

@pytest.mark.neuron(instance="trn1.32xlarge")
def test_marked_with_its_own_instance():
    assert os.environ["NCRT_INSTANCE_TYPE"] == "trn1.32xlarge"

def test_unmarked():
    assert os.environ["NCRT_INSTANCE_TYPE"] == "inf2.xlarge"
'''


def test_neuron_instance_option_sets_the_instance_of_the_whole_run(inner):
    inner.makepyfile(test_instance=INSTANCE_TESTS)
    inner.runpytest("--neuron-instance", "inf2.xlarge").assert_outcomes(passed=3)
    assert "NCRT_INSTANCE_TYPE" not in os.environ  # undone when the run ends


def test_neuron_instance_ini_setting(inner):
    inner.makeini("[pytest]\nneuron_instance = inf2.xlarge\n")
    inner.makepyfile(test_instance=INSTANCE_TESTS)
    inner.runpytest().assert_outcomes(passed=3)


def test_unknown_neuron_instance_is_a_usage_error(inner):
    inner.makepyfile(test_nothing="def test_nothing():\n    pass\n")
    result = inner.runpytest("--neuron-instance", "inf3.big")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--neuron-instance: NCRT_INSTANCE_TYPE='inf3.big' is not valid; accepted: one of*"])


def test_plugin_is_inert_for_tests_that_do_not_use_it(inner, monkeypatch):
    monkeypatch.setenv("NEURON_RT_NUM_CORES", "1")
    monkeypatch.setenv("OUTER_STATE_DIR", os.environ["NCRT_STATE_DIR"])
    inner.makepyfile(test_plain='''
        import os
        import ncrt

        def test_plain(request):
            assert os.environ["NEURON_RT_NUM_CORES"] == "1"
            assert os.environ["NCRT_STATE_DIR"] == os.environ["OUTER_STATE_DIR"]
            assert "NCRT_INSTANCE_TYPE" not in os.environ
            assert not any(name.startswith("neuron") for name in request.fixturenames)
            KEEP.append(ncrt.load(lambda x: x))  # no leak check without the marker

        KEEP = []
    ''')
    inner.runpytest().assert_outcomes(passed=1)


@pytest.mark.slow
def test_plugin_is_registered_as_ncrt_and_can_be_disabled(inner):
    # in a subprocess: pytest remembers known marker names for the life of a process
    inner.makepyfile(test_marked='''
        import pytest

        @pytest.mark.neuron(instance="inf1.xlarge")
        def test_marked():
            pass
    ''')
    result = inner.runpytest_subprocess("--strict-markers", "-p", "no:ncrt")
    result.stdout.fnmatch_lines(["*'neuron' not found in `markers` configuration option*"])
    inner.runpytest_subprocess("--strict-markers").assert_outcomes(passed=1)
