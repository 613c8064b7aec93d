"""Running a torch model on a core: the payload each core runs, its intra-op threads, the runner.

Each replica runs its own copy of the ScriptModule (or the one shared copy under
``NEURON_RT_MULTI_INSTANCE_SHARED_WEIGHTS``) with as many intra-op threads as its cores
have host CPUs, so replicas never oversubscribe the host. Importing this module does
not import torch.
"""

from __future__ import annotations

import contextlib
import copy
import threading
from dataclasses import dataclass
from typing import Any, Iterator, NamedTuple

from ncrt import current_runtime
from ncrt.errors import FrameworkMissingError
from ncrt.executor import executor_core
from ncrt.model import Model

__all__ = [
    "FRAMEWORK",
    "TorchCall",
    "TorchPayload",
    "import_torch",
    "intra_op_threads",
    "remember_caller_threads",
    "replica_cpus",
    "run_on_core",
]

FRAMEWORK = "torch"


def import_torch() -> Any:
    """``torch``, or FrameworkMissingError naming the pip extra."""
    try:
        import torch
    except ImportError:
        raise FrameworkMissingError("torch", "torch") from None
    return torch


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
_gates: dict[tuple[int, ...], list[threading.Lock]] = {}  # per set of CPUs: its locks, looked up once


def remember_caller_threads() -> None:
    """Fix the calling thread's intra-op thread count before executors change torch's default.

    ``torch.set_num_threads`` sets the calling thread's OpenMP/MKL count *and* the default
    that threads not yet initialised pick up; pinning the caller first keeps its count.
    """
    global _caller_threads
    if _caller_threads is None:
        _caller_threads = import_torch().get_num_threads()


def pin_intra_op_threads(count: int) -> None:
    """Give the current (executor) thread ``count`` intra-op threads.

    Checked on every execution, not once per thread: ``torch.set_num_threads`` called in
    any other thread (the application's, or a library's) can change what this thread
    gets, and a replica running with the host's full count oversubscribes the CPUs.
    Comparing is cheap; setting happens only when the count has drifted.
    """
    torch = import_torch()
    if torch.get_num_threads() != count:
        torch.set_num_threads(count)


def _gate_locks(cpus: tuple[int, ...]) -> list[threading.Lock]:
    """The locks of ``cpus``, in CPU order (so two holders of overlapping sets cannot deadlock):
    held through every execution, so cores that share host CPUs take turns on them."""
    locks = _gates.get(cpus)
    if locks is None:
        with _cpu_locks_guard:
            locks = [_cpu_locks.setdefault(cpu, threading.Lock()) for cpu in sorted(set(cpus))]
            _gates[cpus] = locks
    return locks


@contextlib.contextmanager
def intra_op_threads(count: int) -> Iterator[None]:
    """Run with ``count`` intra-op threads: pinned for good in a core's executor thread,
    set and restored around the call in a caller's thread (the core runs idle-core calls inline)."""
    if executor_core() is not None:
        pin_intra_op_threads(count)
        yield
        return
    torch = import_torch()
    previous = torch.get_num_threads()
    if previous != count:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        if previous != count:
            torch.set_num_threads(previous)


def replica_cpus(model: Model, core: Any) -> tuple[int, ...]:
    """The host CPUs of the cores ``model`` holds from ``core`` on (its compiled ``pipeline_cores``)."""
    runtime = current_runtime()
    width = model.manifest.pipeline_cores
    if runtime is None or width == 1:
        return tuple(core.cpus)
    cores = runtime.cores[core.index : core.index + width]
    return tuple(sorted({cpu for each in cores for cpu in each.cpus}))


def run_on_core(model: Model, inputs: Any, core: Any) -> Any:
    """The runner of torch models (and of each pipeline stage): the replica for ``core``,
    without gradients, holding the locks of its CPUs (cores that share host CPUs take turns
    on them) with as many intra-op threads: kept in a core's own thread, set and restored in
    any other (as :func:`intra_op_threads` does).

    Written out rather than as context managers: this is on every call's path, and the two
    generator-based context managers it replaced took 4.4 and 3.8 us a call on the 2-CPU
    host.
    """
    module = model.replica_for(core.index, model.payload.make_replica)
    args, kwargs = inputs if isinstance(inputs, TorchCall) else (tuple(inputs), {})
    cpus = replica_cpus(model, core)
    torch = import_torch()
    count = max(1, len(cpus))
    previous = torch.get_num_threads()
    if previous != count:
        torch.set_num_threads(count)
    if executor_core() is not None:
        previous = count  # a core's own thread keeps its count (pin_intra_op_threads)
    locks = _gate_locks(cpus)
    for lock in locks:
        lock.acquire()
    try:
        with torch.no_grad():
            return module(*args, **kwargs)
    finally:
        for lock in reversed(locks):
            lock.release()
        if previous != count:
            torch.set_num_threads(previous)
