"""A harness of damaged files: every way a compiled model can arrive broken.

Generators return :class:`Damage` cases (a name and a function from the file's bytes to
the damaged bytes): byte flips in the local headers, the data and the central directory
of a zip archive (a TorchScript file), truncations, random bytes, and edits of the ncrt
manifest (wrong types, out-of-range values, missing or unknown fields, broken JSON).
:func:`damaged_copies` applies cases to one file of a model (a file, or a file inside a
model directory such as a SavedModel or an MXNet checkpoint), and :func:`run_matrix`
loads every damaged copy and sorts the outcomes:

- ``clean``: a :class:`ncrt.errors.ModelLoadError` whose message names the damaged model;
- ``accepted``: the load succeeded (right for damage that changes nothing that matters,
  wrong when hash validation is on and the damage is in hashed bytes);
- ``unclean``: any other exception, or a ModelLoadError that does not name the model.

A framework plugs in a ``load(path)`` callable; nothing here imports a framework.
"""

from __future__ import annotations

import json
import random
import shutil
import struct
import traceback
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from ncrt.errors import ModelLoadError


@dataclass(frozen=True)
class Damage:
    """One way of damaging a file's bytes."""

    name: str
    kind: str  # flip, truncate, random, manifest
    apply: Callable[[bytes], bytes]


# --------------------------------------------------------------------------- byte damage


def zip_regions(data: bytes) -> dict[str, list[tuple[int, int]]]:
    """Byte ranges of a zip archive: ``header`` (local file headers), ``data`` (entry
    contents), ``central-directory`` and ``end-record``; empty when ``data`` is no zip."""
    import io

    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        return {}
    regions: dict[str, list[tuple[int, int]]] = {"header": [], "data": []}
    with archive:
        for info in archive.infolist():
            start = info.header_offset
            name_length, extra_length = struct.unpack("<HH", data[start + 26 : start + 30])
            body = start + 30 + name_length + extra_length
            regions["header"].append((start, body))
            if info.compress_size:
                regions["data"].append((body, body + info.compress_size))
        directory = archive.start_dir
    end = data.rfind(b"PK\x05\x06")
    regions["central-directory"] = [(directory, end)] if 0 <= directory < end else []
    regions["end-record"] = [(end, len(data))] if end >= 0 else []
    return {name: spans for name, spans in regions.items() if spans}


def _flip(position: int, mask: int) -> Callable[[bytes], bytes]:
    def apply(data: bytes) -> bytes:
        if position >= len(data):
            return data
        damaged = bytearray(data)
        damaged[position] ^= mask
        return bytes(damaged)

    return apply


def byte_flips(data: bytes, per_region: int, seed: int = 0,
               regions: dict[str, list[tuple[int, int]]] | None = None) -> list[Damage]:
    """``per_region`` single-byte flips in each region (zip regions by default, else the
    whole file), at positions drawn with ``seed``."""
    rng = random.Random(seed)
    regions = regions if regions is not None else (zip_regions(data) or {"whole": [(0, len(data))]})
    cases = []
    for region, spans in regions.items():
        positions = [position for start, end in spans for position in range(start, end)]
        for position in sorted(rng.sample(positions, min(per_region, len(positions)))):
            mask = rng.choice((0x01, 0x80, 0xFF, 0x20))
            cases.append(Damage(f"flip:{region}:{position}:{mask:#04x}", "flip", _flip(position, mask)))
    return cases


def truncations(length: int, count: int, seed: int = 0) -> list[Damage]:
    """Cuts to 0 and 1 byte, half, all but the last byte, and ``count`` random lengths."""
    rng = random.Random(seed)
    points = {0, 1, length // 2, max(length - 1, 0)}
    points.update(rng.randrange(length) for _ in range(count) if length)
    return [Damage(f"truncate:{point}", "truncate", lambda data, point=point: data[:point])
            for point in sorted(points) if point < length]


def random_contents(sizes: Iterable[int], seed: int = 0) -> list[Damage]:
    """Files replaced by random bytes of each size (and one starting with a zip signature)."""
    rng = random.Random(seed)
    cases = [Damage(f"random:{size}", "random", lambda data, blob=rng.randbytes(size): blob) for size in sizes]
    fake = b"PK\x03\x04" + rng.randbytes(512)
    cases.append(Damage("random:zip-signature", "random", lambda data: fake))
    return cases


# --------------------------------------------------------------------------- manifest damage

_BAD_VALUES: dict[str, list[Any]] = {
    "framework": [None, 3, "", ["torch"]],
    "batch_size": ["2", 1.5, -1, 0, True, 2**40, []],
    "batch_dim": ["0", -1, 1.0, None, 1000],
    "inputs": [None, "x", {}, [1], [{"shape": "3"}], [{"shape": [-1]}], [{"shape": [1.5]}],
               [{"dtype": 4, "shape": [1]}]],
    "outputs": [None, [None], [{"shape": None}]],
    "pipeline_cores": ["2", 1.5, None, 0, -3, True, 10**9],
    "dynamic_batching": ["yes", 1, None],
    "target": [None, 5],
    "sha256": [5, "not-hex", "A" * 64],
    "compiler_args": ["--fast", [1], None],
    "extra": [None, [], "x", 1],
    "format_version": ["1", 0, 99, None],
    "seal": [5, "short"],
}


def _edit(mutate: Callable[[dict[str, Any]], None]) -> Callable[[bytes], bytes]:
    def apply(data: bytes) -> bytes:
        manifest = json.loads(data)
        mutate(manifest)
        return json.dumps(manifest).encode()

    return apply


def _set(name: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda manifest: manifest.__setitem__(name, value)


def manifest_edits(manifest: dict[str, Any]) -> list[Damage]:
    """Edits of a manifest's JSON (``manifest`` is the valid one, for field names):
    every field set to wrong types and out-of-range values, required fields removed,
    unknown fields added, and broken JSON text."""
    cases = []
    for name, values in _BAD_VALUES.items():
        for value in values:
            cases.append(Damage(f"manifest:{name}={json.dumps(value)[:24]}", "manifest", _edit(_set(name, value))))
    cases.append(Damage("manifest:no framework", "manifest", _edit(lambda m: m.pop("framework", None))))
    cases.append(Damage("manifest:unknown field", "manifest", _edit(_set("surprise", 1))))
    if "batch_size" in manifest and manifest.get("batch_size"):
        edited = int(manifest["batch_size"]) * 2
        cases.append(Damage(f"manifest:batch_size={edited} (consistent type)", "manifest",
                            _edit(_set("batch_size", edited))))
    if "extra" in manifest:
        for key in list(manifest["extra"])[:4]:
            cases.append(Damage(f"manifest:extra.{key}=[[]]", "manifest",
                                _edit(lambda m, key=key: m["extra"].__setitem__(key, [[]]))))
    texts: dict[str, bytes] = {
        "manifest:truncated JSON": b'{"framework": "tor',
        "manifest:empty": b"",
        "manifest:not UTF-8": b'{"framework": "\xff\xfe"}',
        "manifest:a JSON list": b"[1, 2]",
        "manifest:a JSON string": b'"torch"',
        "manifest:null": b"null",
        "manifest:nested 100000 deep": b"[" * 100_000 + b"]" * 100_000,
        "manifest:NaN batch": b'{"framework": "x", "batch_size": NaN}',
    }
    cases += [Damage(name, "manifest", lambda data, text=text: text) for name, text in texts.items()]
    return cases


def _in_partition(mutate: Callable[[dict[str, Any]], None]) -> Callable[[bytes], bytes]:
    return _edit(lambda manifest: mutate(manifest["partition"]))


def _in_stage(position: int, mutate: Callable[[dict[str, Any]], None]) -> Callable[[bytes], bytes]:
    return _in_partition(lambda partition: mutate(partition["stages"][position]))


def partition_edits(manifest: dict[str, Any]) -> list[Damage]:
    """Damage of a NeuronCore Pipeline partition (``manifest`` has one with 2+ stages): wrong
    types, missing and unknown fields, and partitions that disagree with ``pipeline_cores``."""
    cores = int(manifest.get("pipeline_cores", 1))

    def one_stage(partition: dict[str, Any]) -> None:
        del partition["stages"][1:]

    def too_many(partition: dict[str, Any]) -> None:
        last = partition["stages"][-1]
        partition["stages"] += [dict(last, index=len(partition["stages"]) + k) for k in range(cores)]

    def swapped(partition: dict[str, Any]) -> None:
        partition["stages"][0]["index"], partition["stages"][1]["index"] = 1, 0

    def fewer_unexplained(edited: dict[str, Any]) -> None:
        edited["partition"]["requested"] = edited["pipeline_cores"] = cores + 1
        edited["partition"]["note"] = ""

    cases = [
        ("partition=[]", _edit(_set("partition", []))),
        ("partition=\"2 stages\"", _edit(_set("partition", "2 stages"))),
        ("partition without stages", _in_partition(lambda p: p.pop("stages"))),
        ("partition without requested", _in_partition(lambda p: p.pop("requested"))),
        ("partition.stages={}", _in_partition(lambda p: p.__setitem__("stages", {}))),
        ("partition.requested=\"2\"", _in_partition(lambda p: p.__setitem__("requested", str(cores)))),
        ("partition.requested=0", _in_partition(lambda p: p.__setitem__("requested", 0))),
        ("partition.requested=pipeline_cores+1", _in_partition(lambda p: p.__setitem__("requested", cores + 1))),
        ("partition.note=5", _in_partition(lambda p: p.__setitem__("note", 5))),
        ("partition.surprise", _in_partition(lambda p: p.__setitem__("surprise", 1))),
        ("partition.stages[0]=null", _in_partition(lambda p: p["stages"].__setitem__(0, None))),
        ("partition.stages[0] without first", _in_stage(0, lambda s: s.pop("first"))),
        ("partition.stages[0].index=-1", _in_stage(0, lambda s: s.__setitem__("index", -1))),
        ("partition.stages[0].units=0", _in_stage(0, lambda s: s.__setitem__("units", 0))),
        ("partition.stages[1].cost=-1", _in_stage(1, lambda s: s.__setitem__("cost", -1))),
        ("partition.stages[1].cost=\"fast\"", _in_stage(1, lambda s: s.__setitem__("cost", "fast"))),
        ("partition.stages[1].inputs=[[-2]]", _in_stage(1, lambda s: s.__setitem__("inputs", [[-2]]))),
        ("partition.stages[1].surprise", _in_stage(1, lambda s: s.__setitem__("surprise", True))),
        ("partition with one stage", _in_partition(one_stage)),
        ("partition with more stages than cores", _in_partition(too_many)),
        ("partition stages out of order", _in_partition(swapped)),
        ("partition with fewer stages and no note", _edit(fewer_unexplained)),
    ]
    return [Damage(f"manifest:{name}", "manifest", apply) for name, apply in cases]


def partition_semantic_edits(manifest: dict[str, Any]) -> list[Damage]:
    """Edits of a partition that keep it valid but change what it says (caught by the seal)."""
    def moved_cut(partition: dict[str, Any]) -> None:
        first, second = partition["stages"][:2]
        first["last"], second["first"] = second["first"], first["last"]

    return [
        Damage("semantic:partition cut moved", "semantic", _in_partition(moved_cut)),
        Damage("semantic:partition stage cost doubled", "semantic",
               _in_stage(0, lambda s: s.__setitem__("cost", 2 * s.get("cost", 1) + 1))),
        Damage("semantic:partition note changed", "semantic", _in_partition(lambda p: p.__setitem__("note", "edited"))),
    ]


def semantic_edits(manifest: dict[str, Any]) -> list[Damage]:
    """Edits that keep the manifest valid but change what it says (caught by the seal)."""
    def more_cores(m: dict[str, Any]) -> None:
        m["pipeline_cores"] = int(m.get("pipeline_cores", 1)) + 1

    def flipped_batching(m: dict[str, Any]) -> None:
        m["dynamic_batching"] = not m.get("dynamic_batching", True)

    def other_batch(m: dict[str, Any]) -> None:
        if m.get("batch_size") and m.get("inputs"):
            m["batch_size"] += 1
            m["inputs"][0]["shape"][m.get("batch_dim", 0)] = m["batch_size"]

    cases = [Damage("semantic:pipeline_cores+1", "semantic", _edit(more_cores)),
             Damage("semantic:dynamic_batching flipped", "semantic", _edit(flipped_batching)),
             Damage("semantic:target=inf2", "semantic", _edit(_set("target", "inf2")))]
    if manifest.get("batch_size") and manifest.get("inputs"):
        cases.append(Damage("semantic:batch_size and input shape+1", "semantic", _edit(other_batch)))
    return cases


def in_zip_entry(suffix: str, inner: Damage) -> Damage:
    """``inner`` applied to the archive entry whose name ends with ``suffix`` (the archive
    is rewritten entry by entry, stored, as TorchScript writes it)."""
    import io

    def apply(data: bytes) -> bytes:
        source = zipfile.ZipFile(io.BytesIO(data))
        out = io.BytesIO()
        with source, zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as target:
            for info in source.infolist():
                content = source.read(info.filename)
                target.writestr(info, inner.apply(content) if info.filename.endswith(suffix) else content)
        return out.getvalue()

    return Damage(inner.name, inner.kind, apply)


def in_json_attribute(attribute: str, inner: Damage) -> Damage:
    """``inner`` applied to a string attribute of the nodes of a JSON graph (an MXNet
    symbol file keeps the ncrt manifest in the ``__ncrt_manifest__`` attribute)."""
    def apply(data: bytes) -> bytes:
        graph = json.loads(data)
        for node in graph.get("nodes", []):
            attrs = node.get("attrs") or {}
            if attribute in attrs:
                attrs[attribute] = inner.apply(attrs[attribute].encode()).decode("utf-8", "replace")
        return json.dumps(graph, ensure_ascii=False).encode()  # MXNet's JSON reader knows no \\u escapes

    return Damage(inner.name, inner.kind, apply)


# --------------------------------------------------------------------------- applying


def damaged_copies(model: Path, target: str | None, cases: Iterable[Damage], workdir: Path) -> Iterator[tuple[Damage, Path]]:
    """For each case: a copy of ``model`` (a file or directory) with ``target`` damaged.

    ``target`` is the file inside a model directory to damage (None for a model that is
    one file). Copies are made one at a time under ``workdir`` and removed after use.
    """
    for number, case in enumerate(cases):
        copy = workdir / f"case{number}-{model.name}"
        if model.is_dir():
            shutil.copytree(model, copy)
        else:
            shutil.copy2(model, copy)
        victim = copy / target if target else copy
        victim.write_bytes(case.apply(victim.read_bytes()))
        try:
            yield case, copy
        finally:
            shutil.rmtree(copy) if copy.is_dir() else copy.unlink(missing_ok=True)


@dataclass
class Outcome:
    """What one load of a damaged copy did."""

    case: Damage
    verdict: str  # clean, accepted, unclean
    error: str = ""


@dataclass
class Report:
    """The outcomes of a damage matrix, with counts per verdict and the unclean cases."""

    outcomes: list[Outcome] = field(default_factory=list)

    def counts(self) -> Counter:
        return Counter(outcome.verdict for outcome in self.outcomes)

    def unclean(self) -> list[Outcome]:
        return [outcome for outcome in self.outcomes if outcome.verdict == "unclean"]

    def summary(self) -> str:
        counts = self.counts()
        lines = [f"{len(self.outcomes)} cases: {counts['clean']} clean, {counts['accepted']} accepted, "
                 f"{counts['unclean']} unclean"]
        lines += [f"  unclean {outcome.case.name}: {outcome.error}" for outcome in self.unclean()]
        return "\n".join(lines)


def classify(load: Callable[[Path], Any], path: Path) -> tuple[str, str]:
    """(verdict, error text) of ``load(path)``; see the module docstring for the verdicts."""
    try:
        load(path)
    except ModelLoadError as error:
        text = str(error)
        if path.name in text:
            return "clean", f"{type(error).__name__}: {text[:600]}"
        return "unclean", f"{type(error).__name__} not naming the file: {text[:300]}"
    except Exception as error:  # noqa: BLE001 - what the matrix is for
        where = traceback.extract_tb(error.__traceback__)[-1]
        return "unclean", f"{type(error).__name__} at {Path(where.filename).name}:{where.lineno}: {str(error)[:120]}"
    return "accepted", ""


def run_matrix(model: Path, target: str | None, cases: Iterable[Damage], load: Callable[[Path], Any],
               workdir: Path) -> Report:
    """Load a damaged copy of ``model`` for every case and sort the outcomes."""
    report = Report()
    for case, copy in damaged_copies(model, target, cases, workdir):
        verdict, error = classify(load, copy)
        report.outcomes.append(Outcome(case, verdict, error))
    return report
