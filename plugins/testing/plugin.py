"""The pytest plugin: test Neuron applications in any CI, without Inferentia.

Registered through the ``pytest11`` entry point (name ``ncrt``; ``-p no:ncrt`` turns it
off) and inert unless a test uses it:

* ``@pytest.mark.neuron(instance=..., num_cores=..., visible_cores=..., group_sizes=...,
  env={...})``: the test runs with that emulated instance and those variables only, a
  private state directory and a fresh runtime; a model still referenced or a core still
  reserved when it ends fails it (:mod:`ncrt.plugins.testing.marker`).
* ``neuron_process``: runs programs under ncrt in their own processes and returns their
  placements (:class:`~ncrt.plugins.testing.processes.NeuronProcesses`).
* ``neuron_state_dir``: the test's state directory (where its core locks live).
* ``--neuron-instance NAME`` (ini ``neuron_instance``): the emulated instance of the whole
  run; ``--neuron-shared-state`` / ``--neuron-state-dir DIR``: one state directory for
  every test and pytest-xdist worker instead of one per test (:mod:`.state`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from ncrt.errors import ConfigError, NcrtError, ResourceLeakError
from ncrt.topology import build_topology

from .marker import NeuronTest
from .processes import NeuronProcesses
from .settings import settings_of_marks
from .state import WORKER_INPUT_KEY, StateDirs

MARKER_HELP = (
    "neuron(instance=None, num_cores=None, visible_cores=None, group_sizes=None, env=None): run the test "
    "with an emulated Neuron instance and these runtime variables only, a private state directory and a "
    "fresh ncrt runtime; models or cores still held when it ends fail it"
)

_STATE_DIRS = pytest.StashKey[StateDirs]()
_SESSION_ENV = pytest.StashKey[pytest.MonkeyPatch]()
_INSTANCE = pytest.StashKey["str | None"]()
_MARKED = pytest.StashKey[NeuronTest]()
_STATE_DIR = pytest.StashKey[Path]()
_RAISED = pytest.StashKey[bool]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("ncrt", "ncrt: Neuron applications without Inferentia")
    group.addoption("--neuron-instance", metavar="NAME", default=None,
                    help="emulate this instance type (NCRT_INSTANCE_TYPE) for the whole run, such as inf1.6xlarge; "
                    "a test's neuron marker may name another")
    group.addoption("--neuron-shared-state", action="store_true", default=False,
                    help="give every test, in every pytest-xdist worker, one shared state directory, so that "
                    "they contend for cores like processes of one host (default: one per test)")
    group.addoption("--neuron-state-dir", metavar="DIR", default=None,
                    help="the shared state directory to use (implies --neuron-shared-state)")
    parser.addini("neuron_instance", "emulated instance type for the whole run (--neuron-instance wins)", default=None)


def _instance_of(config: pytest.Config) -> str | None:
    instance = config.getoption("neuron_instance") or config.getini("neuron_instance") or None
    if instance:
        try:
            build_topology(instance)
        except ConfigError as error:
            raise pytest.UsageError(f"--neuron-instance: {error}") from None
    return instance


def _state_dirs_of(config: pytest.Config) -> StateDirs:
    try:
        return StateDirs.from_config(config)
    except NcrtError as error:  # an unsafe --neuron-state-dir
        raise pytest.UsageError(f"--neuron-state-dir: {error}") from None


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", MARKER_HELP)
    instance = config.stash[_INSTANCE] = _instance_of(config)
    config.stash[_STATE_DIRS] = _state_dirs_of(config)
    patch = config.stash[_SESSION_ENV] = pytest.MonkeyPatch()
    if instance:
        patch.setenv("NCRT_INSTANCE_TYPE", instance)


def pytest_unconfigure(config: pytest.Config) -> None:
    if _SESSION_ENV in config.stash:
        config.stash[_SESSION_ENV].undo()
    if _STATE_DIRS in config.stash:
        config.stash[_STATE_DIRS].close()


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node) -> None:  # pytest-xdist, in the controlling process
    shared = node.config.stash[_STATE_DIRS].shared
    if shared is not None:
        node.workerinput[WORKER_INPUT_KEY] = str(shared)


def _state_dirs(item: pytest.Item) -> StateDirs:
    return item.config.stash[_STATE_DIRS]


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    marks = list(item.iter_markers("neuron"))
    if not marks:
        return
    state_dirs = _state_dirs(item)
    try:
        settings = settings_of_marks(marks).with_default_instance(item.config.stash[_INSTANCE])
        test = NeuronTest.start(item.nodeid, settings, state_dirs.for_test(item.name), state_dirs.shared is not None)
    except NcrtError as error:  # a bad marker: say what is wrong, without the plugin's traceback
        pytest.fail(f"neuron marker of {item.nodeid}: {type(error).__name__}: {error}", pytrace=False)
    item.stash[_MARKED] = test


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    if call.when in ("setup", "call") and call.excinfo is not None:
        item.stash[_RAISED] = True
    return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None):
    test = item.stash.get(_MARKED, None)
    if test is None:
        return (yield)
    try:
        result = yield
    except BaseException as error:  # a fixture's teardown failed: clean up, keep its error first
        leak = _leak_of(test, check_models=False)
        if leak is not None and hasattr(error, "add_note"):
            error.add_note(f"{type(leak).__name__}: {leak}")
        raise
    finally:
        del item.stash[_MARKED]
    funcargs = getattr(item, "funcargs", None)
    if isinstance(funcargs, dict):
        funcargs.clear()  # torn-down fixture values; pytest drops them right after this hook
    leak = _leak_of(test, check_models=not item.stash.get(_RAISED, False))
    if leak is not None:
        _fail(leak)
    return result


def _leak_of(test: NeuronTest, check_models: bool) -> ResourceLeakError | None:
    """Finish ``test``; the leak it found, if any."""
    try:
        test.finish(check_models)
    except ResourceLeakError as error:
        return error
    return None


def _fail(error: NcrtError) -> None:
    """Fail the current test phase with ``error``'s message, without the plugin's traceback."""
    __tracebackhide__ = True
    pytest.fail(f"{type(error).__name__}: {error}", pytrace=False)


def state_dir_of(item: pytest.Item) -> Path:
    """The state directory of ``item``: its marker's, else one made for it on first use."""
    test = item.stash.get(_MARKED, None)
    if test is not None:
        return test.state_dir
    if _STATE_DIR not in item.stash:
        item.stash[_STATE_DIR] = _state_dirs(item).for_test(item.name)
    return item.stash[_STATE_DIR]


@pytest.fixture
def neuron_state_dir(request: pytest.FixtureRequest) -> Path:
    """The test's state directory, where ncrt keeps its core locks (``NCRT_STATE_DIR``)."""
    return state_dir_of(request.node)


@pytest.fixture
def neuron_process(request: pytest.FixtureRequest,
                   tmp_path_factory: pytest.TempPathFactory) -> Iterator[NeuronProcesses]:
    """Run programs under ncrt in their own processes: ``neuron_process("app.py", num_cores=2)``.

    Returns a :class:`~ncrt.plugins.testing.processes.NeuronProcesses`; a process still
    running when the test ends is killed, and fails the test unless the test already failed.
    """
    processes = NeuronProcesses(state_dir_of(request.node), tmp_path_factory.mktemp("neuron-process"))
    yield processes
    leftover = processes.cleanup()
    if leftover and not request.node.stash.get(_RAISED, False):
        names = "; ".join(process.describe() for process in leftover)
        _fail(ResourceLeakError(f"{request.node.nodeid} ended with process(es) still running, now killed: {names}; "
                                "wait() for them, or stop() them, before the test ends"))
