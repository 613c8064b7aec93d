"""The schema of an ncrt manifest, checked whenever a manifest is read.

A manifest arrives from a file, an archive entry or an attribute of a framework object,
any of which can be damaged or edited; :func:`manifest_problem` says what is wrong with
its parsed JSON (the field, the value received, what is accepted), so that nothing
malformed reaches placement or execution. Keys a plugin writes into ``extra`` are typed
by that plugin (:func:`declare_extra`); keys nobody declared need only be finite JSON.
"""

from __future__ import annotations

import math
import re
from typing import Any, Callable, Mapping

__all__ = [
    "EXTRA_FIELDS", "FIELDS", "MAX_CORES", "MAX_DIMS", "NAMED_INPUTS", "Check", "any_json", "declare_extra", "flag",
    "count_map", "fraction", "int_in", "manifest_problem", "mapping", "text", "text_map", "texts",
]

INT_MAX = 2**31 - 1
MAX_CORES = 2**16
"""The most NeuronCores a manifest may ask for (the most a core set may name)."""
MAX_DIMS = 64
"""The most dimensions a tensor of the signature may have."""
MAX_SIGNATURE = 4096
"""The most inputs (or outputs) a signature may list."""
_HEX64 = re.compile(r"[0-9a-f]{64}")

Check = Callable[[Any], "str | None"]  # the value -> None when sound, else what is accepted


def int_in(low: int, high: int) -> Check:
    def check(value: Any) -> str | None:
        if isinstance(value, int) and not isinstance(value, bool) and low <= value <= high:
            return None
        return f"a whole number from {low} to {high}"

    return check


def _optional(check: Check) -> Check:
    def optional(value: Any) -> str | None:
        accepted = check(value) if value is not None else None
        return f"null or {accepted}" if accepted else None

    return optional


def text(value: Any) -> str | None:
    return None if isinstance(value, str) and len(value) <= 4096 else "a string (at most 4096 characters)"


def _name(value: Any) -> str | None:
    return None if isinstance(value, str) and 0 < len(value) <= 256 else "a non-empty string of at most 256 characters"


def flag(value: Any) -> str | None:
    return None if isinstance(value, bool) else "true or false"


def _hex64(value: Any) -> str | None:
    return None if isinstance(value, str) and _HEX64.fullmatch(value) else "64 lower-case hexadecimal digits"


def texts(value: Any) -> str | None:
    if isinstance(value, list) and all(text(item) is None for item in value):
        return None
    return "a list of strings"


def text_map(value: Any) -> str | None:
    if isinstance(value, dict) and all(text(item) is None for item in value.values()):
        return None
    return "an object of strings"


def _dimension(value: Any) -> bool:
    return value is None or (isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= INT_MAX)


def _tensor_entry(value: Any) -> str | None:
    accepted = ('{"shape": [dimensions: whole numbers >= 0 or null], "dtype": string, "name": string}, '
                "dtype and name optional")
    if not isinstance(value, dict) or not set(value) <= {"shape", "dtype", "name"}:
        return accepted
    shape = value.get("shape")
    if not (isinstance(shape, list) and len(shape) <= MAX_DIMS and all(_dimension(size) for size in shape)):
        return accepted
    if any(key in value and text(value[key]) is not None for key in ("dtype", "name")):
        return accepted
    return None


def _signature(value: Any) -> str | None:
    if isinstance(value, list) and len(value) <= MAX_SIGNATURE:
        problems = [(position, _tensor_entry(entry)) for position, entry in enumerate(value)]
        bad = next(((position, problem) for position, problem in problems if problem), None)
        if bad is None:
            return None
        return f"a list of tensor entries, each {bad[1]} (entry {bad[0]} is not)"
    return f"a list of at most {MAX_SIGNATURE} tensor entries"


def any_json(value: Any) -> str | None:
    if isinstance(value, float) and not math.isfinite(value):
        return "a finite number"
    return None


def mapping(value: Any) -> str | None:
    """A JSON object (of finite values)."""
    if isinstance(value, dict) and all(any_json(item) is None for item in value.values()):
        return None
    return "an object"


def count_map(value: Any) -> str | None:
    """A JSON object of whole numbers >= 0."""
    if isinstance(value, dict) and all(int_in(0, INT_MAX)(item) is None for item in value.values()):
        return None
    return "an object of whole numbers >= 0"


def fraction(value: Any) -> str | None:
    """A number from 0 to 1."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= 1:
        return None
    return "a number from 0 to 1"


_STAGE_FIELDS: dict[str, tuple[Check, bool]] = {
    "index": (int_in(0, MAX_CORES - 1), True),
    "first": (_name, True),
    "last": (_name, True),
    "units": (int_in(1, INT_MAX), True),
    "cost": (lambda value: None if isinstance(value, (int, float)) and not isinstance(value, bool)
             and math.isfinite(value) and value >= 0 else "a finite number >= 0", False),
    "param_bytes": (int_in(0, 2**53), False),
    "inputs": (lambda value: None if isinstance(value, list) and len(value) <= MAX_SIGNATURE and all(
        isinstance(shape, list) and len(shape) <= MAX_DIMS and all(_dimension(size) for size in shape)
        for shape in value) else "a list of shapes (lists of whole numbers >= 0 or null)", False),
}
"""The fields of one stage of a NeuronCore Pipeline partition: (check, required)."""

_PARTITION_FIELDS: dict[str, tuple[Check, bool]] = {
    "requested": (int_in(1, MAX_CORES), True),
    "stages": (lambda value: None if isinstance(value, list) and len(value) <= MAX_CORES
               else f"a list of at most {MAX_CORES} stages", True),
    "cost_basis": (text, False),
    "note": (text, False),
}


def _fields_problem(value: Any, fields: Mapping[str, tuple[Check, bool]], what: str) -> str | None:
    """What is wrong with an object of known ``fields`` (named ``what`` in the answer), or None."""
    if not isinstance(value, dict):
        return "an object"
    unknown = sorted(set(value) - set(fields))
    if unknown:
        return f"{what} with the fields {', '.join(fields)} only ({unknown[0]!r} is not one)"
    for name, (check, required) in fields.items():
        if name not in value:
            if required:
                return f"{what} with the field {name!r}"
            continue
        accepted = check(value[name])
        if accepted:
            return f"{what} whose {name} is {accepted} (not {_shown(value[name])})"
    return None


def _partition(value: Any) -> str | None:
    """``{}`` (the model runs whole) or ``{"requested": N, "stages": [...], "cost_basis", "note"}``."""
    if value == {}:
        return None
    problem = _fields_problem(value, _PARTITION_FIELDS, "an object")
    if problem:
        return f"{{}} or {problem}"
    for position, stage in enumerate(value["stages"]):
        problem = _fields_problem(stage, _STAGE_FIELDS, "an object")
        if problem:
            return f"{{}} or a partition whose stages are each {problem} (stage {position} is not)"
    return None


EXTRA_FIELDS: dict[str, Check] = {}
"""The typed keys of ``extra``, declared by the plugins that write them (:func:`declare_extra`)."""


def declare_extra(fields: Mapping[str, Check]) -> None:
    """A plugin's ``extra`` keys and how to check them (``text``, ``flag``, ``int_in(1, 8)``, ...).

    A manifest whose declared key holds something else is refused when it is read; keys
    nobody declared need only be finite JSON.
    """
    EXTRA_FIELDS.update(fields)


def _extra(value: Any) -> str | None:
    if not isinstance(value, dict):
        return "an object"
    for key, item in value.items():
        check = EXTRA_FIELDS.get(key, any_json)
        accepted = check(item)
        if accepted:
            return f"an object whose {key!r} is {accepted}"
    return None


FIELDS: dict[str, tuple[Check, bool]] = {
    "framework": (_name, True),
    "batch_size": (_optional(int_in(1, INT_MAX)), False),
    "batch_dim": (int_in(0, MAX_DIMS - 1), False),
    "inputs": (_signature, False),
    "outputs": (_signature, False),
    "pipeline_cores": (int_in(1, MAX_CORES), False),
    "dynamic_batching": (flag, False),
    "target": (text, False),
    "sha256": (_optional(_hex64), False),
    "compiler_args": (texts, False),
    "extra": (_extra, False),
    "format_version": (int_in(1, 2), False),
    "partition": (_partition, False),
    "seal": (_hex64, False),
}
"""Every field of a manifest: (its check, whether it is required)."""


def _shown(value: Any) -> str:
    import json

    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    text = text if len(text) <= 48 else text[:45] + "..."
    kinds = {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "a list",
             dict: "an object", type(None): "null"}
    return f"{text} ({kinds.get(type(value), type(value).__name__)})"


def manifest_problem(data: Any) -> str | None:
    """What is wrong with a parsed manifest (field, value, what is accepted), or None."""
    if not isinstance(data, dict):
        return f"it is {_shown(data)}, not a JSON object"
    unknown = sorted(set(data) - set(FIELDS))
    if unknown:
        return f"unknown field {unknown[0]!r}; accepted fields: {', '.join(FIELDS)}"
    for name, (check, required) in FIELDS.items():
        if name not in data:
            if required:
                return f"the required field {name!r} is missing"
            continue
        accepted = check(data[name])
        if accepted:
            return f"{name} is {_shown(data[name])}; accepted: {accepted}"
    if data.get("format_version", 1) >= 2 and "seal" not in data:
        return "the required field 'seal' is missing (a format 2 manifest is sealed)"
    return _consistency_problem(data)


NAMED_INPUTS = ("tensorflow", "mxnet")
"""Frameworks whose plugins feed inputs by name: their input entries must carry one."""


def _partition_problem(data: dict[str, Any]) -> str | None:
    """A partition agrees with ``pipeline_cores``: asked for that many stages, cut into none
    (uncut, with a note saying why) or 2 to that many, numbered in order, fewer explained."""
    partition = data.get("partition") or {}
    if not partition:
        return None
    cores, requested, stages = data.get("pipeline_cores", 1), partition["requested"], partition["stages"]
    if requested != cores:
        return f"partition.requested is {requested}, but pipeline_cores is {cores}"
    if len(stages) == 1 or len(stages) > cores:
        return (f"partition has {len(stages)} stage(s); accepted: none (the model runs whole) or 2 to "
                f"pipeline_cores ({cores})")
    misplaced = next((position for position, stage in enumerate(stages) if stage["index"] != position), None)
    if misplaced is not None:
        return f"partition.stages[{misplaced}] has index {stages[misplaced]['index']}; stages are numbered 0, 1, ... in order"
    if len(stages) < requested and not partition.get("note"):
        return (f"partition lists {len(stages)} stage(s) for {requested} pipeline cores but no note saying "
                "why; a model cut into fewer stages records why")
    return None


def _consistency_problem(data: dict[str, Any]) -> str | None:
    """Inputs are named where the framework needs it; the compiled batch and the first
    input's shape agree; a NeuronCore Pipeline partition agrees with ``pipeline_cores``."""
    problem = _partition_problem(data)
    if problem:
        return problem
    if data["framework"] in NAMED_INPUTS:
        unnamed = next((position for position, entry in enumerate(data.get("inputs") or []) if "name" not in entry), None)
        if unnamed is not None:
            return f"inputs[{unnamed}] has no name; {data['framework']} models take their inputs by name"
    batch, dim, inputs = data.get("batch_size"), data.get("batch_dim", 0), data.get("inputs") or []
    if batch is None or not inputs:
        return None
    shape = inputs[0]["shape"]
    if len(shape) <= dim:
        return f"batch_dim is {dim}, but the first input has only {len(shape)} dimension(s) ({shape})"
    if shape[dim] is not None and shape[dim] != batch:
        return f"batch_size is {batch}, but the first input's shape {shape} has {shape[dim]} along batch_dim {dim}"
    return None
