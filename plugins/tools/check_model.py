"""``ncrt check-model PATH``: what a compiled model needs, in the manner of Neuron Check Model.

For a compiled model of any framework: framework, compiled batch size and dim, input
and output signature, the NeuronCores it needs ("run this model with at least N
NeuronCore(s)") and, for a model compiled for NeuronCore Pipeline, its stage partition
(each stage's core, first and last operation, measured cost and bytes of weights), whether dynamic batching and replication apply, and whether its hash
verifies. The manifest is read through the plugins' ``ncrt_read_manifest`` hook, which
imports no framework; when no plugin answers, this module looks for the manifest in the
usual places (a directory's ``ncrt-manifest.json`` or ``assets.extra/``, a zip archive's
``extra/``), and only then loads the model. The hash is verified by loading the model
through its plugin with ``NEURON_RT_VALIDATE_HASH=true`` (the plugin knows what its
sha256 covers); ``--no-verify`` skips that.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ncrt.errors import FrameworkMissingError, HashMismatchError, ModelLoadError, NcrtError
from ncrt.hookspecs import hookimpl
from ncrt.manifest import MANIFEST_NAME, Manifest

if TYPE_CHECKING:
    import pluggy

    from ncrt.topology import Topology

__all__ = ["ModelCheck", "check_model", "read_manifest", "render", "verify_hash", "run"]


@dataclasses.dataclass
class ModelCheck:
    """The findings about one compiled model."""

    path: str
    manifest: Manifest
    manifest_source: str
    hash_status: str
    hash_detail: str
    topology: str
    topology_cores: int

    @property
    def cores_needed(self) -> int:
        return self.manifest.pipeline_cores

    @property
    def replicas_that_fit(self) -> int:
        return self.topology_cores // self.cores_needed

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path, "framework": self.manifest.framework,
            "batch_size": self.manifest.batch_size, "batch_dim": self.manifest.batch_dim,
            "inputs": self.manifest.inputs, "outputs": self.manifest.outputs,
            "cores_needed": self.cores_needed, "dynamic_batching": self.manifest.dynamic_batching,
            "replication": self.cores_needed == 1, "replicas_that_fit": self.replicas_that_fit,
            "topology": self.topology, "target": self.manifest.target,
            "compiler_args": self.manifest.compiler_args, "sha256": self.manifest.sha256,
            "hash": self.hash_status, "hash_detail": self.hash_detail, "manifest_source": self.manifest_source,
            "pipeline_stages": self.manifest.stage_count, "partition": self.manifest.partition,
        }


# --------------------------------------------------------------------------- reading


def _manifest_in_archive(path: Path) -> Manifest | None:
    """A manifest stored in a zip archive (a TorchScript file keeps it under ``extra/``)."""
    try:
        with zipfile.ZipFile(path) as archive:
            for name in archive.namelist():
                if name.rsplit("/", 1)[-1] == MANIFEST_NAME:
                    return Manifest.from_json(archive.read(name), source=f"{path} ({name})")
    except (zipfile.BadZipFile, OSError):
        return None
    return None


def _manifest_on_disk(path: Path) -> Manifest | None:
    """The manifest in a directory, its ``assets.extra/``, beside a file, or in an archive."""
    candidates = [path / MANIFEST_NAME, path / "assets.extra" / MANIFEST_NAME] if path.is_dir() else [
        path.with_name(f"{path.name}.{MANIFEST_NAME}")]
    for candidate in candidates:
        if candidate.is_file():
            return Manifest.from_json(candidate.read_bytes(), source=candidate)
    return _manifest_in_archive(path) if path.is_file() else None


def read_manifest(path: str, pm: pluggy.PluginManager) -> tuple[Manifest, str]:
    """The model's manifest and where it came from: a plugin, the files, or a full load."""
    manifest = pm.hook.ncrt_read_manifest(path=path)
    if manifest is not None:
        return manifest, "ncrt_read_manifest"
    manifest = _manifest_on_disk(Path(path))
    if manifest is not None:
        return manifest, "file"
    model = _load(path, pm, validate=False)
    if model is None:
        raise ModelLoadError(
            f"{path} is not a compiled model any ncrt plugin knows; accepted: an ncrt-compiled TorchScript "
            "file, TensorFlow SavedModel directory or MXNet checkpoint prefix, or a directory with "
            f"{MANIFEST_NAME}"
        )
    return model.manifest, "ncrt_load"


def _load(path: str, pm: pluggy.PluginManager, validate: bool) -> Any:
    from ncrt.config import parse_config

    config = dataclasses.replace(parse_config(), validate_hash=validate)
    return pm.hook.ncrt_load(artifact=path, config=config)


def verify_hash(path: str, manifest: Manifest, pm: pluggy.PluginManager) -> tuple[str, str]:
    """(status, detail): status is verified, mismatch, not recorded or not checked."""
    if not manifest.sha256:
        return "not recorded", "the manifest carries no sha256"
    try:
        model = _load(path, pm, validate=True)
    except HashMismatchError as error:
        return "mismatch", str(error)
    except FrameworkMissingError as error:
        return "not checked", str(error)
    except NcrtError as error:
        return "not checked", f"{type(error).__name__}: {error}"
    if model is None:
        return "not checked", "no installed plugin loads this model"
    return "verified", f"sha256 {manifest.sha256[:16]}..."


def check_model(path: str, pm: pluggy.PluginManager, topology: Topology, verify: bool = True) -> ModelCheck:
    manifest, source = read_manifest(path, pm)
    status, detail = verify_hash(path, manifest, pm) if verify else ("not checked", "--no-verify")
    return ModelCheck(path, manifest, source, status, detail, topology.name, len(topology))


# --------------------------------------------------------------------------- output


def _signature_lines(entries: list[dict[str, Any]]) -> list[str]:
    lines = []
    for position, entry in enumerate(entries):
        name = entry.get("name") or f"#{position}"
        shape = "x".join("?" if size is None else str(size) for size in entry.get("shape", []))
        lines.append(f"    {name}: {entry.get('dtype', '?')}[{shape}]")
    return lines or ["    (not recorded)"]


def _dynamic_line(check: ModelCheck) -> str:
    manifest = check.manifest
    if not manifest.dynamic_batching:
        batch = manifest.batch_size or "the compiled batch"
        return f"dynamic batching:   no (send exactly {batch} per replica along dim {manifest.batch_dim})"
    chunk = manifest.batch_size or 1
    return f"dynamic batching:   yes (any batch along dim {manifest.batch_dim}, cut into chunks of {chunk})"


def _replication_line(check: ModelCheck) -> str:
    if check.cores_needed == 1:
        return (f"replication:        yes (1-core model: up to {check.replicas_that_fit} replicas on "
                f"{check.topology}, e.g. NEURON_RT_NUM_CORES={min(4, check.topology_cores)} for "
                f"{min(4, check.topology_cores)} replicas)")
    return (f"replication:        as whole {check.cores_needed}-core groups only (up to {check.replicas_that_fit} "
            f"on {check.topology}); auto multicore replication needs --neuroncore-pipeline-cores 1")


def _bytes(count: int) -> str:
    return f"{count:,} B" if count < 1024 * 1024 else f"{count / (1024 * 1024):.1f} MiB"


def _partition_lines(check: ModelCheck) -> list[str]:
    """The NeuronCore Pipeline partition: each stage's core, layers, cost and weights."""
    partition = check.manifest.partition
    if check.cores_needed < 2:
        return []
    stages = partition.get("stages", [])
    if not stages:
        reason = partition.get("note") or "no stage partition recorded (compiled before ncrt cut models into stages)"
        return [f"pipeline stages:    1 (runs whole) - {reason}"]
    lines = [f"pipeline stages:    {len(stages)} (cost: {partition.get('cost_basis', 'not recorded')})"]
    for stage in stages:
        index = stage["index"]
        held = len(stages) - 1 == index and len(stages) < check.cores_needed  # the last stage holds the rest
        core = f"cores {index}-{check.cores_needed - 1}" if held else f"core {index}"
        lines.append(f"    stage {index} on {core}: {stage['first']} .. {stage['last']} "
                     f"({stage['units']} op(s), {1000 * stage['cost']:.3f} ms, {_bytes(stage['param_bytes'])} of weights)")
    if partition.get("note"):
        lines.append(f"    note: {partition['note']}")
    return lines


def render(check: ModelCheck) -> str:
    manifest = check.manifest
    batch = manifest.batch_size if manifest.batch_size is not None else "not recorded"
    lines = [
        f"model:              {check.path}",
        f"framework:          {manifest.framework} (target {manifest.target})",
        f"compiled batch:     {batch} (batch dim {manifest.batch_dim})",
        "inputs:", *_signature_lines(manifest.inputs),
        "outputs:", *_signature_lines(manifest.outputs),
        f"pipeline cores:     {check.cores_needed}"
        + (f" ({' '.join(manifest.compiler_args)})" if manifest.compiler_args else ""),
        *_partition_lines(check),
        f"run this model with at least {check.cores_needed} NeuronCore(s)",
        _dynamic_line(check),
        _replication_line(check),
        f"hash:               {check.hash_status} ({check.hash_detail})",
    ]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Print the findings; exit 1 when the hash does not verify."""
    from ncrt.config import parse_config
    from ncrt.manager import shared_plugin_manager
    from ncrt.topology import build_topology

    pm = shared_plugin_manager()
    for name in args.plugin or []:
        if pm.get_plugin(f"check-{name}") is None:
            pm.register(importlib.import_module(name), name=f"check-{name}")
    topology = build_topology(args.instance_type or parse_config().instance_type)
    check = check_model(str(args.path), pm, topology, verify=not args.no_verify)
    print(json.dumps(check.to_json(), indent=2) if args.json else render(check))
    return 1 if check.hash_status == "mismatch" else 0


@hookimpl
def ncrt_add_commands(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("check-model", help="what a compiled model needs (cores, batch, signature, hash)")
    parser.add_argument("path", help="a compiled model: TorchScript file, SavedModel dir, MXNet prefix, ...")
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")
    parser.add_argument("--no-verify", action="store_true", help="do not load the model to verify its hash")
    parser.add_argument("--instance-type", help="instance to size replicas for (default: NCRT_INSTANCE_TYPE/host)")
    parser.add_argument("-p", "--plugin", action="append", help="also register this plugin module")
    parser.set_defaults(func=run)
