"""Forked children calling their parent's models get an error at once, never a hang.

A forked child holds none of its parent's NeuronCores, so running the parent's models
there would run them on cores the child does not hold, and its asynchronous calls would
wait for executor threads that do not exist in the child. Every such call raises
:class:`ncrt.errors.ForeignModelError` naming the model, the pid that loaded it and what
to do; a child that loads its own model runs it on its own cores.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import threading
import time

import pytest

import forkchildren
import ncrt
from ncrt.errors import ForeignModelError

pytestmark = pytest.mark.slow

AT_ONCE = 2.0  # seconds: far below the 30 s default timeout a hang would take


def in_forked_child(action) -> tuple[str, float]:
    """Run ``action()`` in an os.fork() child; its outcome text and how long it took."""
    readable, writable = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        started = time.monotonic()
        try:
            outcome = f"ran: {action()}"
        except BaseException as error:  # noqa: BLE001 - reported to the parent
            outcome = f"{type(error).__name__}: {error}"
        os.write(writable, f"{time.monotonic() - started:.3f} {outcome}".encode())
        os._exit(0)
    os.close(writable)
    with os.fdopen(readable, "rb") as pipe:
        text = pipe.read().decode()
    os.waitpid(pid, 0)
    seconds, _, outcome = text.partition(" ")
    return outcome, float(seconds)


@pytest.fixture
def parent_model(runtime_env):
    runtime = runtime_env(NCRT_INSTANCE_TYPE="inf1.xlarge", NEURON_RT_NUM_CORES="1")
    return runtime.load(forkchildren.double, name="resnet")


@pytest.mark.parametrize("call", [
    lambda model: model(3),
    lambda model: model.submit((3,)).result(),
    lambda model: model.run_many([(1,), (2,)]).result(),
    lambda model: model.run_many([(1,)], asynchronous=False).result(),
], ids=["sync", "async", "run_many", "run_many-sync"])
def test_a_forked_child_calling_its_parents_model_fails_at_once(parent_model, call):
    assert parent_model(3) == 6  # runners and workers exist in the parent before the fork
    outcome, seconds = in_forked_child(lambda: call(parent_model))
    assert seconds < AT_ONCE
    assert outcome.startswith("ForeignModelError: model 'resnet' was loaded by process "
                              f"{os.getpid()}, but this is process")
    assert "Load the model in the child" in outcome and "[NRT_INVALID_HANDLE]" in outcome
    assert parent_model(4) == 8  # the parent is untouched


def test_a_future_of_the_parent_waited_on_in_the_child_fails_at_once(parent_model):
    gate = threading.Event()
    with pytest.warns(ncrt.ModelSwitchWarning):
        slow = ncrt.get_runtime().load(lambda: gate.wait(10) and "done", device_ids=[0])
    pending = slow.submit(())
    outcome, seconds = in_forked_child(pending.result)
    assert seconds < AT_ONCE and outcome.startswith("ForeignModelError: this ExecutionFuture belongs")
    gate.set()
    assert pending.result() == "done"  # in the parent it completes as usual
    finished = parent_model.submit((5,))
    assert finished.result() == 10
    assert in_forked_child(finished.result)[0] == "ran: 10"  # a settled future is plain data


def test_a_forked_child_loads_its_own_model_on_its_own_cores(parent_model):
    parent_core = ncrt.get_runtime().cores[0].global_index
    outcome, seconds = in_forked_child(lambda: forkchildren.load_own_and_call(4))
    assert outcome.startswith("ran: ran: 8 on global cores [")
    assert f"[{parent_core}]" not in outcome


@pytest.mark.parametrize("how", ["sync", "async"])
def test_a_multiprocessing_fork_child_gets_the_error(parent_model, how):
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    child = context.Process(target=forkchildren.call_and_report, args=(parent_model, how, results))
    child.start()
    outcome, seconds = results.get(timeout=30)
    child.join(10)
    assert seconds < AT_ONCE and outcome.startswith("ForeignModelError: model 'resnet' was loaded by process")


def test_a_fork_pool_calling_a_global_model_gets_the_error(parent_model):
    forkchildren.MODEL = parent_model
    try:
        with multiprocessing.get_context("fork").Pool(2) as pool:
            outcomes = pool.map(forkchildren.call_global_model, [1, 2], chunksize=1)
    finally:
        forkchildren.MODEL = None
    assert all(outcome.startswith("ForeignModelError: model 'resnet'") for outcome in outcomes), outcomes


@pytest.mark.parametrize("method", ["forkserver", "spawn"])
def test_a_model_cannot_be_sent_to_another_process(parent_model, method):
    context = multiprocessing.get_context(method)
    child = context.Process(target=forkchildren.call_and_report, args=(parent_model, "sync", context.Queue()))
    with pytest.raises(ForeignModelError, match=r"'resnet' cannot be sent to another process \(pickled\)"):
        child.start()
    with pytest.raises(ForeignModelError):
        pickle.dumps(parent_model)


@pytest.mark.parametrize("method", ["forkserver", "spawn"])
def test_children_of_other_start_methods_load_their_own_models(parent_model, method):
    with multiprocessing.get_context(method).Pool(1) as pool:
        outcome = pool.apply(forkchildren.load_own_and_call, (5,))
    assert outcome.startswith("ran: 10 on global cores [")
