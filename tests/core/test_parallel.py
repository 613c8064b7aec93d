"""Batch splitting and the data-parallel runner, with NumPy models."""

from __future__ import annotations

import threading
from collections import namedtuple

import numpy as np
import pytest

import ncrt
from ncrt.adapters.numpy import ADAPTER as ops
from ncrt.batching import batch_size_of, chunk_bounds, even_bounds, flatten, gather, join_flat, map_structure, scatter
from ncrt.errors import BadInputError
from ncrt.parallel import DataParallelRunner

Pair = namedtuple("Pair", "left right")
WEIGHTS = np.random.default_rng(0).normal(size=(6, 3)).astype(np.float32)


def affine(x):
    return x @ WEIGHTS + 1.0


def compiled(fn, batch):
    return ncrt.Model("affine", "python", ncrt.Manifest("python", batch_size=batch), fn)


def checked(batch):
    """A model that, like a compiled NEFF, accepts exactly its compiled batch size."""
    def run(x):
        assert x.shape[0] == batch, f"got batch {x.shape[0]}"
        return affine(x)
    return run


def test_chunk_and_even_bounds():
    assert chunk_bounds(7, 3) == [(0, 3), (3, 3), (6, 1)]
    assert even_bounds(7, 3) == [(0, 3), (3, 2), (5, 2)]
    assert even_bounds(2, 4) == [(0, 1), (1, 1)]


def test_scatter_and_gather_keep_every_container_and_key():
    x = np.arange(20.0).reshape(10, 2)
    nested = {"a": x, "b": [x, (x, "tag")], "c": Pair(x, 3), "d": 7}
    parts = scatter(nested, ops, 0, chunk_bounds(10, 4))
    assert [p["a"].shape[0] for p in parts] == [4, 4, 2]
    assert set(parts[0]) == {"a", "b", "c", "d"}
    assert parts[2]["b"][1][1] == "tag" and parts[1]["d"] == 7
    joined = gather(parts, ops, 0)
    np.testing.assert_array_equal(joined["b"][1][0], x)
    assert isinstance(joined["c"], Pair)
    np.testing.assert_array_equal(joined["c"].left, x)


def test_flatten_walks_a_nest_once_and_its_layout_rebuilds_it():
    x, y = np.zeros((2, 1)), np.ones((2, 3))
    nested = [{"a": x, "b": Pair(y, "tag")}, (x,), 5]
    tensors, layout = flatten(nested, ops)
    assert [t.shape for t in tensors] == [(2, 1), (2, 3), (2, 1)] and layout.count == 3
    rebuilt = layout.build([t + 1 for t in tensors])
    assert isinstance(rebuilt[0]["b"], Pair) and rebuilt[0]["b"].right == "tag" and rebuilt[2] == 5
    assert type(rebuilt[1]) is tuple and list(rebuilt[0]) == ["a", "b"]
    np.testing.assert_array_equal(rebuilt[0]["b"].left, y + 1)
    same = flatten([{"a": y, "b": Pair(x, "tag")}, (y,), 5], ops)[1]
    assert same.key == layout.key  # the containers and the non-tensor values, not the shapes
    for other in ([{"a": x, "c": Pair(y, "tag")}, (x,), 5], [{"a": x, "b": Pair(y, "other")}, (x,), 5],
                  [{"a": x, "b": (y, "tag")}, (x,), 5], [{"a": x, "b": Pair(y, "tag")}, [x], 5]):
        assert flatten(other, ops)[1].key != layout.key
    with pytest.raises(BadInputError, match="nest of 3 tensor"):
        layout.build(tensors[:2])
    assert flatten(nested, ops)[1] is not layout  # a nest holding non-tensor values: laid out on its own
    plain = flatten(({"a": x}, [x, y]), ops)[1]
    assert flatten(({"a": y}, [y, x]), ops)[1] is plain  # tensors only: one layout per shape of nest
    for name in (True, 1):  # equal dict keys of two types: each nest keeps its own
        assert [type(key) for key in flatten({name: x}, ops)[1].build([y])] == [type(name)]
    joined = join_flat([[x, x], [y, y], [x, x]], layout, ops, 0)
    assert joined[0]["b"].left.shape == (4, 3) and joined[1][0].shape == (4, 1)


def test_scatter_pads_short_chunks_and_gather_trims_them():
    x = np.arange(5.0).reshape(5, 1)
    bounds = chunk_bounds(5, 2)
    parts = scatter(x, ops, 0, bounds, pad_to=2)
    assert [p.shape[0] for p in parts] == [2, 2, 2]
    assert parts[-1].tolist() == [[4.0], [4.0]]
    np.testing.assert_array_equal(gather(parts, ops, 0, [n for _, n in bounds]), x)


def test_batch_size_must_agree():
    with pytest.raises(BadInputError, match=r"disagree on their size along dim 0: \[2, 3\]"):
        batch_size_of((np.zeros((2, 1)), np.zeros((3, 1))), ops, 0)
    with pytest.raises(BadInputError, match="no tensor"):
        batch_size_of(("text", 3), ops, 0)
    with pytest.raises(BadInputError, match="dim 3"):
        batch_size_of(np.zeros((2, 2)), ops, 3)


def test_map_structure_leaves_non_tensors():
    assert map_structure(lambda t: t * 0, ("x", 1, None), ops) == ("x", 1, None)


@pytest.mark.parametrize("batch", [1, 2, 7, 13, 64])
def test_dynamic_batching_equals_the_model_on_any_batch(runtime_env, batch):
    runtime = runtime_env(NCRT_INSTANCE_TYPE="inf1.xlarge")
    loaded = runtime.place(compiled(checked(2), 2), ncrt.PlacementRequest(replicas=4))
    runner = DataParallelRunner(loaded, ops)
    x = np.random.default_rng(batch).normal(size=(batch, 6)).astype(np.float32)
    out = runner((x,))
    np.testing.assert_allclose(out, affine(x), rtol=1e-6)


def test_varying_batch_sizes_call_after_call(runtime_env):
    runtime = runtime_env(NCRT_INSTANCE_TYPE="inf1.xlarge")
    runner = DataParallelRunner(runtime.place(compiled(checked(1), 1), ncrt.PlacementRequest(replicas=4)), ops)
    for batch in (2, 3, 4, 5, 6, 1, 9):
        x = np.ones((batch, 6), np.float32) * batch
        np.testing.assert_allclose(runner((x,)), affine(x), rtol=1e-6)


def test_chunks_are_dealt_to_every_replica(runtime_env):
    runtime = runtime_env(NCRT_INSTANCE_TYPE="inf1.xlarge")
    loaded = runtime.place(compiled(checked(1), 1), ncrt.PlacementRequest(replicas=4))
    DataParallelRunner(loaded, ops)((np.ones((8, 6), np.float32),))
    assert [runtime.counters[i].executions for i in range(4)] == [2, 2, 2, 2]


def test_static_batching_requires_replicas_times_compiled_batch(runtime_env):
    runtime = runtime_env(NCRT_INSTANCE_TYPE="inf1.xlarge")
    loaded = runtime.place(compiled(checked(1), 1), ncrt.PlacementRequest(replicas=4))
    runner = DataParallelRunner(loaded, ops, dynamic=False)
    x = np.ones((4, 6), np.float32)
    np.testing.assert_allclose(runner((x,)), affine(x), rtol=1e-6)
    with pytest.raises(BadInputError, match=r"got 8 / 4 = 2, compiled batch size is 1"):
        runner((np.ones((8, 6), np.float32),))


def test_static_batching_along_another_dim(runtime_env):
    runtime = runtime_env(NCRT_INSTANCE_TYPE="inf1.xlarge")
    loaded = runtime.place(compiled(lambda x: x + 1, 8), ncrt.PlacementRequest(replicas=4))
    runner = DataParallelRunner(loaded, ops, dim=2, dynamic=False)
    x = np.random.default_rng(1).normal(size=(1, 3, 32, 8))
    np.testing.assert_allclose(runner((x,)), x + 1)


def test_replicas_run_at_the_same_time(runtime_env):
    import threading

    runtime = runtime_env(NCRT_INSTANCE_TYPE="inf1.xlarge", NEURON_RT_NUM_CORES="2")
    barrier = threading.Barrier(2, timeout=5)

    def meet(x):
        barrier.wait()  # deadlocks (BrokenBarrierError) unless both replicas run at once
        return x

    loaded = runtime.place(compiled(meet, 1), ncrt.PlacementRequest(replicas=2))
    x = np.arange(2.0).reshape(2, 1)
    np.testing.assert_array_equal(DataParallelRunner(loaded, ops)((x,)), x)


def test_executor_core_tells_executor_threads_apart():
    from ncrt.executor import executor_core

    runtime = ncrt.get_runtime()
    model = runtime.load(lambda: executor_core())
    assert model() is None  # inline, in this thread
    future = model.submit(())
    done = threading.Event()
    future.add_done_callback(lambda _: done.set())  # unattended: the core's own thread runs it
    assert done.wait(5) and future.result() == 0
