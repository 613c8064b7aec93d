"""The TensorFlow plugin's hooks: loading ncrt SavedModels, ``tf-auto-multicore``, compat names."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ncrt.config import Variable, parse_positive
from ncrt.hookspecs import hookimpl
from ncrt.imports import ModuleHook
from ncrt.manifest import Manifest, verify_payload
from ncrt.model import Model

from .compat import patch_tensorflow, tensorflow_neuron_module
from .compile import TracedModel, is_compiled_dir, load_payload, model_name, read_manifest
from .execute import FRAMEWORK, INTER_OP_VARIABLE, INTRA_OP_VARIABLE, run_on_core
from .parallel import write_auto_multicore
from .pipeline import stage_specs

if TYPE_CHECKING:
    from ncrt.config import Config, VariableTable

__all__: list[str] = []


def _auto_multicore_command(args: argparse.Namespace) -> int:
    write_auto_multicore(args.model_dir, args.new_model_dir, args.num_cores)
    print(f"wrote {args.new_model_dir}: replicates itself on {args.num_cores} NeuronCore(s) when loaded")
    return 0


# -- hooks --------------------------------------------------------------------------------


@hookimpl
def ncrt_load(artifact: Any, config: Config) -> Model | None:
    """A traced model, or a directory written by saved_model.compile / trace(...).save."""
    if isinstance(artifact, TracedModel):
        return Model("traced", FRAMEWORK, artifact.manifest, artifact.payload, runner=run_on_core,
                     stages=stage_specs(artifact.module, artifact.manifest))
    if not is_compiled_dir(artifact):
        return None
    manifest = read_manifest(artifact)
    if manifest.framework != FRAMEWORK:
        return None
    verify_payload(manifest, artifact, config.validate_hash)
    payload = load_payload(artifact, manifest)
    return Model(model_name(Path(artifact)), FRAMEWORK, manifest, payload, runner=run_on_core,
                 stages=stage_specs(payload.holder, manifest))


@hookimpl
def ncrt_add_variables(variables: VariableTable) -> None:
    """The sizes of TensorFlow's process-wide thread pools, when the defaults do not suit."""
    variables.add(Variable(INTRA_OP_VARIABLE, "TensorFlow intra-op threads (default: the CPUs behind one core)",
                           "an integer from 1", "CPUs per core", parse_positive))
    variables.add(Variable(INTER_OP_VARIABLE, "TensorFlow inter-op threads (default: the host's CPUs)",
                           "an integer from 1", "host CPUs", parse_positive))


@hookimpl
def ncrt_read_manifest(path: str) -> Manifest | None:
    if not is_compiled_dir(path):
        return None
    manifest = read_manifest(path)
    return manifest if manifest.framework == FRAMEWORK else None


@hookimpl
def ncrt_add_commands(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "tf-auto-multicore", help="write a TensorFlow SavedModel that replicates itself on N cores when loaded"
    )
    parser.add_argument("model_dir", help="an ncrt-compiled SavedModel directory (pipeline size 1)")
    parser.add_argument("--num_cores", type=int, required=True, help="cores to replicate the model on")
    parser.add_argument("--new_model_dir", required=True, help="where to write the replicating SavedModel")
    parser.set_defaults(func=_auto_multicore_command)


@hookimpl
def ncrt_compat_modules() -> dict[str, ModuleHook]:
    """``tensorflow.neuron``; importing TensorFlow sizes its pools and patches Keras loading."""
    return {
        "tensorflow.neuron": ModuleHook(create=tensorflow_neuron_module),
        "tensorflow": ModuleHook(patch=patch_tensorflow),
    }
