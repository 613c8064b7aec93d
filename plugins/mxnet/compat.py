"""mx-neuron names on the real ``mxnet`` module: ``mx.neuron(i)``, ``mx.contrib.neuron``, neuron ``bind``.

``mx.neuron(index)`` is a CPU context that carries a NeuronCore index; ``Symbol.bind`` to
such a context is :func:`~ncrt.plugins.mxnet.model.bind`, and to any other context
MXNet's own, untouched. :func:`enable` imports MXNet (thread defaults first, then
``numpy.bool``) and patches it.
"""

from __future__ import annotations

import functools
from types import ModuleType, SimpleNamespace
from typing import Any

from ncrt.adapters.mxnet import _supply_numpy_bool
from ncrt.errors import BadInputError
from ncrt.imports import ModuleHook, install

from .compile import compile
from .execute import configure_thread_defaults, import_configured
from .model import bind

__all__ = ["MXNET_HOOK", "enable", "install_import_patch", "is_neuron_context", "neuron", "patch_mxnet"]


def enable() -> ModuleType:
    """Import MXNet (thread defaults first, then ``numpy.bool``), patch it, return it."""
    mx = import_configured()
    patch_mxnet(mx)
    return mx


def patch_mxnet(mx: ModuleType) -> ModuleType:
    """Give ``mx`` the mx-neuron names: ``mx.neuron``, ``mx.contrib.neuron``, neuron ``bind``.

    Idempotent. ``Symbol.bind`` keeps its exact behaviour for every non-neuron context.
    """
    mx.neuron = neuron
    contrib = getattr(mx, "contrib", None)
    if contrib is not None and not isinstance(getattr(contrib, "neuron", None), SimpleNamespace):
        contrib.neuron = SimpleNamespace(compile=compile, __doc__="mx-neuron compile API on ncrt")
    _wrap_bind(mx.sym.Symbol)
    return mx


def _wrap_bind(symbol_class: type) -> None:
    original = symbol_class.bind
    if getattr(original, "_ncrt_neuron", False):
        return

    @functools.wraps(original)
    def neuron_aware_bind(self: Any, ctx: Any, *rest: Any, **kwargs: Any) -> Any:
        if is_neuron_context(ctx):
            return bind(self, ctx, *rest, **kwargs)
        return original(self, ctx, *rest, **kwargs)

    neuron_aware_bind._ncrt_neuron = True  # type: ignore[attr-defined]
    neuron_aware_bind._ncrt_original = original  # type: ignore[attr-defined]
    symbol_class.bind = neuron_aware_bind


def _prepare_import() -> None:
    """Right before MXNet executes: its thread settings and the ``numpy.bool`` it needs."""
    configure_thread_defaults()
    _supply_numpy_bool()


MXNET_HOOK = ModuleHook(prepare=_prepare_import, patch=patch_mxnet)
"""What happens to ``mxnet`` when it is imported: thread defaults and ``numpy.bool`` first,
the mx-neuron names after."""


def install_import_patch() -> None:
    """Patch MXNet now if it is imported, else when it is (never importing it here)."""
    install({"mxnet": MXNET_HOOK})


_context_class: type | None = None


def _neuron_context_class() -> type:
    """``NeuronContext``: an ``mx.Context`` of type cpu that carries a NeuronCore index."""
    global _context_class
    if _context_class is None:
        mx = enable()

        class NeuronContext(mx.Context):
            """``mx.neuron(index)``: tensors made with it live on the host CPU."""

            def __init__(self, index: int) -> None:
                super().__init__("cpu", 0)
                self.neuron_index = index

            def __eq__(self, other: object) -> bool:
                return isinstance(other, NeuronContext) and other.neuron_index == self.neuron_index

            def __hash__(self) -> int:
                return hash(("neuron", self.neuron_index))

            def __repr__(self) -> str:
                return f"neuron({self.neuron_index})"

            def __str__(self) -> str:  # MXNet parses str(ctx) as a device: keep "cpu(0)"
                return super().__str__()

        _context_class = NeuronContext
    return _context_class


def neuron(index: int = 0) -> Any:
    """``mx.neuron(index)``: the context that places a bound model from NeuronCore ``index``."""
    if isinstance(index, bool) or not isinstance(index, int) or index < 0:
        raise BadInputError(
            f"mx.neuron({index!r}) is not valid; accepted: a NeuronCore index, a whole number >= 0"
        )
    return _neuron_context_class()(index)


def is_neuron_context(ctx: Any) -> bool:
    """Whether ``ctx`` came from ``mx.neuron(index)``."""
    return _context_class is not None and isinstance(ctx, _context_class)
