"""The MXNet plugin's hooks: loading checkpoints, reading their manifests, ``mx.neuron``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ncrt.adapters.mxnet import params_digest
from ncrt.errors import ModelLoadError, unreadable_artifact
from ncrt.hookspecs import hookimpl
from ncrt.imports import ModuleHook
from ncrt.manifest import Manifest, verify_payload
from ncrt.manifest_schema import declare_extra, mapping
from ncrt.model import Model

from .compat import MX_NEURON_HOOK, MXNET_HOOK, enable
from .compile import MANIFEST_ATTR, manifest_of, weights_of
from .execute import FRAMEWORK, SymbolPayload, run_on_core
from .pipeline import run_fused, stage_specs

if TYPE_CHECKING:
    from ncrt.config import Config

__all__: list[str] = []


def _checkpoint_prefix(artifact: Any) -> tuple[str, int] | None:
    """``(prefix, epoch)`` when ``artifact`` names an MXNet checkpoint, else None."""
    if not isinstance(artifact, (str, Path)):
        return None
    prefix = str(artifact)
    if not Path(f"{prefix}-symbol.json").is_file():
        return None
    epochs = sorted(int(p.name[-len("0000.params"):-len(".params")])
                    for p in Path(prefix).parent.glob(f"{Path(prefix).name}-[0-9][0-9][0-9][0-9].params"))
    if not epochs:
        raise ModelLoadError(f"MXNet checkpoint {prefix} has a symbol but no {prefix}-NNNN.params file")
    return prefix, epochs[-1]


declare_extra({"compile_args": mapping})
_RECOMPILE = "accepted: a checkpoint saved from a model compiled with mx.contrib.neuron.compile; compile and save it again"


@hookimpl
def ncrt_load(artifact: Any, config: Config) -> Model | None:
    """An MXNet checkpoint prefix (``prefix-symbol.json`` + ``prefix-NNNN.params``, latest epoch)."""
    found = _checkpoint_prefix(artifact)
    if found is None:
        return None
    mx = enable()
    files = f"the MXNet checkpoint {found[0]}-symbol.json and {Path(found[0]).name}-{found[1]:04d}.params"
    with unreadable_artifact(files, (mx.base.MXNetError, UnicodeDecodeError), _RECOMPILE):
        sym, args, aux = mx.model.load_checkpoint(*found)
        manifest = manifest_of(sym, source=f"{found[0]}-symbol.json")
    if manifest.framework != FRAMEWORK:
        raise ModelLoadError(f"the ncrt manifest of {found[0]}-symbol.json names framework {manifest.framework!r}, "
                             "but the file is an MXNet checkpoint; recompile the model with ncrt")
    if config.validate_hash:
        verify_payload(manifest, params_digest(weights_of(args, {i["name"] for i in manifest.inputs}), aux), True)
    payload = SymbolPayload(sym, args, aux, manifest)
    return Model(Path(found[0]).name, FRAMEWORK, manifest, payload, runner=run_on_core,
                 stages=stage_specs(sym, payload), fused=run_fused)


@hookimpl
def ncrt_read_manifest(path: str) -> Manifest | None:
    """The manifest of an MXNet checkpoint prefix, read from its symbol JSON (no MXNet import)."""
    symbol_file = Path(f"{path}-symbol.json")
    if not isinstance(path, (str, Path)) or not symbol_file.is_file():
        return None
    try:
        nodes = json.loads(symbol_file.read_text()).get("nodes", [])
    except ValueError as error:
        raise ModelLoadError(f"{symbol_file} is not MXNet symbol JSON: {error}") from None
    for node in nodes:
        text = (node.get("attrs") or {}).get(MANIFEST_ATTR)
        if text:
            return Manifest.from_json(text, source=str(symbol_file))
    return Manifest(framework=FRAMEWORK)


@hookimpl
def ncrt_compat_modules() -> dict[str, ModuleHook]:
    """``mx.neuron`` and ``mx.contrib.neuron`` on the real ``mxnet`` module; the ``mx_neuron`` module."""
    return {"mxnet": MXNET_HOOK, "mx_neuron": MX_NEURON_HOOK}
