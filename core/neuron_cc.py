"""neuron-cc compiler options: which ones ncrt honours, which it records and ignores.

Neuron frameworks hand compiler options over in several spellings: a list
(``compiler_args=['--neuroncore-pipeline-cores', '4']``), one string
(``NEURON_CC_FLAGS="--neuroncore-pipeline-cores=4 --workdir logs/"``), or MXNet's keyword
arguments (``compile(sym, args, aux, inputs, **{'--neuroncore-pipeline-cores': 2})``).
:func:`flag_list` turns each into one list of strings and :func:`read_flags` reads it.

ncrt "compiles" nothing: the one option with a meaning here is
``--neuroncore-pipeline-cores`` (the cores one copy of the model occupies). Every other
option of the neuron-cc reference is recorded in the manifest and ignored (see
:data:`NEURON_CC_OPTIONS` for why); an option neuron-cc does not document is recorded too
and warned about once per process (:class:`CompilerOptionWarning`), so a misspelt flag
never vanishes silently.
"""

from __future__ import annotations

import shlex
import threading
import warnings
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

from .errors import BadInputError
from .manifest_schema import declare_extra, mapping, texts

__all__ = [
    "CompilerFlags",
    "CompilerOptionWarning",
    "NEURON_CC_OPTIONS",
    "PIPELINE_CORES",
    "flag_list",
    "read_flags",
    "warn_unknown",
]

PIPELINE_CORES = "--neuroncore-pipeline-cores"


class CompilerOptionWarning(UserWarning):
    """A compiler option ncrt does not know: recorded in the manifest, otherwise ignored."""


@dataclass(frozen=True)
class Option:
    """One documented neuron-cc (or framework tracing) option."""

    takes_value: bool
    why_ignored: str


_NUMERICS = "ncrt runs the model in the framework's own precision on the host; no casting is done"
_NO_COMPILER = "ncrt runs no compiler, so it writes no compiler artifacts"

NEURON_CC_OPTIONS: dict[str, Option] = {
    PIPELINE_CORES: Option(True, ""),
    "--verbose": Option(True, "no compiler log to make verbose"),
    "--framework": Option(True, "the framework is known from the model"),
    "--io-config": Option(True, "inputs and outputs are read from the example inputs"),
    "--output": Option(True, _NO_COMPILER + " (no NEFF file)"),
    "--enable-saturate-infinity": Option(False, _NUMERICS),
    "--enable-fast-loading-neuron-binaries": Option(False, "no NEFF archive is written or loaded"),
    "--enable-fast-context-switch": Option(False, "model switches are counted, not timed like hardware"),
    "--fast-math": Option(True, _NUMERICS),
    "--fp32-cast": Option(True, _NUMERICS),
    "--static-weights": Option(False, "weights always stay loaded with the model on the host"),
    "--workdir": Option(True, _NO_COMPILER),
    "--dynamic-batch-size": Option(False, ""),
    "--extract-weights": Option(False, "weights are SavedModel variables already: no 2 GB graph limit to avoid"),
}
"""The options of the neuron-cc CLI reference and tensorflow-neuron's tracing flags.

``takes_value``: the option is followed by a value (``--workdir DIR``; ``--extract-weights``
takes an optional instance type). An empty ``why_ignored`` marks an option ncrt honours.
"""

@dataclass
class CompilerFlags:
    """What a list of compiler options means here."""

    args: list[str] = field(default_factory=list)
    pipeline_cores: int = 1
    dynamic_batch_size: bool = False
    ignored: dict[str, str] = field(default_factory=dict)
    unknown: list[str] = field(default_factory=list)

    def record(self) -> dict[str, Any]:
        """The manifest's record of the options ncrt ignored or did not know."""
        return {"ignored_compiler_options": dict(self.ignored), "unknown_compiler_options": list(self.unknown)}


declare_extra({"ignored_compiler_options": mapping, "unknown_compiler_options": texts})


def flag_list(value: str | Sequence[Any] | Mapping[str, Any] | None) -> list[str]:
    """Options in any documented spelling as one list of strings.

    ``None`` -> ``[]``; a string is split like a shell would; each list item is split the
    same way (``['--fp32-cast matmult']``); a mapping ``{'--flag': value}`` gives
    ``--flag value`` (``True``/``None`` values: the bare switch; ``False``: left out).
    """
    if value is None:
        return []
    if isinstance(value, str):
        return shlex.split(value)
    if isinstance(value, Mapping):
        return _mapping_flags(value)
    flags: list[str] = []
    for item in value:
        flags.extend(shlex.split(item) if isinstance(item, str) else [str(item)])
    return flags


def _mapping_flags(options: Mapping[str, Any]) -> list[str]:
    flags: list[str] = []
    for name, value in options.items():
        if value is False:
            continue
        flags.append(str(name))
        if value is not True and value is not None:
            flags.append(str(value))
    return flags


def _pipeline_value(text: str) -> int:
    text = str(text)
    if not (text.isascii() and text.isdigit()) or int(text) < 1:
        raise BadInputError(f"{PIPELINE_CORES}={text!r} is not valid; accepted: a whole number >= 1")
    return int(text)


def _split(arg: str, rest: list[str]) -> tuple[str, str | None, int]:
    """``(name, value, extra items consumed)`` of the option at the head of the list.

    An option takes the items after it that do not start with ``-`` as its value
    (``--fast-math fp32-cast-matmult no-fast-relayout``); an option documented to take a
    value must have one.
    """
    if "=" in arg:
        name, value = arg.split("=", 1)
        return name, value, 0
    values = []
    for item in rest:
        if item.startswith("-"):
            break
        values.append(item)
    option = NEURON_CC_OPTIONS.get(arg)
    if option is not None and option.takes_value and not values:
        raise BadInputError(f"{arg} needs a value; accepted: {arg} VALUE or {arg}=VALUE")
    return arg, " ".join(values) if values else None, len(values)


def read_flags(args: Iterable[str]) -> CompilerFlags:
    """Read a list of options: the pipeline size, dynamic batching, what is ignored or unknown."""
    items = [str(arg) for arg in args]
    flags = CompilerFlags(args=list(items))
    position = 0
    while position < len(items):
        arg = items[position]
        position += 1
        if not arg.startswith("-"):
            flags.unknown.append(arg)
            continue
        name, value, used = _split(arg, items[position:])
        position += used
        _apply(flags, name, value)
    return flags


def _apply(flags: CompilerFlags, name: str, value: str | None) -> None:
    option = NEURON_CC_OPTIONS.get(name)
    if option is None:
        flags.unknown.append(name if value is None else f"{name}={value}")
    elif name == PIPELINE_CORES:
        flags.pipeline_cores = _pipeline_value(value or "")
    elif name == "--dynamic-batch-size":
        flags.dynamic_batch_size = True
    else:
        flags.ignored[name] = option.why_ignored


_warned: set[str] = set()
_warned_lock = threading.Lock()


def warn_unknown(flags: CompilerFlags, where: str) -> None:
    """Warn once per process about each option neuron-cc does not document."""
    with _warned_lock:
        fresh = [name for name in flags.unknown if name not in _warned]
        _warned.update(fresh)
    if fresh:
        warnings.warn(
            f"{where}: compiler option(s) {', '.join(fresh)} are not neuron-cc options ncrt knows; "
            f"they are recorded in the manifest and have no effect (known: {', '.join(sorted(NEURON_CC_OPTIONS))})",
            CompilerOptionWarning, stacklevel=3,
        )
