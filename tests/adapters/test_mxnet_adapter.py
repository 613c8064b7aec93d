"""The MXNet adapter: the numpy.bool alias, the tensor contract, header calls, parameter digests."""

from __future__ import annotations

import ctypes
import subprocess
import textwrap

import numpy as np
import pytest

import ncrt.adapters.mxnet as mxnet_adapter

IMPORT_CHECK = textwrap.dedent("""
    import types, numpy
    before = set(vars(numpy))
    assert "bool" not in before, "numpy.bool present before"
    from ncrt.adapters.mxnet import import_mxnet
    mx = import_mxnet()
    added = {name for name in set(vars(numpy)) - before
             if not isinstance(getattr(numpy, name), types.ModuleType)}  # submodules mxnet imports
    assert added == {"bool"} and numpy.bool is bool, added
    print("ok", mx.__version__)
""")


def test_import_mxnet_adds_only_numpy_bool_silently(python, python_env):
    result = subprocess.run([python, "-c", IMPORT_CHECK], env=python_env, capture_output=True, text=True, timeout=120)
    if "No module named 'mxnet'" in result.stderr or "pip install 'ncrt[mxnet]'" in result.stderr:
        pytest.skip("mxnet is not installed")
    assert result.returncode == 0, result.stderr
    # MXNet itself announces an engine other than its default (ncrt's NaiveEngine): nothing else
    others = [line for line in result.stderr.splitlines() if not line.endswith("MXNet start using engine: NaiveEngine")]
    assert result.stdout.startswith("ok 1.9") and others == []


@pytest.fixture(scope="module")
def mx():
    import ncrt.plugins.mxnet  # noqa: F401 - supplies numpy.bool when MXNet is imported

    return pytest.importorskip("mxnet")


def test_adapter_contract(mx):
    ops = mxnet_adapter.ADAPTER
    array = np.arange(24, dtype="float32").reshape(4, 6)
    tensor = ops.from_numpy(array)
    assert ops.is_tensor(tensor) and not ops.is_tensor(array)
    assert ops.size(tensor, 0) == 4 and ops.size(tensor, -1) == 6
    np.testing.assert_array_equal(ops.to_numpy(ops.narrow(tensor, 1, 2, 3)), array[:, 2:5])
    parts = [ops.narrow(tensor, 0, 0, 1), ops.narrow(tensor, 0, 1, 3)]
    np.testing.assert_array_equal(ops.to_numpy(ops.concat(parts, 0)), array)
    padded = ops.to_numpy(ops.pad(ops.narrow(tensor, 0, 0, 2), 0, 4))
    np.testing.assert_array_equal(padded, array[[0, 1, 1, 1]])


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "uint8", "int8", "int32", "int64"])
def test_header_calls_read_what_mxnet_reads(mx, dtype):
    calls = mxnet_adapter.header_calls()
    assert calls is not None
    for shape in [(5,), (4, 3), (6, 2, 3, 1)]:
        tensor = mx.nd.array(np.arange(int(np.prod(shape))).reshape(shape), dtype=dtype)
        assert calls.shape(tensor) == tensor.shape == mxnet_adapter.ADAPTER.shape(tensor)
        assert calls.dtype(tensor) == tensor.dtype == mxnet_adapter.ADAPTER.dtype(tensor)
        rows = calls.rows(tensor, 1, 3)
        assert type(rows) is type(tensor) and rows.shape == tensor[1:3].shape
        np.testing.assert_array_equal(rows.asnumpy(), tensor.asnumpy()[1:3])


def test_header_rows_are_views_and_checked(mx):
    calls = mxnet_adapter.header_calls()
    tensor = mx.nd.zeros((4, 2))
    view = calls.rows(tensor, 2, 4)
    view[:] = 7  # a view: the base array changes
    np.testing.assert_array_equal(tensor.asnumpy(), [[0, 0], [0, 0], [7, 7], [7, 7]])
    with pytest.raises(mx.base.MXNetError):
        calls.rows(tensor, 3, 9)  # past the end: MXNet's own check, MXNet's own error


def test_header_calls_keep_the_gil(mx):
    """The functions are called as Python-API functions (``ctypes.PyDLL``): the GIL is
    held through them, unlike MXNet's own ``ctypes.CDLL`` calls."""
    calls = mxnet_adapter.header_calls()
    for function in (calls._get_shape, calls._get_dtype, calls._slice):
        assert function._flags_ & ctypes._FUNCFLAG_PYTHONAPI
    assert not mx.base._LIB.MXNDArrayGetShapeEx._flags_ & ctypes._FUNCFLAG_PYTHONAPI


def test_adapter_falls_back_to_mxnets_python_without_header_calls(mx, monkeypatch):
    monkeypatch.setattr(mxnet_adapter, "_header_calls", None)
    monkeypatch.setattr(mxnet_adapter, "header_calls", lambda: None)
    ops = mxnet_adapter.ADAPTER
    tensor = mx.nd.array(np.arange(12).reshape(3, 4), dtype="int32")
    assert ops.shape(tensor) == (3, 4) and ops.dtype(tensor) == np.int32 and ops.size(tensor, 1) == 4
    np.testing.assert_array_equal(ops.to_numpy(ops.narrow(tensor, 0, 1, 2)), np.arange(12).reshape(3, 4)[1:3])


def test_adapter_rejects_a_missing_dim(mx):
    from ncrt.errors import BadInputError

    with pytest.raises(BadInputError, match="accepted: a dim from -2 to 1"):
        mxnet_adapter.ADAPTER.size(mx.nd.ones((2, 3)), 2)


def test_params_digest_tracks_values(mx):
    args = {"w": mx.nd.ones((2, 2))}
    first = mxnet_adapter.params_digest(args, {})
    assert first == mxnet_adapter.params_digest({"w": np.ones((2, 2), "float32")}, {})
    assert first != mxnet_adapter.params_digest({"w": mx.nd.zeros((2, 2))}, {})


def test_missing_mxnet_names_the_extra(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_mxnet(name, *args, **kwargs):
        if name == "mxnet":
            raise ImportError("No module named 'mxnet'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_mxnet)
    from ncrt.errors import FrameworkMissingError

    with pytest.raises(FrameworkMissingError, match=r"ncrt\[mxnet\]"):
        mxnet_adapter.import_mxnet()
