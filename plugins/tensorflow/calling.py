"""How tensorflow-neuron calls a model with its example inputs, and what a model may be.

The tracing API page: "When ``example_inputs`` is a ``tf.Tensor`` or a list of
``tf.Tensor`` objects, we expect ``func`` to have calling signature
``func(example_inputs)``. Otherwise ... ``func(*example_inputs)`` when ``example_inputs``
is a ``tuple``, or ``func(**example_inputs)`` when ``example_inputs`` is a ``dict``."
:class:`InputStructure` records which of these the examples were, so the traced model
calls the source the same way (no ``training=`` keyword: a subclassed ``tf.keras.Model``
whose ``__call__`` takes only the inputs works, and Keras layers default to inference).

A model may be a Keras 3 or tf-keras (Keras 2) model, a ``tf.function`` or Python
callable, a SavedModel signature (a ``ConcreteFunction`` taking keyword arguments only),
or an object restored by ``tf.saved_model.load`` (:func:`callable_of`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from ncrt.errors import BadInputError

__all__ = ["InputStructure", "callable_of", "check_call", "keyword_only_names", "structure_of"]

TENSOR, LIST, TUPLE, DICT = "tensor", "list", "tuple", "dict"


@dataclass(frozen=True)
class InputStructure:
    """The shape of ``example_inputs``: a tensor, a list, a tuple or a dict (with its keys)."""

    kind: str
    names: tuple[str, ...] = ()

    def flatten(self, example_inputs: Any) -> list[Any]:
        """The example tensors in order (dict values in key order)."""
        if self.kind == TENSOR:
            return [example_inputs]
        if self.kind == DICT:
            return [example_inputs[name] for name in self.names]
        return list(example_inputs)

    def call(self, func: Any, tensors: Sequence[Any]) -> Any:
        """Call ``func`` with ``tensors`` packed as the examples were."""
        if self.kind == TENSOR:
            return func(tensors[0])
        if self.kind == LIST:
            return func(list(tensors))
        if self.kind == TUPLE:
            return func(*tensors)
        return func(**dict(zip(self.names, tensors)))

    def input_names(self) -> list[str]:
        """The traced model's input names: the dict's keys, else ``input_0``, ``input_1``, ..."""
        return list(self.names) if self.names else ["input_0"]

    def to_record(self) -> dict[str, Any]:
        return {"kind": self.kind, "names": list(self.names)}

    @classmethod
    def from_record(cls, record: Mapping[str, Any] | None) -> InputStructure | None:
        return None if not record else cls(record["kind"], tuple(record.get("names", ())))


def structure_of(example_inputs: Any) -> InputStructure:
    """Which calling convention ``example_inputs`` asks for."""
    if isinstance(example_inputs, Mapping):
        if not example_inputs:
            raise BadInputError("example_inputs is an empty dict; accepted: a tensor, or a list/tuple/dict of tensors")
        return InputStructure(DICT, tuple(str(key) for key in example_inputs))
    if isinstance(example_inputs, list):
        return InputStructure(LIST, tuple(f"input_{i}" for i in range(len(example_inputs))))
    if isinstance(example_inputs, tuple):
        return InputStructure(TUPLE, tuple(f"input_{i}" for i in range(len(example_inputs))))
    return InputStructure(TENSOR)


def keyword_only_names(func: Any) -> list[str] | None:
    """The input names of a SavedModel signature (a ConcreteFunction of keyword arguments only)."""
    signature = getattr(func, "structured_input_signature", None)
    if not isinstance(signature, tuple) or len(signature) != 2:
        return None
    positional, keywords = signature
    if positional or not isinstance(keywords, Mapping) or not keywords:
        return None
    return list(keywords)


def check_call(func_or_model: Any, structure: InputStructure, count: int) -> None:
    """Refuse, before tracing, examples a keyword-only signature cannot take."""
    names = keyword_only_names(func_or_model)
    if names is None:
        return
    if structure.kind == DICT and set(structure.names) != set(names):
        raise BadInputError(f"the signature takes inputs {names}; the example dict has {list(structure.names)}")
    if structure.kind != DICT and count != len(names):
        raise BadInputError(
            f"the signature takes inputs {names} (keyword arguments); got {count} positional "
            "tensor(s): pass a dict of example inputs by name"
        )


def _signature_caller(func: Any, names: list[str]) -> Any:
    """Call a keyword-only signature with positional tensors or one tensor/list/tuple."""

    def call(*args: Any, **kwargs: Any) -> Any:
        if kwargs and not args:
            return func(**kwargs)
        values = list(args[0]) if len(args) == 1 and isinstance(args[0], (list, tuple)) else list(args)
        if len(values) != len(names):
            raise BadInputError(
                f"the signature takes inputs {names} (keyword arguments); got {len(values)} positional "
                "tensor(s): pass a dict of example inputs by name"
            )
        return func(**dict(zip(names, values)))

    return call


def callable_of(func_or_model: Any) -> Any:
    """What trace calls: the model itself, a keyword signature wrapped, a restored object's call.

    A ``tf.saved_model.load`` result is callable when it was saved with a ``__call__``
    (Keras models are); otherwise its ``serving_default`` signature is used.
    """
    names = keyword_only_names(func_or_model)
    if names is not None:
        return _signature_caller(func_or_model, names)
    if callable(func_or_model):
        return func_or_model
    signatures = getattr(func_or_model, "signatures", None)
    if signatures is not None and "serving_default" in signatures:
        serving = signatures["serving_default"]
        return _signature_caller(serving, keyword_only_names(serving) or [])
    raise BadInputError(
        f"trace needs a Keras model, a TensorFlow function, a SavedModel signature or a loaded SavedModel "
        f"with a serving_default signature; got {type(func_or_model).__name__}"
    )
