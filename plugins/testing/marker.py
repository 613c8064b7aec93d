"""One test under the ``neuron`` marker: its variables, its state directory, a fresh runtime.

:meth:`NeuronTest.start` runs before the test's fixtures: it validates the settings,
removes every Neuron and ncrt variable the test would inherit, sets the marker's
(``NCRT_INSTANCE_TYPE``, ``NEURON_RT_NUM_CORES``, ...) and ``NCRT_STATE_DIR``, and closes
any runtime of the process, so the test's first use of ncrt builds a fresh one.
:meth:`NeuronTest.finish` runs after the fixtures are torn down: it closes the test's
runtime, restores the environment, and raises :class:`~ncrt.errors.ResourceLeakError`
naming every model still referenced and every core still reserved.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ncrt.errors import ResourceLeakError
from ncrt.runtime import reset_runtime

from .leaks import describe_leaks, held_cores, release_runtime
from .settings import NeuronSettings, check_variables, neuron_variables

__all__ = ["NeuronTest"]


class NeuronTest:
    """The environment and runtime of one marked test, from set-up to leak check."""

    def __init__(self, name: str, settings: NeuronSettings, state_dir: Path, shared: bool) -> None:
        self.name = name
        self.settings = settings
        self.state_dir = state_dir
        self.shared = shared
        self._patch = pytest.MonkeyPatch()

    @property
    def variables(self) -> dict[str, str]:
        """What the test runs with: the marker's variables and the state directory."""
        return {**self.settings.variables(), "NCRT_STATE_DIR": str(self.state_dir)}

    @classmethod
    def start(cls, name: str, settings: NeuronSettings, state_dir: Path, shared: bool) -> NeuronTest:
        """Validate, set the variables, close any runtime; ConfigError for a bad setting."""
        test = cls(name, settings, state_dir, shared)
        variables = test.variables
        check_variables(variables)
        for variable in neuron_variables():
            test._patch.delenv(variable)
        for variable, value in variables.items():
            test._patch.setenv(variable, value)
        reset_runtime()
        return test

    def finish(self, check_models: bool) -> None:
        """Close the runtime, restore the environment; ResourceLeakError for what is still held.

        ``check_models`` is False after the test raised: its traceback keeps its models alive.
        """
        try:
            models = release_runtime(watch_models=check_models)
            cores = held_cores(self.state_dir, only_ours=self.shared)
        finally:
            self._patch.undo()
        if models or cores:
            raise ResourceLeakError(describe_leaks(self.name, models, cores, self.state_dir))
