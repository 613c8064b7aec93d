"""Models: what a plugin loads (:class:`Model`) and what the runtime places (:class:`LoadedModel`)."""

from __future__ import annotations

import itertools
import threading
import weakref
from typing import TYPE_CHECKING, Any, Callable, Sequence

from .manifest import Manifest
from .pipeline import build_pipelines

if TYPE_CHECKING:
    from .coalesce import CoalesceSettings, Coalescer
    from .executor import ExecutionFuture
    from .pipeline import FusedRunner, StagePipeline, StageSpec
    from .placement import Placement
    from .runtime import LocalCore, Runtime

__all__ = ["Model", "LoadedModel", "Runner", "call_payload", "unload_when_freed"]

Runner = Callable[["Model", Any, "LocalCore"], Any]
"""How a plugin runs its model on one core: ``runner(model, inputs, core) -> outputs``."""

_serial = itertools.count(1)


def call_payload(model: Model, inputs: Any, core: LocalCore) -> Any:
    """The default runner: the payload is a callable taking the positional inputs."""
    return model.payload(*inputs)


class Model:
    """A model as its plugin loaded it, before placement.

    ``payload`` is the framework object (a ScriptModule, a SavedModel function, an MXNet
    symbol and parameters, a callable). ``replicas`` is the plugin's own per-core state
    (keyed by per-process core index). ``inline``: synchronous calls may run outside the
    core's own executor thread, on the caller's runner (set it False for framework objects
    that must only ever be touched by the thread that made them; a core runs one job at a
    time, so objects that merely must not be used by two threads at once need not).

    ``runner(model, inputs, core)`` runs the model on one core, in that core's executor
    thread (or on the caller's runner): the loading plugin hands it over with the model,
    so the runtime never asks the plugins again on the per-call path. The default,
    :func:`call_payload`, calls the payload with the positional inputs.

    ``stages``: a model compiled for NeuronCore Pipeline hands over its stages too
    (:class:`ncrt.pipeline.StageSpec`, one per core of a replica); placed on enough cores,
    its calls then stream through them (:mod:`ncrt.pipeline`) instead of running whole.
    ``fused`` (optional, with ``stages``): how to run the stages as one execution of the
    whole model, with the stages' own per-core state (:data:`ncrt.pipeline.FusedRunner`):
    a synchronous call that finds its replica's pipeline idle then runs fused, holding
    every core of the replica, instead of handing its data from stage to stage.
    """

    def __init__(self, name: str, framework: str, manifest: Manifest, payload: Any, *,
                 runner: Runner | None = None, inline: bool = True,
                 stages: Sequence[StageSpec] | None = None, fused: FusedRunner | None = None) -> None:
        self.serial = next(_serial)
        self.name = name
        self.framework = framework
        self.manifest = manifest
        self.payload = payload
        self.replicas: dict[int, Any] = {}
        self.replica_lock = threading.Lock()
        self.inline = inline
        self.runner = runner or call_payload
        self.stages = list(stages) if stages else None
        self.fused = fused if self.stages else None

    @property
    def name(self) -> str:
        return self._name

    @name.setter
    def name(self, name: str) -> None:
        self._name = name
        self.uid = f"{name}#{self.serial}"  # unique in the process; kept in step with the name

    def copy(self) -> Model:
        """A new model of the same payload and runner (placed separately: a new uid)."""
        return Model(self.name, self.framework, self.manifest, self.payload, runner=self.runner,
                     inline=self.inline, stages=self.stages, fused=self.fused)

    def replica_for(self, core: int, make: Any) -> Any:
        """The per-core instance for ``core``, made once with ``make()``."""
        instance = self.replicas.get(core)
        if instance is None:
            with self.replica_lock:
                instance = self.replicas.get(core)
                if instance is None:
                    instance = self.replicas[core] = make()
        return instance

    def __repr__(self) -> str:
        return f"<Model {self.uid} {self.framework} pipeline_cores={self.manifest.pipeline_cores}>"


class LoadedModel:
    """A model placed on cores; call it (or ``run``/``submit``) to execute it there.

    Calls go to the least-loaded replica (round-robin among equals). ``run`` blocks,
    ``submit`` returns an :class:`ExecutionFuture`; ``run_many`` executes several calls
    as one job on one replica. ``pipelines``: for a model with stages, one
    :class:`~ncrt.pipeline.StagePipeline` per replica (``None``: it runs whole).
    """

    def __init__(self, runtime: Runtime, model: Model, placement: Placement) -> None:
        self.runtime = runtime
        self.model = model
        self.placement = placement
        self.replicas: list[tuple[LocalCore, ...]] = [
            tuple(runtime.cores[index] for index in replica) for replica in placement.replicas
        ]
        self.outstanding = [0] * len(self.replicas)
        self._next = itertools.count()
        self._lock = threading.Lock()
        self.unloaded = False
        self.pipelines: list[StagePipeline] | None = build_pipelines(runtime, model, self.replicas)
        self.coalescing: CoalesceSettings | None = None  # None: the runtime's (NCRT_COALESCE*)
        self.coalescer: Coalescer | None = None  # made by the first data-parallel runner that needs one

    @property
    def name(self) -> str:
        return self.model.name

    @property
    def manifest(self) -> Manifest:
        return self.model.manifest

    @property
    def cores(self) -> tuple[int, ...]:
        return self.placement.cores

    def acquire_replica(self, replica: int | None = None) -> int:
        """Count a job on ``replica``, or on the least-loaded one (rotating among ties)."""
        if len(self.replicas) == 1:
            return 0  # nothing to choose: no bookkeeping on the single-replica path
        with self._lock:
            if replica is None:
                count = len(self.replicas)
                first = next(self._next) % count
                order = [(first + step) % count for step in range(count)]
                replica = min(order, key=self.outstanding.__getitem__)
            self.outstanding[replica] += 1
        return replica

    def release_replica(self, replica: int) -> None:
        if len(self.replicas) == 1:
            return
        with self._lock:
            self.outstanding[replica] -= 1

    def submit(self, inputs: Any, replica: int | None = None) -> ExecutionFuture:
        return self.runtime.submit(self, (inputs,), replica, single=True, is_async=True)

    def run(self, inputs: Any, replica: int | None = None) -> Any:
        return self.runtime.submit(self, (inputs,), replica).result()

    def run_many(self, calls: Sequence[Any], replica: int | None = None, *,
                 asynchronous: bool = True) -> ExecutionFuture:
        """Several calls as one job on one replica; outputs come back as a list.

        ``asynchronous=False`` makes it a synchronous job: on idle cores it runs on the
        calling thread's runner (see :mod:`ncrt.executor`) instead of the core's queue.
        """
        return self.runtime.submit(self, calls, replica, single=False, is_async=asynchronous)

    def __call__(self, *args: Any) -> Any:
        return self.run(args)

    def unload(self) -> None:
        """Take the model off its cores now (``nrt_unload``); a second call does nothing."""
        self.runtime.unload(self)

    def unload_later(self) -> None:
        """Ask the runtime to unload the model at its next placement or description.

        Safe anywhere, a garbage-collector callback included: it only queues the model
        (no lock is taken, no hook is called), so it cannot deadlock whatever the thread
        was doing when the collector ran.
        """
        self.runtime.unload_later(self)

    def __reduce__(self) -> Any:
        from .errors import ForeignModelError

        raise ForeignModelError(
            f"model {self.name!r} cannot be sent to another process (pickled): it runs on the "
            f"NeuronCores of process {self.runtime.pid}, which loaded it. Load the model in the "
            "process that runs it"
        )

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "uid": self.model.uid,
            "framework": self.model.framework,
            "cores": list(self.cores),
            "global_cores": [self.runtime.cores[c].global_index for c in self.cores],
            "cores_per_replica": self.placement.cores_per_replica,
            "replicas": len(self.replicas),
            "label": self.placement.label,
            **self._describe_stages(),
        }

    def _describe_stages(self) -> dict[str, Any]:
        """Each stage's core and counters, for a pipelined model (nothing otherwise)."""
        if not self.pipelines:
            return {}
        return {"pipeline_stages": len(self.pipelines[0].stages),
                "stages": [entry for replica, pipeline in enumerate(self.pipelines)
                           for entry in pipeline.describe(replica)]}

    def __repr__(self) -> str:
        return f"<LoadedModel {self.model.uid} on {self.placement.label}>"


def unload_when_freed(owner: object, loaded: LoadedModel) -> weakref.finalize:
    """Unload ``loaded`` once ``owner``, the framework's model object, is garbage-collected.

    The Neuron frameworks unload a model from its cores (``nrt_unload``) when the framework
    frees it; a plugin calls this right after placing the model its wrapper runs::

        self.loaded = runtime.place(model, request)
        self._finalizer = unload_when_freed(self, self.loaded)

    The callback holds ``loaded`` only, never ``owner`` (a callback that referenced the
    wrapper would keep it alive for ever), and it only queues the model
    (:meth:`LoadedModel.unload_later`): the runtime takes it off its cores before its next
    placement, so the cores count as free again and no warning names the dead model.
    Nothing runs at interpreter exit (the runtime releases every core then anyway).
    The returned finalizer can be ``detach()``-ed when the owner hands its placement
    over, or called to unload at once.
    """
    finalizer = weakref.finalize(owner, loaded.unload_later)
    finalizer.atexit = False
    return finalizer
