"""trace, the manifest, fixed batch sizes, save/load with the manifest, hash validation."""

from __future__ import annotations

import io
import struct
import subprocess
import sys
import zipfile

import pytest

torch = pytest.importorskip("torch")

import ncrt  # noqa: E402
from ncrt.errors import BadInputError, HashMismatchError, ModelLoadError  # noqa: E402
from ncrt.plugins import torch as neuron  # noqa: E402
from ncrt.plugins.torch import hooks as torch_hooks  # noqa: E402
from torch_test_models import close, plain  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

IMAGE = (1, 3, 8, 8)


def test_importing_the_plugin_imports_no_torch(python_env):
    code = "import sys, ncrt.plugins.torch, ncrt.plugins.torch.parallel, ncrt.adapters.torch; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], env=python_env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_trace_records_the_manifest(cnn):
    model = neuron.trace(cnn, torch.rand(4, 3, 8, 8), compiler_args=["--neuroncore-pipeline-cores", "2"])
    manifest = model.manifest
    assert manifest.framework == "torch" and manifest.batch_size == 4 and manifest.batch_dim == 0
    assert manifest.inputs == [{"shape": [4, 3, 8, 8], "dtype": "float32"}]
    assert manifest.outputs == [{"shape": [4, 5], "dtype": "float32"}]
    assert manifest.pipeline_cores == 2 and manifest.dynamic_batching
    assert neuron.trace(cnn, torch.rand(*IMAGE), "--neuroncore-pipeline-cores=3").manifest.pipeline_cores == 3
    assert neuron.trace(cnn, torch.rand(*IMAGE)).manifest.pipeline_cores == 1


def test_traced_module_runs_on_cores_and_matches_the_model(cnn):
    model = neuron.trace(cnn, torch.rand(*IMAGE))
    image = torch.rand(*IMAGE)
    close(model(image), plain(cnn, image))
    assert model.placement_label == "NC0"  # one copy per load, on the first free core
    assert ncrt.get_runtime().counters[0].executions == 1


def test_a_compiled_batch_size_is_fixed(cnn):
    model = neuron.trace(cnn, torch.rand(*IMAGE))
    with pytest.raises(BadInputError, match=r"shape \(3, 3, 8, 8\).*compiled for \(1, 3, 8, 8\)"):
        model(torch.rand(3, 3, 8, 8))
    with pytest.raises(BadInputError, match="compiled for 1 input tensor"):
        model(torch.rand(*IMAGE), torch.rand(*IMAGE))


@pytest.mark.parametrize("call", ["positional", "keyword", "nested"])
def test_the_input_check_finds_the_tensors_of_every_kind_of_call(call):
    """Plain positional tensors are taken as they are; keyword and nested calls are walked."""
    from ncrt.plugins.torch.execute import TorchCall
    from ncrt.plugins.torch.model import check_inputs

    manifest = ncrt.Manifest(framework="torch", batch_size=2, inputs=[{"shape": [2, 3], "dtype": "float32"},
                                                                     {"shape": [2, 4], "dtype": "float32"}])
    x, y = torch.rand(2, 3), torch.rand(2, 4)
    inputs = {"positional": TorchCall((x, y), {}), "keyword": TorchCall((x,), {"y": y}),
              "nested": TorchCall(([x, y],), {})}[call]
    assert check_inputs(manifest, inputs, 0, any_batch=False) == 2
    swapped = {"positional": TorchCall((y, x), {}), "keyword": TorchCall((y,), {"y": x}),
               "nested": TorchCall(([y, x],), {})}[call]
    with pytest.raises(BadInputError, match=r"input tensor 0 has shape \(2, 4\).*compiled for \(2, 3\)"):
        check_inputs(manifest, swapped, 0, any_batch=False)
    with pytest.raises(BadInputError, match="compiled for 2 input tensor.s.; got 3"):
        check_inputs(manifest, TorchCall((x, y, 1.5, y), {}), 0, any_batch=False)  # a float is no tensor


def test_dynamic_batch_size_runs_any_batch(cnn):
    model = neuron.trace(cnn, torch.rand(2, 3, 8, 8), dynamic_batch_size=True)
    for size in (1, 2, 5):
        image = torch.rand(size, 3, 8, 8)
        close(model(image), plain(cnn, image))
    with pytest.raises(BadInputError, match="any size along dim 0"):
        model(torch.rand(2, 3, 9, 8))


def test_save_and_load_keep_the_manifest(cnn, tmp_path):
    model = neuron.trace(cnn, torch.rand(2, 3, 8, 8), compiler_args="--neuroncore-pipeline-cores 2")
    path = tmp_path / "cnn.pt"
    torch.jit.save(model, str(path))
    manifest = torch_hooks.ncrt_read_manifest(str(path))
    assert manifest.batch_size == 2 and manifest.pipeline_cores == 2 and manifest.sha256
    loaded = neuron.load(str(path))
    assert loaded.manifest.pipeline_cores == 2 and loaded.placement_label == "NC0-1"
    image = torch.rand(2, 3, 8, 8)
    close(loaded(image), plain(cnn, image))


def test_plain_torch_jit_load_gives_a_script_module_whose_manifest_ncrt_reads(cnn, tmp_path):
    path = tmp_path / "cnn.pt"
    torch.jit.save(neuron.trace(cnn, torch.rand(*IMAGE)), str(path))
    plain_load = getattr(torch.jit.load, "ncrt_original", torch.jit.load)  # unpatched, even if
    script = plain_load(str(path))  # another test installed ncrt.compat in this process
    assert isinstance(script, torch.jit.ScriptModule)
    assert neuron.manifest_of(script).batch_size == 1
    placed = ncrt.load(str(path))  # through the ncrt_load hook
    image = torch.rand(*IMAGE)
    close(placed(image), plain(cnn, image))
    close(ncrt.load(script)(image), plain(cnn, image))


def test_save_to_a_buffer_and_load_from_it(cnn):
    buffer = io.BytesIO()
    torch.jit.save(neuron.trace(cnn, torch.rand(*IMAGE)), buffer)
    buffer.seek(0)
    extra = {"mine.txt": ""}
    loaded = neuron.load(buffer, _extra_files=extra)
    image = torch.rand(*IMAGE)
    close(loaded(image), plain(cnn, image))
    assert loaded.manifest.batch_size == 1


def test_loading_a_plain_torchscript_file_is_refused(cnn, tmp_path):
    path = tmp_path / "plain.pt"
    torch.jit.save(torch.jit.trace(cnn, torch.rand(*IMAGE)), str(path))
    with pytest.raises(ModelLoadError, match="without an ncrt manifest"):
        neuron.load(str(path))
    assert torch_hooks.ncrt_read_manifest(str(path)) is None


def _corrupt(path):
    with zipfile.ZipFile(path) as archive:
        entry = next(info for info in archive.infolist() if info.filename.endswith("data/0"))
    raw = bytearray(path.read_bytes())
    name_length, extra_length = struct.unpack("<HH", raw[entry.header_offset + 26 : entry.header_offset + 30])
    start = entry.header_offset + 30 + name_length + extra_length
    raw[start] ^= 0xFF
    path.write_bytes(bytes(raw))


def test_validate_hash_accepts_a_good_file_and_rejects_a_corrupted_one(cnn, tmp_path, runtime_env):
    runtime_env(NEURON_RT_VALIDATE_HASH="true")
    path = tmp_path / "cnn.pt"
    torch.jit.save(neuron.trace(cnn, torch.rand(*IMAGE)), str(path))
    assert neuron.load(str(path)).manifest.sha256
    _corrupt(path)
    with pytest.raises(HashMismatchError, match="corrupted"):
        neuron.load(str(path))


def test_trace_refuses_what_it_cannot_trace():
    with pytest.raises(BadInputError, match="a function of tensors; got int"):
        neuron.trace(42, torch.rand(1))
