"""Tiny compiled models of each framework, and where each keeps its ncrt manifest.

Each builder writes one compiled model under a directory and returns a
:class:`CompiledModel`: the path to copy and damage, the file inside it that holds the
manifest, how to reach the manifest's bytes in that file, and how to load a copy.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

import ncrt
from damaged_files import Damage, in_json_attribute, in_zip_entry


@dataclass
class CompiledModel:
    """A compiled model on disk and how to damage its manifest and load it."""

    framework: str
    path: Path  # the file or directory a damaged copy is made of
    manifest_file: str | None  # the file inside ``path`` holding the manifest (None: ``path`` itself)
    wrap: Callable[[Damage], Damage]  # manifest damage -> damage of ``manifest_file``
    manifest: dict[str, Any]  # the manifest as written
    artifact: Callable[[Path], str]  # the path of a copy -> what ncrt.load takes
    representable: Callable[[bytes], bool] = lambda text: True  # can the format store this manifest text?

    def load(self, copy: Path) -> Any:
        return ncrt.load(self.artifact(copy))


def build_torch(directory: Path) -> CompiledModel:
    import torch

    from ncrt.plugins import torch as neuron

    traced = neuron.trace(torch.nn.Linear(3, 2), torch.zeros(4, 3))
    path = directory / "linear.pt"
    neuron.save(traced, str(path))
    from ncrt.adapters.torch import manifest_text_in_archive

    manifest = json.loads(manifest_text_in_archive(str(path)))
    return CompiledModel("torch", path, None, lambda damage: in_zip_entry("extra/ncrt-manifest.json", damage),
                         manifest, str)


def build_torch_pipeline(directory: Path) -> CompiledModel:
    """A torch model compiled for NeuronCore Pipeline (2 stages): its manifest has a partition."""
    import torch

    from ncrt.plugins import torch as neuron

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.ReLU(), torch.nn.Linear(8, 8), torch.nn.ReLU(),
                                torch.nn.Linear(8, 2)).eval()
    traced = neuron.trace(model, torch.zeros(4, 3), compiler_args=["--neuroncore-pipeline-cores", "2"])
    path = directory / "piped.pt"
    neuron.save(traced, str(path))
    from ncrt.adapters.torch import manifest_text_in_archive

    manifest = json.loads(manifest_text_in_archive(str(path)))
    assert len(manifest["partition"]["stages"]) == 2, manifest["partition"]
    return CompiledModel("torch", path, None, lambda damage: in_zip_entry("extra/ncrt-manifest.json", damage),
                         manifest, str)


def build_tensorflow(directory: Path) -> CompiledModel:
    import tensorflow as tf

    from ncrt.plugins import tensorflow as tfn

    tf.keras.utils.set_random_seed(0)
    inputs = tf.keras.Input((4,))
    keras_model = tf.keras.Model(inputs, tf.keras.layers.Dense(2)(inputs))
    path = tfn.trace(keras_model, np.zeros((2, 4), "float32")).save(directory / "dense_tf")
    manifest_file = "assets.extra/ncrt-manifest.json"
    manifest = json.loads((Path(path) / manifest_file).read_text())
    return CompiledModel("tensorflow", Path(path), manifest_file, lambda damage: damage, manifest, str)


def build_mxnet(directory: Path) -> CompiledModel:
    from ncrt.adapters.mxnet import export_block
    from ncrt.plugins.mxnet import enable

    mx = enable()
    from mxnet import gluon

    net = gluon.nn.HybridSequential(prefix="dense_")
    with net.name_scope():
        net.add(gluon.nn.Dense(2))
    net.initialize(mx.init.Xavier())
    example = mx.nd.array(np.zeros((2, 4)), dtype="float32")
    folder = directory / "checkpoint"
    folder.mkdir()
    sym, args, aux = export_block(net, str(directory / "plain"), example)
    sym, args, aux = mx.contrib.neuron.compile(sym, args, aux, {"data": example})
    mx.model.save_checkpoint(str(folder / "dense"), 0, sym, args, aux)
    graph = json.loads((folder / "dense-symbol.json").read_text())
    text = next(node["attrs"]["__ncrt_manifest__"] for node in graph["nodes"]
                if "__ncrt_manifest__" in (node.get("attrs") or {}))
    return CompiledModel("mxnet", folder, "dense-symbol.json",
                         lambda damage: in_json_attribute("__ncrt_manifest__", damage), json.loads(text),
                         lambda copy: str(copy / "dense"), representable=_mxnet_can_read)


def _mxnet_can_read(text: bytes) -> bool:
    """Whether MXNet's JSON reader can hold ``text`` in a symbol attribute: it knows no
    ``\\u`` escapes, so control characters (which JSON must escape) cannot be stored."""
    return not any(byte < 0x20 for byte in text)


BUILDERS: dict[str, Callable[[Path], CompiledModel]] = {
    "torch": build_torch, "tensorflow": build_tensorflow, "mxnet": build_mxnet,
}
