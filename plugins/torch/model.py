"""The compiled torch model: :class:`NeuronModule`, its placement on cores, save and load.

A :class:`NeuronModule` wraps an ncrt-traced ScriptModule and its manifest and runs on
NeuronCores when called (placed on first call, at load, or by :func:`set_neuron_cores`).
``torch.jit.save(neuron_module, path)`` keeps the manifest (TorchScript extra file
``ncrt-manifest.json``, plus a module attribute that survives any save); :func:`load`
(or ``torch.jit.load`` after ``import ncrt.compat``) places the model at once.

Placement rule (torch-neuron's core-placement guide): each load puts one copy of the
model on the next free group of its compiled size, in load order; when none is free a
model shares the least-shared group (``ModelSwitchWarning``). :func:`set_neuron_cores`,
:func:`set_multicore` and the contexts of :mod:`~ncrt.plugins.torch.placement` choose the
start core and the core count explicitly.

A module owns its placement: when the application frees it (garbage collection), the
model is unloaded from its cores, as torch-neuron's destructor does (``nrt_unload``).
:class:`~ncrt.plugins.torch.DataParallel` takes a module's placement over
(:meth:`NeuronModule.adopt`). Importing this module does not import torch.
"""

from __future__ import annotations

import copy
import functools
import io
import os
import threading
import zipfile
import zlib
from pathlib import Path
from typing import IO, Any, Callable, Union

from ncrt import get_runtime
from ncrt.adapters.torch import ADAPTER, MANIFEST_EXTRA, manifest_text_in_archive, payload_sha256
from ncrt.batching import common_size, tensors_in
from ncrt.errors import BadInputError, ModelLoadError, unreadable_artifact
from ncrt.manifest import Manifest, check_digest
from ncrt.batching import map_structure
from ncrt.model import LoadedModel, Model, unload_when_freed
from ncrt.parallel import DataParallelRunner

from .execute import FRAMEWORK, TorchCall, TorchPayload, import_torch, remember_caller_threads, run_on_core
from .pipeline import stage_specs
from .placement import CoreChoice, cores_choice

__all__ = [
    "MANIFEST_ATTRIBUTE",
    "NeuronModule",
    "as_neuron_module",
    "attach_manifest",
    "check_inputs",
    "load",
    "load_script",
    "manifest_of",
    "place_script",
    "save",
    "set_multicore",
    "set_neuron_cores",
]

MANIFEST_ATTRIBUTE = "ncrt_manifest"

FileLike = Union[str, os.PathLike, IO[bytes]]


def attach_manifest(module: Any, manifest: Manifest) -> None:
    """Store the manifest inside the ScriptModule, so any save and load keeps it."""
    text = manifest.to_json()
    if module._c.hasattr(MANIFEST_ATTRIBUTE):
        module._c.setattr(MANIFEST_ATTRIBUTE, text)
    else:
        module._c._register_attribute(MANIFEST_ATTRIBUTE, import_torch()._C.StringType.get(), text)


def manifest_of(module: Any) -> Manifest | None:
    """The ncrt manifest of a NeuronModule or an ncrt-traced ScriptModule, else None."""
    if isinstance(module, NeuronModule):
        return module.manifest
    c_module = getattr(module, "_c", None)
    if c_module is None or not c_module.hasattr(MANIFEST_ATTRIBUTE):
        return None
    return Manifest.from_json(c_module.getattr(MANIFEST_ATTRIBUTE),
                              source=f"the {MANIFEST_ATTRIBUTE} attribute of {getattr(module, 'original_name', 'a module')}")


def check_inputs(manifest: Manifest, inputs: Any, dim: int, any_batch: bool) -> int:
    """Check the tensors of ``inputs`` against the compiled shapes; return the size along ``dim``.

    With ``any_batch`` the size along ``dim`` may differ from the compiled one, but must be
    the same for every tensor (the returned size is then what ``batch_size_of`` finds, so a
    runner given it need not walk the inputs again).
    """
    tensors = _input_tensors(inputs)
    if len(tensors) != len(manifest.inputs):
        raise BadInputError(
            f"the model was compiled for {len(manifest.inputs)} input tensor(s); got {len(tensors)}"
        )
    for position, (tensor, spec) in enumerate(zip(tensors, manifest.inputs)):
        _check_shape(position, tuple(tensor.shape), tuple(spec["shape"]), dim, any_batch)
    if any_batch and len(tensors) > 1:
        return common_size(tensors, ADAPTER, dim)  # free along dim: every tensor the same size there
    return int(tensors[0].shape[dim]) if tensors else 0


def _input_tensors(inputs: Any) -> list[Any]:
    """The tensors of a call, in order: its positional arguments when they are all tensors and
    there are no keyword arguments (the usual call: no walk through the nest), else every
    tensor of the nest."""
    if type(inputs) is TorchCall and not inputs.kwargs:
        tensor_class = import_torch().Tensor
        args = inputs.args
        if all([isinstance(arg, tensor_class) for arg in args]):
            return list(args)
    return tensors_in(inputs, ADAPTER)


def _check_shape(position: int, shape: tuple, compiled: tuple, dim: int, any_batch: bool) -> None:
    free = dim % len(compiled) if compiled and any_batch else None
    if len(shape) == len(compiled) and all(
        size == want for axis, (size, want) in enumerate(zip(shape, compiled)) if axis != free
    ):
        return
    if free is not None:
        accepted = f"that shape with any size along dim {dim}"
    else:
        accepted = ("exactly that shape (a compiled model has a fixed batch size: trace with "
                    "dynamic_batch_size=True, or use DataParallel, to run other batch sizes)")
    raise BadInputError(
        f"input tensor {position} has shape {shape}, but the model was compiled for {compiled}; "
        f"accepted: {accepted}"
    )


def set_neuron_cores(module: Any, start_nc: int = -1, nc_count: int = -1) -> NeuronModule:
    """Place ``module`` on ``nc_count`` cores from ``start_nc`` now, unloading it from where it was.

    torch-neuron's ``torch_neuron.experimental.set_neuron_cores``: -1 keeps the default
    rule; ``nc_count`` larger than the model replicates it ``floor(nc_count / size)`` times.
    """
    neuron = as_neuron_module(module)
    neuron.place(CoreChoice(start_nc, nc_count))
    return neuron


def set_multicore(module: Any) -> NeuronModule:
    """Replicate ``module`` on every core of the process (as many whole replicas as fit)."""
    neuron = as_neuron_module(module)
    neuron.place(CoreChoice(multicore=True))
    return neuron


def as_neuron_module(module: Any, name: str | None = None) -> NeuronModule:
    """A NeuronModule for a NeuronModule or an ncrt-traced ScriptModule."""
    if isinstance(module, NeuronModule):
        return module
    manifest = manifest_of(module)
    if manifest is None:
        raise BadInputError(
            f"{type(module).__name__} is not an ncrt-compiled torch model; accepted: the result of "
            "ncrt.plugins.torch.trace (torch.neuron.trace) or a model saved from it and loaded again"
        )
    return NeuronModule(module, manifest, name or getattr(module, "original_name", "model"))


@functools.lru_cache(maxsize=None)
def _module_class() -> type:
    """The class NeuronModule instances have: NeuronModule and ``torch.nn.Module`` (made on first use)."""
    torch = import_torch()

    def __init__(self: Any, module: Any, manifest: Manifest, name: str) -> None:
        torch.nn.Module.__init__(self)
        NeuronModule.__init__(self, module, manifest, name)

    namespace = {"__init__": __init__, "__module__": __name__, "__qualname__": "NeuronModule",
                 "__doc__": NeuronModule.__doc__}
    return type("NeuronModule", (NeuronModule, torch.nn.Module), namespace)


def _tracing() -> bool:
    return bool(import_torch().jit.is_tracing())


class NeuronModule:
    """A compiled TorchScript model that runs on ncrt NeuronCores when called.

    Placed on first call (or at load, or by :func:`set_neuron_cores`); see the module
    docstring for the rule. ``torch.jit.save`` works on it and keeps the manifest.

    An instance is a ``torch.nn.Module`` too (its class is made the first time one is
    created, so that importing ncrt does not import torch), as torch-neuron's compiled
    ScriptModule is: it can replace a submodule of a model (``model.layer1 =
    torch.neuron.trace(model.layer1, x)``), whose calls then run on the cores. Its one
    child is the traced ScriptModule (``script_module``); attributes it does not define
    (``code``, ``graph``...) are the ScriptModule's. Inside ``torch.jit.trace`` of a
    model holding it, it runs the ScriptModule in the tracing thread, so the trace
    records it, and ``torch.jit.script`` of such a model compiles the ScriptModule in its
    place; the TorchScript model either makes then runs on the host CPU, outside ncrt's
    cores (torch-neuron ran its Neuron parts through a TorchScript operator; ncrt has none).
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> NeuronModule:
        return super().__new__(_module_class() if cls is NeuronModule else cls)

    def __init__(self, module: Any, manifest: Manifest, name: str) -> None:
        self.script_module = module
        self.manifest = manifest
        self.name = name
        self.cores_choice = cores_choice()
        self.loaded: LoadedModel | None = None
        self._runner: DataParallelRunner | None = None
        self._finalizer: Any = None  # set while this module owns its placement
        self._half_inputs = "FLOAT32_TO_FLOAT16" in manifest.extra.get("optimizations", ())
        self._lock = threading.Lock()
        self._placing = threading.Lock()  # callers finding no placement: one of them places it

    def to_model(self) -> Model:
        """A fresh runtime Model of this module (per-core weights per NEURON_RT_MULTI_INSTANCE_SHARED_WEIGHTS)."""
        shared = get_runtime().config.multi_instance_shared_weights
        return Model(self.name, FRAMEWORK, self.manifest, TorchPayload(self.script_module, shared), runner=run_on_core,
                     stages=stage_specs(self.script_module, self.manifest, shared))

    def place(self, choice: CoreChoice | None = None) -> LoadedModel:
        """Place the module (again): by ``choice``, the context it was made in, or the default rule.

        A placement it owned is unloaded first; the new one is unloaded when the module
        is garbage-collected.
        """
        with self._lock:
            self._release()
            choice = choice or self.cores_choice or cores_choice() or CoreChoice()
            remember_caller_threads()
            runtime = get_runtime()
            loaded = runtime.place(self.to_model(), choice.request(self.manifest, len(runtime.cores)))
            self._use(loaded)
            self._finalizer = unload_when_freed(self, loaded)
            return loaded

    def adopt(self, loaded: LoadedModel) -> None:
        """Run on ``loaded``, placed by another owner (DataParallel), instead of a placement of its own.

        The module's own placement, if any, is unloaded. When the owner unloads
        ``loaded`` the module places itself again on its next call.
        """
        with self._lock:
            self._release()
            self._use(loaded)

    def unload(self) -> None:
        """Take the module off its cores now (if it owns its placement); it places itself again when called."""
        with self._lock:
            self._release()

    def _use(self, loaded: LoadedModel) -> None:
        self.loaded = loaded
        self._runner = DataParallelRunner(loaded, ADAPTER, dim=0, compiled_batch=self.manifest.batch_size)

    def _release(self) -> None:
        """Let go of the current placement, unloading it now if this module owns it."""
        finalizer, self._finalizer = self._finalizer, None
        if finalizer is not None and finalizer.detach() is not None and self.loaded is not None:
            self.loaded.unload()
        self.loaded = None
        self._runner = None

    def placed(self) -> LoadedModel:
        """The current placement, made now if there is none yet (or its owner let it go)."""
        loaded = self.loaded
        if loaded is not None and not loaded.runtime.closed:
            loaded.runtime.unload_freed()  # a DataParallel we ran on may have been freed
        if loaded is None or loaded.unloaded or loaded.runtime.closed:
            with self._placing:  # many threads' first calls at once: one placement, not one each
                loaded = self.loaded
                if loaded is None or loaded.unloaded or loaded.runtime.closed:
                    loaded = self.place()
        return loaded

    @property
    def placement_label(self) -> str:
        """Where the model runs, e.g. ``NC0-1`` (places it if needed)."""
        return self.placed().placement.label

    @property
    def dynamic_batch_size(self) -> bool:
        return bool(self.manifest.extra.get("dynamic_batch_size")) and self.manifest.dynamic_batching

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if _tracing():
            return import_torch().nn.Module.__call__(self, *args, **kwargs)  # scopes for the tracer
        return self._run(args, kwargs)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """Run on the cores (in a trace: the ScriptModule in this thread, so the trace records it)."""
        if _tracing():
            return self.script_module(*args, **kwargs)
        return self._run(args, kwargs)

    def _run(self, args: tuple, kwargs: dict[str, Any]) -> Any:
        loaded = self.placed()
        inputs = TorchCall(args, kwargs)
        if self._half_inputs:
            inputs = _float16_as_traced(inputs, self.manifest)
        dynamic = self.dynamic_batch_size
        size = check_inputs(self.manifest, inputs, 0, dynamic)
        runner = self._runner
        if runner is not None and dynamic and (size != self.manifest.batch_size or runner.coalescing_limit(size)):
            return runner(inputs, size)  # chunked and padded, or joined with other callers' requests
        return loaded.run(inputs)

    def to(self, device: Any) -> NeuronModule:
        """``"nc:N"``/``"neuron:N"``: place one replica on core N; ``"cpu"``: leave as is."""
        text = str(device)
        if text == "cpu":
            return self
        prefix, _, index = text.partition(":")
        if prefix not in ("nc", "neuron") or not (index.isascii() and index.isdigit()):
            raise BadInputError(f"cannot move a NeuronModule to {device!r}; accepted: 'nc:N', 'neuron:N', 'cpu'")
        return set_neuron_cores(self, int(index), self.manifest.pipeline_cores)

    def eval(self) -> NeuronModule:
        """Inference mode (a compiled model is always in it)."""
        return self.train(False)

    def __prepare_scriptable__(self) -> Any:
        """What ``torch.jit.script`` of a model holding this module compiles: the ScriptModule."""
        return self.script_module

    def __deepcopy__(self, memo: dict[int, Any]) -> NeuronModule:
        """A copy of the compiled model, not placed yet (it places itself on its first call)."""
        return NeuronModule(copy.deepcopy(self.script_module, memo), self.manifest, self.name)

    def save(self, f: FileLike, _extra_files: dict[str, Any] | None = None) -> None:
        """What ``torch.jit.save`` calls for a path: TorchScript plus the manifest extra file."""
        Path(f).write_bytes(self.save_to_buffer(_extra_files))

    def save_to_buffer(self, _extra_files: dict[str, Any] | None = None) -> bytes:
        """What ``torch.jit.save`` calls for a file object."""
        manifest = copy.deepcopy(self.manifest)
        manifest.sha256 = payload_sha256(self.script_module.save_to_buffer())
        extra = dict(_extra_files or {})
        extra[MANIFEST_EXTRA] = manifest.to_json()
        return self.script_module.save_to_buffer(_extra_files=extra)

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)  # torch.nn.Module's: its child, parameters, buffers
        except AttributeError:
            pass
        script = self.__dict__.get("_modules", {}).get("script_module")
        if name.startswith("__") or script is None:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        return getattr(script, name)

    def __repr__(self) -> str:
        where = self.loaded.placement.label if self.loaded and not self.loaded.unloaded else "not placed yet"
        return f"<NeuronModule {self.name} batch={self.manifest.batch_size} on {where}>"


def save(module: Any, f: FileLike) -> None:
    """Save a NeuronModule (or ncrt-traced ScriptModule) with its manifest; same as ``torch.jit.save``."""
    neuron = as_neuron_module(module)
    if isinstance(f, (str, os.PathLike)):
        neuron.save(f)
    else:
        f.write(neuron.save_to_buffer())


def _read_source(f: FileLike) -> tuple[Any, str]:
    if isinstance(f, (str, os.PathLike)):
        return f, Path(f).stem
    return io.BytesIO(f.read()), "model"


def load_script(f: FileLike, map_location: Any = None, validate_hash: bool | None = None,
                _extra_files: dict[str, Any] | None = None) -> tuple[Any, Manifest | None, str]:
    """``torch.jit.load`` that also reads the manifest and, for an ncrt model, checks its sha256.

    ``validate_hash=None`` asks the runtime (``NEURON_RT_VALIDATE_HASH``) once a manifest is found.
    """
    what = f"the TorchScript archive {f}" if isinstance(f, (str, os.PathLike)) else "a TorchScript archive"
    with unreadable_artifact(what, _RAW_ARCHIVE_ERRORS, _RESAVE):
        return _load_script(f, map_location, validate_hash, _extra_files)


# What zipfile, zlib and torch's PytorchStreamReader raise for a damaged archive.
_RAW_ARCHIVE_ERRORS = (RuntimeError, zipfile.BadZipFile, zlib.error, UnicodeDecodeError, EOFError)
_RESAVE = "accepted: a file written by torch.jit.save of an ncrt-traced model; trace and save it again"


def _load_script(f: FileLike, map_location: Any, validate_hash: bool | None,
                 _extra_files: dict[str, Any] | None) -> tuple[Any, Manifest | None, str]:
    source, name = _read_source(f)
    text = manifest_text_in_archive(source)
    origin = f"{f} ({MANIFEST_EXTRA})" if isinstance(f, (str, os.PathLike)) else "a TorchScript archive"
    manifest = Manifest.from_json(text, source=origin) if text is not None else None
    if manifest is not None and manifest.framework != FRAMEWORK:
        raise ModelLoadError(f"the ncrt manifest of {origin} names framework {manifest.framework!r}, but the "
                             "file is a TorchScript archive; recompile the model with ncrt")
    if manifest is not None and _validation_on(validate_hash):
        _verify(manifest, source)  # before torch reads a corrupted archive
    if hasattr(source, "seek"):
        source.seek(0)
    extra = dict(_extra_files or {})
    extra.setdefault(MANIFEST_EXTRA, "")
    module = _original_jit_load()(source, map_location, _extra_files=extra)
    if _extra_files is not None:
        _extra_files.update({key: extra[key] for key in _extra_files})
    manifest = manifest if manifest is not None else manifest_of(module)
    if text is None and manifest is not None and _validation_on(validate_hash):
        _verify(manifest, source)
    return module, manifest, name


def _validation_on(validate_hash: bool | None) -> bool:
    return get_runtime().config.validate_hash if validate_hash is None else validate_hash


def _verify(manifest: Manifest, source: Any) -> None:
    if hasattr(source, "seek"):
        source.seek(0)
    fix = "save it with torch.jit.save(neuron_module, ...) or ncrt.plugins.torch.save"
    check_digest(manifest, lambda: str(payload_sha256(source)), fix)


def place_script(module: Any, manifest: Manifest, name: str, start_nc: int = -1,
                 nc_count: int = -1) -> NeuronModule:
    """Wrap a loaded ScriptModule and place it now (the rule, or ``nc_count`` cores from ``start_nc``)."""
    neuron = NeuronModule(module, manifest, name)
    neuron.place(CoreChoice(start_nc, nc_count) if (start_nc, nc_count) != (-1, -1) else None)
    return neuron


def _float16_as_traced(inputs: Any, manifest: Manifest) -> Any:
    """float16 tensors where the model was traced with float32 ones, cast to float32.

    What ``torch_neuron.Optimization.FLOAT32_TO_FLOAT16`` lets a model accept.
    """
    torch = import_torch()
    compiled = iter(spec["dtype"] for spec in manifest.inputs)

    def cast(tensor: Any) -> Any:
        wanted = next(compiled, None)
        return tensor.float() if wanted == "float32" and tensor.dtype == torch.float16 else tensor

    return map_structure(cast, inputs, ADAPTER)


def load(f: FileLike, map_location: Any = None, *, start_nc: int = -1, nc_count: int = -1,
         name: str | None = None, _extra_files: dict[str, Any] | None = None) -> NeuronModule:
    """Load an ncrt-compiled TorchScript file and place it on cores (the rule, or the given ones)."""
    module, manifest, stem = load_script(f, map_location, None, _extra_files)
    if manifest is None:
        raise ModelLoadError(
            f"{f!r:.80} is a TorchScript model without an ncrt manifest; accepted: a model traced with "
            "ncrt.plugins.torch.trace (torch.neuron.trace) and saved with torch.jit.save"
        )
    return place_script(module, manifest, name or stem, start_nc, nc_count)


def _original_jit_load() -> Callable[..., Any]:
    jit = import_torch().jit
    return getattr(jit.load, "ncrt_original", jit.load)
