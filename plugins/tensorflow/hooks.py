"""The TensorFlow plugin's hooks: loading ncrt SavedModels, ``tf-auto-multicore``, compat names."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ncrt.config import Variable, parse_positive
from ncrt.hookspecs import hookimpl
from ncrt.imports import ModuleHook
from ncrt.manifest import Manifest, verify_payload
from ncrt.manifest_schema import (
    MAX_CORES,
    count_map,
    declare_extra,
    fraction,
    int_in,
    mapping,
    text,
    text_map,
    texts,
)
from ncrt.model import Model

from .commands import add_auto_multicore_arguments, run_auto_multicore
from .compat import patch_tensorflow, patch_tf_keras, tensorflow_neuron_module
from .compile import TracedModel, embedded_manifest, is_compiled_dir, load_payload, model_name, read_manifest
from .execute import CC_FLAGS_VARIABLE, ENTRY, FRAMEWORK, INTER_OP_VARIABLE, INTRA_OP_VARIABLE, TFPayload, run_on_core
from .placement import AUTO_MULTICORE_KEY
from .pipeline import stage_specs

if TYPE_CHECKING:
    from ncrt.config import Config, VariableTable

__all__: list[str] = []


# -- hooks --------------------------------------------------------------------------------


declare_extra({
    AUTO_MULTICORE_KEY: int_in(1, MAX_CORES), "input_aliases": text_map, "output_kind": text,
    "output_names": texts, "source": text, "input_structure": mapping, "operator_count": count_map,
    "on_neuron_ratio": fraction, "ignored_compile_options": mapping,
})

@hookimpl
def ncrt_load(artifact: Any, config: Config) -> Model | None:
    """A traced model, or a directory written by saved_model.compile / trace(...).save."""
    if isinstance(artifact, TracedModel):
        return Model("traced", FRAMEWORK, artifact.manifest, artifact.payload, runner=run_on_core,
                     stages=stage_specs(artifact.module, artifact.manifest))
    restored = embedded_manifest(artifact) if not isinstance(artifact, (str, Path)) else None
    if restored is not None:  # an ncrt-compiled SavedModel loaded with tf.saved_model.load
        payload = TFPayload(getattr(artifact, ENTRY), artifact, [spec["dtype"] for spec in restored.inputs])
        return Model("saved_model", FRAMEWORK, restored, payload, runner=run_on_core,
                     stages=stage_specs(artifact, restored))
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
    variables.add(Variable(CC_FLAGS_VARIABLE, "compiler options of tfn.trace (--neuroncore-pipeline-cores=N "
                           "is honoured, --dynamic-batch-size turns dynamic batching on, others are recorded)",
                           "neuron-cc options, as on a command line", "none"))


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
    add_auto_multicore_arguments(parser)
    parser.set_defaults(func=run_auto_multicore)


@hookimpl
def ncrt_compat_modules() -> dict[str, ModuleHook]:
    """``tensorflow.neuron`` and ``tensorflow_neuron``; importing TensorFlow (or tf-keras) sizes
    TF's pools and makes its save/load functions handle ncrt-compiled models."""
    return {
        "tensorflow.neuron": ModuleHook(create=tensorflow_neuron_module),
        "tensorflow_neuron": ModuleHook(create=tensorflow_neuron_module),
        "tensorflow": ModuleHook(patch=patch_tensorflow),
        "tf_keras": ModuleHook(patch=patch_tf_keras),
    }
