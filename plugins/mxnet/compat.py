"""mx-neuron names: ``mx.neuron(i)``, ``mx.contrib.neuron``, ``mx_neuron``, neuron ``bind``.

``mx.neuron(index)`` is a CPU context that carries a NeuronCore index; ``Symbol.bind`` (and
``simple_bind``, what ``mx.mod.Module`` uses) to such a context is
:func:`~ncrt.plugins.mxnet.model.bind`, and so is a bind of a symbol compiled by
``mx_neuron.compile`` to a CPU context (mx-neuron runs the compiled subgraph on a
NeuronCore whatever the context). Any other bind is MXNet's own, untouched; compiled
Gluon ``SymbolBlock`` calls run on the cores too (:mod:`~ncrt.plugins.mxnet.gluon`).
``mx_neuron`` (mx-neuron 1.8's module: ``import mx_neuron as neuron``) is a virtual module
with ``compile``; importing it imports and patches MXNet. :func:`enable` imports MXNet
(thread defaults first, then ``numpy.bool``) and patches it.
"""

from __future__ import annotations

import functools
from types import ModuleType, SimpleNamespace
from typing import Any

from ncrt.adapters.mxnet import _supply_numpy_bool
from ncrt.errors import BadInputError
from ncrt.imports import ModuleHook, install

from .compile import compile, compiled_manifest
from .execute import configure_thread_defaults, import_configured
from .gluon import patch_symbol_block
from .model import bind, simple_bind

__all__ = [
    "MXNET_HOOK",
    "MX_NEURON_HOOK",
    "enable",
    "install_import_patch",
    "is_neuron_context",
    "mx_neuron_module",
    "neuron",
    "patch_mxnet",
    "runs_on_cores",
]

MX_NEURON_VERSION = "1.8.0+ncrt"


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
    _wrap_bind(mx.sym.Symbol, "bind", bind)
    _wrap_bind(mx.sym.Symbol, "simple_bind", simple_bind)
    if hasattr(mx, "gluon"):
        patch_symbol_block(mx)
    return mx


def runs_on_cores(sym: Any, ctx: Any) -> bool:
    """A neuron context, or a compiled symbol bound to a CPU context (mx-neuron's compiled subgraph)."""
    if is_neuron_context(ctx):
        return True
    return getattr(ctx, "device_type", None) == "cpu" and compiled_manifest(sym) is not None


def _wrap_bind(symbol_class: type, name: str, neuron_bind: Any) -> None:
    original = getattr(symbol_class, name)
    if getattr(original, "_ncrt_neuron", False):
        return

    @functools.wraps(original)
    def neuron_aware_bind(self: Any, ctx: Any, *rest: Any, **kwargs: Any) -> Any:
        if runs_on_cores(self, ctx):
            return neuron_bind(self, ctx, *rest, **kwargs)
        return original(self, ctx, *rest, **kwargs)

    neuron_aware_bind._ncrt_neuron = True  # type: ignore[attr-defined]
    neuron_aware_bind._ncrt_original = original  # type: ignore[attr-defined]
    setattr(symbol_class, name, neuron_aware_bind)


def _prepare_import() -> None:
    """Right before MXNet executes: its thread settings and the ``numpy.bool`` it needs."""
    configure_thread_defaults()
    _supply_numpy_bool()


MXNET_HOOK = ModuleHook(prepare=_prepare_import, patch=patch_mxnet)
"""What happens to ``mxnet`` when it is imported: thread defaults and ``numpy.bool`` first,
the mx-neuron names after."""


_mx_neuron: ModuleType | None = None


def mx_neuron_module() -> ModuleType:
    """The virtual ``mx_neuron`` module: ``compile``, ``__version__``; imports and patches MXNet."""
    global _mx_neuron
    if _mx_neuron is None:
        enable()
        module = ModuleType("mx_neuron", "mx-neuron 1.8's API, served by ncrt")
        module.compile = compile  # type: ignore[attr-defined]
        module.__version__ = MX_NEURON_VERSION  # type: ignore[attr-defined]
        _mx_neuron = module
    return _mx_neuron


MX_NEURON_HOOK = ModuleHook(create=mx_neuron_module)
"""``import mx_neuron`` (mx-neuron 1.8's module name)."""


def install_import_patch() -> None:
    """Patch MXNet now if it is imported, else when it is (never importing it here)."""
    install({"mxnet": MXNET_HOOK, "mx_neuron": MX_NEURON_HOOK})


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
