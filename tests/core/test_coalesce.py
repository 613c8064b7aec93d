"""Request coalescing (ncrt.coalesce): concurrent small requests joined into compiled batches."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

import ncrt
from ncrt import coalesce
from ncrt.adapters.numpy import ADAPTER as ops
from ncrt.errors import BadInputError, ExecTimeoutError, ExecutionError
from ncrt.parallel import DataParallelRunner

WEIGHTS = np.random.default_rng(0).normal(size=(6, 3)).astype(np.float32)


def affine(x):
    return x @ WEIGHTS + 1.0


class Gated:
    """A model compiled at ``batch`` rows that records every batch it runs; while
    ``gate`` is clear, its first call waits for it (keeping its core busy)."""

    def __init__(self, batch: int, fail_on_nan: bool = False, block_all: bool = False) -> None:
        self.batch = batch
        self.block_all = block_all
        self.gate = threading.Event()
        self.started = threading.Event()
        self.batches: list[np.ndarray] = []
        self.fail_on_nan = fail_on_nan

    def __call__(self, x):
        assert x.shape[0] == self.batch, f"got batch {x.shape[0]}"
        self.batches.append(x.copy())
        if not self.started.is_set() or self.block_all:
            self.started.set()
            self.gate.wait(30)
        if self.fail_on_nan and np.isnan(x).any():
            raise ValueError("a row holds NaN")
        return affine(x)


def place(runtime, fn, batch=8, replicas=1, **runner_options):
    model = ncrt.Model("affine", "python", ncrt.Manifest("python", batch_size=batch), fn)
    loaded = runtime.place(model, ncrt.PlacementRequest(replicas=replicas))
    return loaded, DataParallelRunner(loaded, ops, **runner_options)


def rows(count, seed):
    return np.random.default_rng(seed).normal(size=(count, 6)).astype(np.float32)


def wait_until(condition, seconds=10.0):
    end = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < end, "timed out waiting"
        time.sleep(0.002)


def start_busy(runner, model):
    """One request that runs at once and holds the core until ``model.gate`` is set."""
    first = rows(1, 99)
    box = {}
    thread = threading.Thread(target=lambda: box.setdefault("out", runner((first,))))
    thread.start()
    assert model.started.wait(10)
    return thread, first, box


def test_waiting_requests_of_many_callers_are_joined_into_one_execution(runtime_env):
    runtime = runtime_env(NEURON_RT_NUM_CORES="1")
    model = Gated(8)
    loaded, runner = place(runtime, model)
    busy, first, box = start_busy(runner, model)
    inputs = [rows(1, seed) for seed in range(7)]
    outputs: dict[int, np.ndarray] = {}

    def call(index):
        outputs[index] = runner((inputs[index],))

    callers = [threading.Thread(target=call, args=(index,)) for index in range(7)]
    for thread in callers:
        thread.start()
    wait_until(lambda: loaded.coalescer is not None and len(loaded.coalescer._pending) == 7)
    model.gate.set()
    for thread in [busy, *callers]:
        thread.join(10)
    np.testing.assert_allclose(box["out"], affine(first), rtol=1e-5)
    for index, x in enumerate(inputs):
        np.testing.assert_allclose(outputs[index], affine(x), rtol=1e-5)  # its own row back
    assert len(model.batches) == 2  # the first request alone, then the seven joined
    joined = model.batches[1]
    assert sorted(map(tuple, joined[:7].round(5))) == sorted(tuple(x[0].round(5)) for x in inputs)
    coalescer = loaded.coalescer
    assert coalescer.joined == 7 and coalescer.largest == 7


def test_one_callers_requests_keep_their_order_and_larger_ones_run_apart(runtime_env):
    runtime = runtime_env(NEURON_RT_NUM_CORES="1")
    model = Gated(4)
    loaded, runner = place(runtime, model, batch=4)
    busy, _, _ = start_busy(runner, model)
    inputs = [rows(1 + index % 3, seed=index) for index in range(6)]  # 12 rows: room under the in-flight limit
    futures = [runner.submit((x,)) for x in inputs]  # one thread, all asynchronous
    big = rows(9, seed=50)  # at least the limit: runs chunked, not coalesced
    big_future = runner.submit((big,))
    model.gate.set()
    busy.join(10)
    for x, future in zip(inputs, futures):
        np.testing.assert_allclose(future.result(), affine(x), rtol=1e-5)
    np.testing.assert_allclose(big_future.result(), affine(big), rtol=1e-5)
    assert loaded.coalescer.largest <= 4


def test_an_error_reaches_only_the_request_that_causes_it(runtime_env):
    runtime = runtime_env(NEURON_RT_NUM_CORES="1")
    model = Gated(8, fail_on_nan=True)
    loaded, runner = place(runtime, model)
    busy, _, _ = start_busy(runner, model)
    inputs = [rows(1, seed) for seed in range(5)]
    inputs[2][0, 3] = np.nan
    futures = [runner.submit((x,)) for x in inputs]
    model.gate.set()
    busy.join(10)
    for index, (x, future) in enumerate(zip(inputs, futures)):
        if index == 2:
            with pytest.raises(ExecutionError, match="a row holds NaN"):
                future.result()
        else:
            np.testing.assert_allclose(future.result(), affine(x), rtol=1e-5)


def test_requests_that_cannot_be_joined_run_apart(runtime_env):
    runtime = runtime_env(NEURON_RT_NUM_CORES="1")
    seen = []
    gate = threading.Event()

    def scaled(x, factor):
        seen.append((x.shape[0], factor))
        if len(seen) == 1:
            gate.wait(30)
        return x * factor

    model = ncrt.Model("scaled", "python", ncrt.Manifest("python", batch_size=4), scaled)
    loaded = runtime.place(model, ncrt.PlacementRequest(replicas=1))
    runner = DataParallelRunner(loaded, ops)
    first = threading.Thread(target=runner, args=((rows(1, 0), 1.0),))
    first.start()
    wait_until(lambda: len(seen) == 1)
    twos = [runner.submit((rows(1, seed), 2.0)) for seed in range(2)]
    three = runner.submit((rows(1, 7), 3.0))
    gate.set()
    first.join(10)
    np.testing.assert_allclose(three.result(), rows(1, 7) * 3.0)
    for seed, future in enumerate(twos):
        np.testing.assert_allclose(future.result(), rows(1, seed) * 2.0)
    assert sorted(factor for _, factor in seen) == [1.0, 2.0, 3.0]  # the two 2.0 requests joined


def test_requests_waiting_behind_a_runaway_time_out_within_the_timeout(runtime_env):
    runtime = runtime_env(NEURON_RT_NUM_CORES="1", NEURON_RT_EXEC_TIMEOUT="0.5")
    model = Gated(8, block_all=True)  # every call hangs until the gate opens
    loaded, runner = place(runtime, model)
    errors = []

    def runaway():
        try:
            runner((rows(1, 0),))
        except ExecTimeoutError as error:
            errors.append(error)

    thread = threading.Thread(target=runaway)
    thread.start()
    assert model.started.wait(10)
    start = time.monotonic()
    waiting = [runner.submit((rows(1, seed),)) for seed in (1, 2)]  # joined once the core is reset
    for future in waiting:
        with pytest.raises(ExecTimeoutError):
            future.result()
    assert time.monotonic() - start < 3.0
    thread.join(10)
    assert errors  # the runaway itself timed out first
    model.gate.set()
    model.block_all = False
    wait_until(lambda: not any(loaded.coalescer._busy))
    x = rows(2, 3)
    np.testing.assert_allclose(runner((x,)), affine(x), rtol=1e-5)  # the core stays usable


def test_a_queue_delay_joins_requests_that_arrive_within_it(runtime_env):
    runtime = runtime_env(NEURON_RT_NUM_CORES="1")
    calls = []

    def model(x):
        calls.append(x.shape[0])
        return affine(x)

    loaded, runner = place(runtime, model)
    coalesce.configure(loaded, max_delay_us=300_000)
    first = runner.submit((rows(1, 0),))
    time.sleep(0.05)
    second = runner.submit((rows(2, 1),))
    np.testing.assert_allclose(first.result(), affine(rows(1, 0)), rtol=1e-5)
    np.testing.assert_allclose(second.result(), affine(rows(2, 1)), rtol=1e-5)
    assert calls == [8] and loaded.coalescer.joined == 2  # one execution, three rows padded to 8


def test_max_batch_beyond_the_compiled_batch_joins_whole_compiled_batches(runtime_env):
    runtime = runtime_env(NEURON_RT_NUM_CORES="1", NCRT_COALESCE_MAX_BATCH="12")
    model = Gated(4)
    loaded, runner = place(runtime, model, batch=4)
    busy, _, _ = start_busy(runner, model)
    inputs = [rows(2, seed) for seed in range(5)]
    futures = [runner.submit((x,)) for x in inputs]
    model.gate.set()
    busy.join(10)
    for x, future in zip(inputs, futures):
        np.testing.assert_allclose(future.result(), affine(x), rtol=1e-5)
    assert loaded.coalescer.largest == 10 and all(len(b) == 4 for b in model.batches)


def test_settings_are_checked_and_coalescing_can_be_switched_off(runtime_env):
    runtime = runtime_env(NEURON_RT_NUM_CORES="1", NCRT_COALESCE="false")
    loaded, runner = place(runtime, affine)
    x = rows(3, 0)
    np.testing.assert_allclose(runner((x,)), affine(x), rtol=1e-5)
    assert loaded.coalescer is None
    with pytest.raises(BadInputError, match="max_batch=0 is not valid"):
        coalesce.configure(loaded, max_batch=0)
    with pytest.raises(BadInputError, match="max_delay_us=-1 is not valid"):
        coalesce.configure(loaded, max_delay_us=-1)
    with pytest.raises(BadInputError, match="cannot configure coalescing for a int"):
        coalesce.configure(3, enabled=True)
    assert coalesce.configure(loaded, enabled=True, max_batch=16).max_batch == 16
    np.testing.assert_allclose(runner((x,)), affine(x), rtol=1e-5)
    assert loaded.coalescer is not None
    with pytest.raises(ncrt.errors.ConfigError):
        runtime_env(NCRT_COALESCE_MAX_DELAY_US="-5")


def test_the_runner_delivers_each_joined_request_in_the_executing_thread(runtime_env):
    runtime = runtime_env(NEURON_RT_NUM_CORES="1")
    model = Gated(8)
    delivered_by = []

    def deliver(outputs):
        delivered_by.append(threading.current_thread().name)
        if np.isnan(outputs).any():
            raise ValueError("cannot deliver NaN")
        return ("delivered", outputs)

    loaded, runner = place(runtime, model, deliver=deliver)
    busy, _, _ = start_busy(runner, model)
    inputs = [rows(1, seed) for seed in range(4)]
    inputs[1] = np.full((1, 6), np.nan, dtype=np.float32)  # its outputs are NaN: delivering them fails
    futures = [runner.submit((x,)) for x in inputs]
    model.gate.set()
    busy.join(10)
    for index, (x, future) in enumerate(zip(inputs, futures)):
        if index == 1:
            with pytest.raises(ValueError, match="cannot deliver NaN"):
                future.result()  # only the request whose outputs could not be delivered
            continue
        tag, out = future.result()
        assert tag == "delivered"
        np.testing.assert_allclose(out, affine(x), rtol=1e-5)
    assert len(model.batches) == 2 and loaded.coalescer.joined == 4  # the four joined into one execution
    assert delivered_by == ["ncrt-nc0"] * 4  # by the core's thread (the first request ran at once: not delivered)
