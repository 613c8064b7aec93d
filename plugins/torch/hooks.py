"""The torch plugin's hooks: it loads ncrt TorchScript files and ncrt-traced modules."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from ncrt.adapters.torch import MANIFEST_EXTRA, manifest_text_in_archive
from ncrt.hookspecs import hookimpl
from ncrt.imports import ModuleHook
from ncrt.manifest import Manifest
from ncrt.manifest_schema import declare_extra, flag, mapping, text, texts
from ncrt.model import Model

from .compat import experimental_module, patch_torch, torch_neuron_module
from .execute import FRAMEWORK, TorchPayload, run_on_core
from .model import NeuronModule, load_script, manifest_of
from .pipeline import stage_specs

__all__: list[str] = []


def _is_archive_path(artifact: Any) -> bool:
    return isinstance(artifact, (str, os.PathLike)) and Path(artifact).is_file()


declare_extra({"dynamic_batch_size": flag, "torch_version": text, "optimizations": texts, "operators": mapping})

@hookimpl
def ncrt_load(artifact: Any, config: Any) -> Model | None:
    """NeuronModules, ncrt-traced ScriptModules and ncrt TorchScript files are torch models."""
    if isinstance(artifact, NeuronModule):
        return artifact.to_model()
    if _is_archive_path(artifact) and manifest_text_in_archive(artifact) is not None:
        module, manifest, stem = load_script(artifact, validate_hash=config.validate_hash)
        payload = TorchPayload(module, config.multi_instance_shared_weights)
        return Model(stem, FRAMEWORK, manifest, payload, runner=run_on_core,
                     stages=stage_specs(module, manifest, payload.shared_weights)) if manifest else None
    if "torch" in sys.modules and isinstance(artifact, sys.modules["torch"].jit.ScriptModule):
        manifest = manifest_of(artifact)
        if manifest is not None:
            payload = TorchPayload(artifact, config.multi_instance_shared_weights)
            return Model(artifact.original_name, FRAMEWORK, manifest, payload, runner=run_on_core,
                         stages=stage_specs(artifact, manifest, payload.shared_weights))
    return None


@hookimpl
def ncrt_read_manifest(path: str) -> Manifest | None:
    """The manifest of an ncrt TorchScript file, read from the archive without torch."""
    text = manifest_text_in_archive(path) if _is_archive_path(path) else None
    return Manifest.from_json(text, source=f"{path} ({MANIFEST_EXTRA})") if text is not None else None


@hookimpl
def ncrt_compat_modules() -> dict[str, ModuleHook]:
    """``torch_neuron`` and ``torch.neuron``; ``torch.jit.load`` places ncrt models."""
    return {
        "torch_neuron": ModuleHook(create=torch_neuron_module),
        "torch_neuron.experimental": ModuleHook(create=experimental_module),
        "torch.neuron.experimental": ModuleHook(create=experimental_module),
        "torch": ModuleHook(patch=patch_torch),
    }
