"""PyTorch on ncrt: ``trace``, save/load with a manifest, core placement, and execution.

The torch-neuron API on NeuronCores of the ncrt runtime (seeds 000 and 001):

- :func:`trace` traces a model to TorchScript and records an ncrt manifest (compiled
  batch size, input/output signature, ``--neuroncore-pipeline-cores``); it returns a
  :class:`NeuronModule` that runs on cores when called. A compiled model has a fixed
  batch size unless traced with ``dynamic_batch_size=True``.
- ``torch.jit.save(neuron_module, path)`` keeps the manifest (TorchScript extra file
  ``ncrt-manifest.json``, plus a module attribute that survives any save); :func:`load`
  (or ``torch.jit.load`` after ``import ncrt.compat``) places the model at once.
- Placement rule: a model compiled for 1 core is replicated on ``min(4, cores)`` cores as
  one group (the Neuron default "4x1"); a pipeline model of N cores gets one group of N.
  Groups are the next free ones in load order; when none is free a model shares the
  least-shared group (``ModelSwitchWarning``). :func:`set_neuron_cores` and
  :func:`neuron_cores_context` choose the start core and the core count explicitly.
- :class:`~ncrt.plugins.torch_parallel.DataParallel` (seed 001) lives in ``torch_parallel``.

Importing this module does not import torch.
"""

from __future__ import annotations

import contextlib
import contextvars
import copy
import io
import os
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import IO, Any, Callable, Iterator, NamedTuple, Union

from ncrt.adapters.torch import ADAPTER, MANIFEST_EXTRA, manifest_text_in_archive, payload_sha256
from ncrt.batching import tensors_in
from ncrt.errors import BadInputError, FrameworkMissingError, ModelLoadError
from ncrt.executor import executor_core
from ncrt.hookspecs import hookimpl
from ncrt.manifest import Manifest, check_digest, parse_compiler_args
from ncrt.model import LoadedModel, Model
from ncrt.parallel import DataParallelRunner
from ncrt.placement import PlacementRequest
from ncrt.runtime import current_runtime, get_runtime

__all__ = [
    "DEFAULT_REPLICAS",
    "FRAMEWORK",
    "NeuronModule",
    "TorchCall",
    "TorchPayload",
    "check_inputs",
    "load",
    "manifest_of",
    "neuron_cores_context",
    "place_script",
    "placement_request",
    "save",
    "set_multicore",
    "set_neuron_cores",
    "trace",
]

FRAMEWORK = "torch"
MANIFEST_ATTRIBUTE = "ncrt_manifest"
DEFAULT_REPLICAS = 4  # a 1-core model is replicated on up to 4 cores ("4x1", seed 000)

FileLike = Union[str, os.PathLike, IO[bytes]]


def _torch() -> Any:
    try:
        import torch
    except ImportError:
        raise FrameworkMissingError("torch", "torch") from None
    return torch


# --- execution on a core ----------------------------------------------------------------


@dataclass
class TorchPayload:
    """What a torch Model carries: the ScriptModule and whether replicas share its weights."""

    module: Any
    shared_weights: bool = False

    def make_replica(self) -> Any:
        """The module a core runs: this one (shared weights) or a deep copy of its own."""
        return self.module if self.shared_weights else copy.deepcopy(self.module)


class TorchCall(NamedTuple):
    """One call's arguments as they travel to a core (a nest the batching code can split).

    ``LoadedModel(*args)`` of a torch model passes a plain tuple: positional arguments.
    """

    args: tuple
    kwargs: dict


_caller_threads: int | None = None
_cpu_locks: dict[int, threading.Lock] = {}
_cpu_locks_guard = threading.Lock()


def remember_caller_threads() -> None:
    """Fix the calling thread's intra-op thread count before executors change torch's default.

    ``torch.set_num_threads`` sets the calling thread's OpenMP/MKL count *and* the default
    that threads not yet initialised pick up; pinning the caller first keeps its count.
    """
    global _caller_threads
    if _caller_threads is None:
        _caller_threads = _torch().get_num_threads()


def pin_intra_op_threads(count: int) -> None:
    """Give the current (executor) thread ``count`` intra-op threads.

    Checked on every execution, not once per thread: ``torch.set_num_threads`` called in
    any other thread (the application's, or a library's) can change what this thread
    gets, and a replica running with the host's full count oversubscribes the CPUs.
    Comparing is cheap; setting happens only when the count has drifted.
    """
    torch = _torch()
    if torch.get_num_threads() != count:
        torch.set_num_threads(count)


@contextlib.contextmanager
def cpu_gate(cpus: tuple[int, ...]) -> Iterator[None]:
    """Hold the host CPUs backing a core, so cores that share CPUs take turns on them."""
    with _cpu_locks_guard:
        locks = [_cpu_locks.setdefault(cpu, threading.Lock()) for cpu in sorted(set(cpus))]
    for lock in locks:
        lock.acquire()
    try:
        yield
    finally:
        for lock in reversed(locks):
            lock.release()


@contextlib.contextmanager
def intra_op_threads(count: int) -> Iterator[None]:
    """Run with ``count`` intra-op threads: pinned for good in a core's executor thread,
    set and restored around the call in a caller's thread (the core runs idle-core calls inline)."""
    if executor_core() is not None:
        pin_intra_op_threads(count)
        yield
        return
    torch = _torch()
    previous = torch.get_num_threads()
    if previous != count:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        if previous != count:
            torch.set_num_threads(previous)


def _replica_cpus(model: Model, core: Any) -> tuple[int, ...]:
    runtime = current_runtime()
    width = model.manifest.pipeline_cores
    if runtime is None or width == 1:
        return tuple(core.cpus)
    cores = runtime.cores[core.index : core.index + width]
    return tuple(sorted({cpu for each in cores for cpu in each.cpus}))


@hookimpl
def ncrt_execute(model: Model, inputs: Any, core: Any) -> Any:
    """Run a torch model's replica for ``core`` with the intra-op threads of its CPUs."""
    if model.framework != FRAMEWORK:
        return None
    module = model.replica_for(core.index, model.payload.make_replica)
    args, kwargs = inputs if isinstance(inputs, TorchCall) else (tuple(inputs), {})
    cpus = _replica_cpus(model, core)
    with intra_op_threads(max(1, len(cpus))), cpu_gate(cpus), _torch().no_grad():
        return module(*args, **kwargs)


# --- manifest -------------------------------------------------------------------------------


def _signature(structure: Any) -> list[dict[str, Any]]:
    return [{"shape": list(t.shape), "dtype": str(t.dtype).replace("torch.", "")}
            for t in tensors_in(structure, ADAPTER)]


def _batch_eligible(inputs: list[dict[str, Any]], outputs: list[dict[str, Any]], batch: int) -> bool:
    """Dynamic batching needs every input and output to carry the batch on dim 0."""
    return bool(outputs) and all(spec["shape"][:1] == [batch] for spec in inputs + outputs)


def _build_manifest(args: tuple, outputs: Any, compiler_args: Any, dynamic_batch_size: bool) -> Manifest:
    options = parse_compiler_args(compiler_args)
    inputs = _signature(args)
    if not inputs or not inputs[0]["shape"]:
        raise BadInputError(
            "trace needs example inputs holding at least one tensor with a batch dimension; "
            f"got {type(args[0]).__name__ if args else 'nothing'}"
        )
    batch = inputs[0]["shape"][0]
    output_signature = _signature(outputs)
    return Manifest(
        framework=FRAMEWORK, batch_size=batch, batch_dim=0, inputs=inputs, outputs=output_signature,
        pipeline_cores=options["pipeline_cores"],
        dynamic_batching=_batch_eligible(inputs, output_signature, batch),
        compiler_args=options["args"],
        extra={"dynamic_batch_size": bool(dynamic_batch_size), "torch_version": _torch().__version__},
    )


def _attach_manifest(module: Any, manifest: Manifest) -> None:
    """Store the manifest inside the ScriptModule, so any save and load keeps it."""
    text = manifest.to_json()
    if module._c.hasattr(MANIFEST_ATTRIBUTE):
        module._c.setattr(MANIFEST_ATTRIBUTE, text)
    else:
        module._c._register_attribute(MANIFEST_ATTRIBUTE, _torch()._C.StringType.get(), text)


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

    With ``any_batch`` the size along ``dim`` may differ from the compiled one.
    """
    tensors = tensors_in(inputs, ADAPTER)
    if len(tensors) != len(manifest.inputs):
        raise BadInputError(
            f"the model was compiled for {len(manifest.inputs)} input tensor(s); got {len(tensors)}"
        )
    for position, (tensor, spec) in enumerate(zip(tensors, manifest.inputs)):
        _check_shape(position, tuple(tensor.shape), tuple(spec["shape"]), dim, any_batch)
    return int(tensors[0].shape[dim]) if tensors else 0


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


# --- placement --------------------------------------------------------------------------------

_cores_context: contextvars.ContextVar[tuple[int, int] | None] = contextvars.ContextVar(
    "ncrt_torch_cores", default=None
)


NCG_GROUPS_KEY = "ncg_groups"  # set by the ncg plugin under NEURONCORE_GROUP_SIZES


def placement_request(manifest: Manifest, core_count: int, start_nc: int = -1,
                      nc_count: int = -1, legacy_groups: bool = False) -> PlacementRequest:
    """The request for a torch model: ``nc_count`` cores from ``start_nc`` (-1: the default rule).

    Under legacy NeuronCore Groups (``legacy_groups``: the ncg plugin set
    ``config.extra["ncg_groups"]``) models fill the groups in load order, one model per
    group, so the default rule asks for a single replica and the ncg plugin picks the group.
    """
    width = manifest.pipeline_cores
    start = start_nc if start_nc >= 0 else None
    if nc_count < 0:
        room = core_count - (start or 0)
        replicas = max(1, min(DEFAULT_REPLICAS, room)) if width == 1 and not legacy_groups else 1
    elif nc_count == 0 or nc_count % width:
        raise BadInputError(
            f"nc_count={nc_count} cannot hold a model compiled for {width} NeuronCore(s); "
            f"accepted: -1 (default) or a positive multiple of {width}"
        )
    else:
        replicas = nc_count // width
    return PlacementRequest(cores_per_replica=width, replicas=replicas, start=start)


@contextlib.contextmanager
def neuron_cores_context(start_nc: int = -1, nc_count: int = -1) -> Iterator[None]:
    """Models created (traced, loaded) inside go on ``nc_count`` cores from ``start_nc``.

    Like torch-neuronx's ``experimental.neuron_cores_context``; -1 keeps the default rule.
    """
    token = _cores_context.set((start_nc, nc_count))
    try:
        yield
    finally:
        _cores_context.reset(token)


def set_neuron_cores(module: Any, start_nc: int = -1, nc_count: int = -1) -> NeuronModule:
    """Place ``module`` on ``nc_count`` cores starting at ``start_nc`` (now; replaces its placement)."""
    neuron = as_neuron_module(module)
    neuron.place((start_nc, nc_count))
    return neuron


def set_multicore(module: Any) -> NeuronModule:
    """Replicate ``module`` on every core of the process (as many whole replicas as fit)."""
    neuron = as_neuron_module(module)
    cores = len(get_runtime().cores)
    width = neuron.manifest.pipeline_cores
    return set_neuron_cores(neuron, 0, max(width, cores - cores % width))


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


# --- the compiled module ---------------------------------------------------------------------


class NeuronModule:
    """A compiled TorchScript model that runs on ncrt NeuronCores when called.

    Placed on first call (or at load, or by :func:`set_neuron_cores`); see the module
    docstring for the rule. ``torch.jit.save`` works on it and keeps the manifest.
    Attributes it does not define (``code``, ``graph``, ``state_dict``...) are the
    ScriptModule's.
    """

    def __init__(self, module: Any, manifest: Manifest, name: str) -> None:
        self.script_module = module
        self.manifest = manifest
        self.name = name
        self.cores_choice = _cores_context.get()
        self.loaded: LoadedModel | None = None
        self._runner: DataParallelRunner | None = None
        self._lock = threading.Lock()

    def to_model(self) -> Model:
        """A fresh runtime Model of this module (per-core weights per NEURON_RT_MULTI_INSTANCE_SHARED_WEIGHTS)."""
        shared = get_runtime().config.multi_instance_shared_weights
        return Model(self.name, FRAMEWORK, self.manifest, TorchPayload(self.script_module, shared))

    def place(self, cores: tuple[int, int] | None = None) -> LoadedModel:
        """Place the module (again): on ``(start_nc, nc_count)`` or by the default rule."""
        with self._lock:
            if self.loaded is not None and not self.loaded.unloaded:
                self.loaded.unload()
            choice = cores or self.cores_choice or _cores_context.get() or (-1, -1)
            remember_caller_threads()
            runtime = get_runtime()
            legacy = bool(runtime.config.extra.get(NCG_GROUPS_KEY))
            request = placement_request(self.manifest, len(runtime.cores), *choice, legacy_groups=legacy)
            self.loaded = runtime.place(self.to_model(), request)
            self._runner = DataParallelRunner(self.loaded, ADAPTER, dim=0, compiled_batch=self.manifest.batch_size)
            return self.loaded

    def placed(self) -> LoadedModel:
        """The current placement, made now if there is none yet."""
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
        loaded = self.placed()
        inputs = TorchCall(args, kwargs)
        size = check_inputs(self.manifest, inputs, 0, self.dynamic_batch_size)
        if size != self.manifest.batch_size and self._runner is not None:
            return self._runner(inputs)
        return loaded.run(inputs)

    forward = __call__

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
        return self

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
        if name.startswith("__") or "script_module" not in self.__dict__:
            raise AttributeError(name)
        return getattr(self.__dict__["script_module"], name)

    def __repr__(self) -> str:
        where = self.loaded.placement.label if self.loaded and not self.loaded.unloaded else "not placed yet"
        return f"<NeuronModule {self.name} batch={self.manifest.batch_size} on {where}>"


# --- trace, save, load ---------------------------------------------------------------------------


def trace(model: Any, example_inputs: Any, compiler_args: Any = None, *,
          dynamic_batch_size: bool = False, name: str | None = None, **trace_kwargs: Any) -> NeuronModule:
    """Compile ``model`` for ncrt NeuronCores, like ``torch.neuron.trace``.

    ``example_inputs``: a tensor or a tuple of positional arguments (tensors, nests of
    tensors). ``compiler_args``: neuron-cc arguments; ``--neuroncore-pipeline-cores N``
    sets the cores one replica needs. Extra keyword arguments go to ``torch.jit.trace``.
    """
    torch = _torch()
    remember_caller_threads()
    args = example_inputs if isinstance(example_inputs, tuple) else (example_inputs,)
    if not isinstance(model, torch.nn.Module):
        raise BadInputError(f"trace accepts a torch.nn.Module or a ScriptModule; got {type(model).__name__}")
    model.eval()
    trace_kwargs.setdefault("strict", False)
    trace_kwargs.setdefault("check_trace", False)
    with torch.no_grad():
        traced = model if isinstance(model, torch.jit.ScriptModule) else torch.jit.trace(model, args, **trace_kwargs)
        outputs = traced(*args)
    manifest = _build_manifest(args, outputs, compiler_args, dynamic_batch_size)
    _attach_manifest(traced, manifest)
    return NeuronModule(traced, manifest, name or type(model).__name__)


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
    neuron.place((start_nc, nc_count) if (start_nc, nc_count) != (-1, -1) else None)
    return neuron


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
    jit = _torch().jit
    return getattr(jit.load, "ncrt_original", jit.load)


# --- hooks ------------------------------------------------------------------------------------------


def _is_archive_path(artifact: Any) -> bool:
    return isinstance(artifact, (str, os.PathLike)) and Path(artifact).is_file()


@hookimpl
def ncrt_load(artifact: Any, config: Any) -> Model | None:
    """NeuronModules, ncrt-traced ScriptModules and ncrt TorchScript files are torch models."""
    if isinstance(artifact, NeuronModule):
        return artifact.to_model()
    if _is_archive_path(artifact) and manifest_text_in_archive(artifact) is not None:
        module, manifest, stem = load_script(artifact, validate_hash=config.validate_hash)
        payload = TorchPayload(module, config.multi_instance_shared_weights)
        return Model(stem, FRAMEWORK, manifest, payload) if manifest else None
    if "torch" in sys.modules and isinstance(artifact, sys.modules["torch"].jit.ScriptModule):
        manifest = manifest_of(artifact)
        if manifest is not None:
            payload = TorchPayload(artifact, config.multi_instance_shared_weights)
            return Model(artifact.original_name, FRAMEWORK, manifest, payload)
    return None


@hookimpl
def ncrt_read_manifest(path: str) -> Manifest | None:
    """The manifest of an ncrt TorchScript file, read from the archive without torch."""
    text = manifest_text_in_archive(path) if _is_archive_path(path) else None
    return Manifest.from_json(text, source=f"{path} ({MANIFEST_EXTRA})") if text is not None else None


@hookimpl
def ncrt_compat_modules() -> dict[str, Callable[[ModuleType | None], ModuleType | None]]:
    """``torch_neuron`` and ``torch.neuron``; ``torch.jit.load`` places ncrt models."""
    from ncrt.plugins.torch_compat import patch_torch, torch_neuron_module

    return {"torch_neuron": lambda _module: torch_neuron_module(), "torch": patch_torch}

