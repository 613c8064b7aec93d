"""The options of ``torch.neuron.trace`` (the torch-neuron compilation API page) and what ncrt does with each.

Every documented keyword is accepted and validated (a bad value is a ``BadInputError``
naming the option, the value and what is accepted). What has a meaning on ncrt is
honoured:

- ``compiler_args``: ``--neuroncore-pipeline-cores N`` sets the cores one copy needs;
  every argument is kept in the manifest, and each other flag is warned about once;
- ``dynamic_batch_size``: the compiled model runs any batch size along dim 0;
- ``verbose``: the compilation summary (operators, batch, cores) is logged by the
  ``Neuron`` logger, shown on stderr when nothing else shows it;
- ``compiler_workdir``: the traced graph, its code, the manifest, the operator counts and
  the summary are written there, for inspection;
- ``fallback``: every operator runs on the emulated core, so nothing falls back and
  ``fallback=False`` never fails;
- ``optimizations=[Optimization.FLOAT32_TO_FLOAT16]``: the model accepts float16 inputs
  where it was traced with float32 ones (its arithmetic stays float32: warned);
- ``subgraph_builder_function`` and ``op_whitelist`` (the samples' form): evaluated on
  every operator of the traced graph, the split recorded in the manifest; the whole
  graph still runs on the emulated core (warned).

The rest are recorded in the manifest and warned about once per process
(:class:`IgnoredOptionWarning`), because nothing in ncrt has their meaning:
``compiler_timeout`` (no neuron-cc subprocess runs), ``minimum_segment_size`` and
``single_fusion_ratio_threshold`` (no partitioning), ``separate_weights`` (no 1.9 GB
limit on constants), ``skip_compiler`` (nothing is compiled anyway). Other keyword
arguments go to ``torch.jit.trace``.
"""

from __future__ import annotations

import enum
import json
import logging
import os
import sys
import warnings
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Callable, Iterator

from ncrt.errors import BadInputError

__all__ = ["IgnoredOptionWarning", "Optimization", "TraceOptions", "neuron_logger", "reset_warnings"]

_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_warned: set[str] = set()

IGNORED = {
    "compiler_timeout": "no neuron-cc subprocess runs: tracing is the whole compilation",
    "minimum_segment_size": "ncrt does not partition the graph: every operator runs on the emulated core",
    "single_fusion_ratio_threshold": "ncrt does not partition the graph: every operator runs on the emulated core",
    "separate_weights": "ncrt has no 1.9 GB limit on a model's constants",
    "skip_compiler": "nothing is compiled anyway: the traced graph is what runs",
}


class IgnoredOptionWarning(UserWarning):
    """A ``torch.neuron.trace`` option was accepted and recorded but has no effect on ncrt."""


class Optimization(enum.Enum):
    """torch-neuron's optimization passes (``torch_neuron.Optimization``)."""

    FLOAT32_TO_FLOAT16 = "FLOAT32_TO_FLOAT16"


def reset_warnings() -> None:
    """Warn again about every ignored option (the warnings are once per process)."""
    _warned.clear()


def neuron_logger() -> logging.Logger:
    """The ``Neuron`` logger, as torch-neuron logs its compilation (``INFO:Neuron:...``)."""
    return logging.getLogger("Neuron")


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check(ok: bool, name: str, value: Any, accepted: str) -> None:
    if not ok:
        raise BadInputError(f"torch.neuron.trace: {name}={value!r:.80} is not valid; accepted: {accepted}")


@dataclass
class TraceOptions:
    """The torch-neuron keyword arguments of one ``trace`` call (``None``: not given)."""

    compiler_timeout: Any = None
    compiler_workdir: Any = None
    subgraph_builder_function: Any = None
    minimum_segment_size: Any = None
    single_fusion_ratio_threshold: Any = None
    fallback: Any = None
    dynamic_batch_size: Any = False
    optimizations: Any = None
    separate_weights: Any = None
    verbose: Any = None
    op_whitelist: Any = None
    skip_compiler: Any = None

    def __post_init__(self) -> None:
        timeout, workdir = self.compiler_timeout, self.compiler_workdir
        _check(timeout is None or (_number(timeout) and timeout > 0), "compiler_timeout", timeout,
               "a number of seconds > 0")
        _check(workdir is None or isinstance(workdir, (str, os.PathLike)), "compiler_workdir", workdir,
               "a directory path")
        builder = self.subgraph_builder_function
        _check(builder is None or callable(builder), "subgraph_builder_function", builder,
               "a function taking a graph node and returning a bool")
        size = self.minimum_segment_size
        _check(size is None or (isinstance(size, int) and not isinstance(size, bool) and size >= 1),
               "minimum_segment_size", size, "an int >= 1 (default 2)")
        ratio = self.single_fusion_ratio_threshold
        _check(ratio is None or (_number(ratio) and 0 <= ratio <= 1), "single_fusion_ratio_threshold", ratio,
               "a number from 0.0 to 1.0 (default 0.6)")
        for name in ("fallback", "dynamic_batch_size", "separate_weights", "skip_compiler"):
            value = getattr(self, name)
            _check(value is None or isinstance(value, bool), name, value, "True or False")
        self._check_optimizations()
        self._check_verbose()
        self._check_whitelist()

    def _check_optimizations(self) -> None:
        passes = self.optimizations
        listed = isinstance(passes, (list, tuple)) and all(isinstance(p, Optimization) for p in passes)
        _check(passes is None or listed,
               "optimizations", passes, "a list of torch_neuron.Optimization passes, such as "
               "[torch_neuron.Optimization.FLOAT32_TO_FLOAT16]")

    def _check_verbose(self) -> None:
        verbose = self.verbose
        level_name = isinstance(verbose, str) and verbose.upper() in _LEVELS
        _check(verbose is None or level_name or (isinstance(verbose, int) and verbose >= 0), "verbose", verbose,
               f"an int >= 0 (0: quiet, 1 or more: log the compilation) or a level name ({', '.join(_LEVELS)})")

    def _check_whitelist(self) -> None:
        ops = self.op_whitelist
        names = isinstance(ops, (list, tuple, set, frozenset)) and all(isinstance(op, str) for op in ops)
        _check(ops is None or names,
               "op_whitelist", ops, "a list of operator names such as 'aten::embedding'")

    # -- what the options mean here ------------------------------------------------------

    @property
    def given(self) -> Iterator[tuple[str, Any]]:
        """The options the caller gave (not left at their defaults)."""
        for option in fields(self):
            value = getattr(self, option.name)
            if value is not None and not (option.name == "dynamic_batch_size" and value is False):
                yield option.name, value

    @property
    def optimization_names(self) -> list[str]:
        return [p.value for p in self.optimizations or ()]

    @property
    def selector(self) -> Callable[[Any], bool] | None:
        """Which operators torch-neuron would have compiled for Neuron; ``None``: all of them."""
        builder, allowed = self.subgraph_builder_function, self.op_whitelist
        if builder is None and allowed is None:
            return None
        names = set(allowed) if allowed is not None else None
        return lambda node: (names is None or node.kind in names) and (builder is None or bool(builder(node)))

    def recorded(self) -> dict[str, Any]:
        """The given options as JSON values, for the manifest."""
        return {name: _json_value(value) for name, value in self.given}

    def log_level(self) -> int | None:
        """The level the compilation summary is shown at, or ``None`` when ``verbose`` is off."""
        verbose = self.verbose
        if isinstance(verbose, str):
            return logging.getLevelName(verbose.upper())
        return logging.INFO if verbose else None

    def warn_ignored(self, selected: int | None, total: int) -> None:
        """Warn once per process about each given option ncrt cannot (fully) honour."""
        for name, value in self.given:
            call = f"torch.neuron.trace({name}={_json_value(value)!r:.60})"
            if name in IGNORED:
                message = f"{call} has no effect on ncrt: {IGNORED[name]}"
            elif name in ("subgraph_builder_function", "op_whitelist") and selected is not None:
                message = (f"{call} was evaluated but not applied: {total - selected} of the {total} operator(s) "
                           "would run on CPU under torch-neuron; ncrt runs the whole graph on the emulated "
                           "NeuronCore (the split is recorded in the manifest)")
            elif name == "optimizations" and value:
                message = (f"{call} is applied in part: the model accepts float16 inputs where it was traced "
                           "with float32 ones, but the emulated core computes in the traced precision (float32)")
            else:
                continue
            _warn_once(name, message)

    @staticmethod
    def warn_compiler_flags(args: list[str]) -> None:
        """Warn once per flag about neuron-cc flags other than ``--neuroncore-pipeline-cores``."""
        for arg in args:
            flag = arg.split("=", 1)[0]
            if flag.startswith("-") and flag != "--neuroncore-pipeline-cores":
                _warn_once(f"compiler_args {flag}", (
                    f"torch.neuron.trace(compiler_args=[{flag!r}, ...]) has no effect on ncrt: no neuron-cc runs "
                    "and the model computes as traced; only --neuroncore-pipeline-cores applies (the flag is "
                    "recorded in the manifest)"))

    # -- verbose and compiler_workdir ------------------------------------------------------

    def report(self, lines: list[str]) -> None:
        """Log the summary (``verbose``), on stderr when no handler would show it."""
        level = self.log_level()
        if level is None:
            return
        logger = neuron_logger()
        handler = None
        if not logger.hasHandlers():
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(logging.Formatter("%(levelname)s:%(name)s:%(message)s"))
            logger.addHandler(handler)
        previous = logger.level
        logger.setLevel(min(level, logging.INFO))
        try:
            for line in lines:
                logger.log(level, line)
        finally:
            logger.setLevel(previous)
            if handler is not None:
                logger.removeHandler(handler)

    def write_workdir(self, artifacts: dict[str, str]) -> None:
        """Write the compilation artifacts to ``compiler_workdir`` (created if needed)."""
        if self.compiler_workdir is None:
            return
        folder = Path(self.compiler_workdir)
        folder.mkdir(parents=True, exist_ok=True)
        for name, text in artifacts.items():
            (folder / name).write_text(text)


def _json_value(value: Any) -> Any:
    if isinstance(value, Optimization):
        return value.value
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [_json_value(item) for item in value]
        return sorted(items) if isinstance(value, (set, frozenset)) else items
    if callable(value):
        return f"{getattr(value, '__module__', '?')}.{getattr(value, '__qualname__', type(value).__name__)}"
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    json.dumps(value)  # only JSON values reach the manifest
    return value


def _user_stacklevel() -> int:
    """The stacklevel of the first frame outside ncrt, so a warning points at user code."""
    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_globals.get("__name__", "").startswith("ncrt"):
        frame, level = frame.f_back, level + 1
    return level


def _warn_once(option: str, message: str) -> None:
    if option in _warned:
        return
    _warned.add(option)
    warnings.warn(message, IgnoredOptionWarning, stacklevel=_user_stacklevel())
