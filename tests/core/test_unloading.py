"""Unloading: explicit ``unload()``, and models unloaded when their framework object is freed."""

from __future__ import annotations

import gc
import json
import threading
import warnings
import weakref

import pytest

import ncrt
from ncrt import records
from ncrt.model import unload_when_freed


class Wrapper:
    """What a framework plugin hands the application: it owns one placement."""

    def __init__(self, runtime: ncrt.Runtime, name: str = "m") -> None:
        model = ncrt.Model(name, "python", ncrt.Manifest("python"), lambda x: x + 1)
        self.loaded = runtime.place(model, ncrt.PlacementRequest())
        self.finalizer = unload_when_freed(self, self.loaded)


def test_a_freed_wrapper_frees_its_cores_for_the_next_load(runtime_env):
    runtime = runtime_env(NCRT_INSTANCE_TYPE="inf1.xlarge")
    labels = []
    with warnings.catch_warnings():
        warnings.simplefilter("error", ncrt.ModelSwitchWarning)  # no warning names a dead model
        for _ in range(3):
            wrapper = Wrapper(runtime)
            labels.append(wrapper.loaded.placement.label)
            del wrapper
            gc.collect()
    assert labels == ["NC0", "NC0", "NC0"]
    assert runtime.models == []


def test_live_wrappers_keep_their_cores(runtime_env):
    runtime = runtime_env(NCRT_INSTANCE_TYPE="inf1.xlarge")
    kept = [Wrapper(runtime, f"m{i}") for i in range(2)]
    gc.collect()
    assert [w.loaded.placement.label for w in kept] == ["NC0", "NC1"]
    assert [m.name for m in runtime.models] == ["m0", "m1"]
    assert kept[1].loaded(1) == 2


def test_the_finalizer_does_not_keep_the_wrapper_alive(runtime_env):
    runtime = runtime_env()
    wrapper = Wrapper(runtime)
    loaded = wrapper.loaded
    reference = weakref.ref(wrapper)
    del wrapper
    assert reference() is None  # freed by reference counting alone: nothing in ncrt holds it
    assert not loaded.unloaded  # only queued: unloaded at the runtime's next placement
    assert runtime.models == [] and loaded.unloaded


def test_unload_fires_the_hook_once_and_is_idempotent(runtime_env):
    seen = []

    class Observer:
        @ncrt.hookimpl
        def ncrt_model_unloaded(self, loaded):
            seen.append(loaded.name)

    runtime = runtime_env()
    runtime.pm.register(Observer())
    wrapper = Wrapper(runtime, "observed")
    wrapper.loaded.unload()
    wrapper.loaded.unload()
    wrapper.finalizer()  # queues it again: unloading an unloaded model does nothing
    assert runtime.models == [] and seen == ["observed"]
    with pytest.raises(ncrt.errors.ModelLoadError, match="unloaded"):
        wrapper.loaded(1)


def test_a_detached_finalizer_leaves_the_model_placed(runtime_env):
    runtime = runtime_env()
    wrapper = Wrapper(runtime)
    loaded = wrapper.loaded
    wrapper.finalizer.detach()
    del wrapper
    gc.collect()
    assert runtime.models == [loaded]


def test_the_process_record_drops_an_unloaded_model(runtime_env):
    runtime = runtime_env()
    wrapper = Wrapper(runtime, "short-lived")
    path = runtime.state_dir / "procs" / f"{runtime.pid}.json"
    assert [m["name"] for m in json.loads(path.read_text())["models"]] == ["short-lived"]
    del wrapper
    assert runtime.describe()["models"] == []
    assert json.loads(path.read_text())["models"] == []


def test_unloading_while_a_record_is_being_written_does_not_deadlock(runtime_env):
    """A collection can run inside any ncrt code: the queued unloads are done re-entrantly.

    The first wrapper is freed before the write (the writer's own describe() unloads it,
    which publishes again from inside the write); the second dies while the writer holds
    its lock.
    """
    runtime = runtime_env()
    doomed = [Wrapper(runtime, "doomed")]
    early = Wrapper(runtime, "early")
    del early  # queued, not yet unloaded

    class FreesDuringPublish:
        @ncrt.hookimpl
        def ncrt_process_record(self, runtime, record):
            if doomed:
                doomed.pop()

    runtime.pm.register(FreesDuringPublish())
    worker = threading.Thread(target=records.publish, args=(runtime,), daemon=True)
    worker.start()
    worker.join(10)
    assert not worker.is_alive(), "publishing deadlocked"
    assert runtime.models == []


def test_a_placement_waits_for_freed_models_another_thread_is_unloading(runtime_env):
    """The stats thread describing the process may be unloading freed models (slowly, one
    process record each) while the application loads: the load still sees every freed core."""
    runtime = runtime_env(NCRT_INSTANCE_TYPE="inf1.6xlarge")
    old = [Wrapper(runtime, f"old{i}") for i in range(4)]
    assert [w.loaded.placement.label for w in old] == ["NC0", "NC1", "NC2", "NC3"]
    unloading, slow = threading.Event(), threading.Event()

    class SlowUnload:
        @ncrt.hookimpl
        def ncrt_model_unloaded(self, loaded):
            unloading.set()
            slow.wait(0.5)

    runtime.pm.register(SlowUnload())
    del old
    describer = threading.Thread(target=runtime.describe)  # what the stats thread does
    describer.start()
    assert unloading.wait(5)
    fresh = Wrapper(runtime, "fresh")  # while the describer is still unloading the old ones
    slow.set()
    describer.join()
    assert fresh.loaded.placement.label == "NC0"
    assert [m.name for m in runtime.models] == ["fresh"]
