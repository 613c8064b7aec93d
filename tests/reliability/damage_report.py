"""The whole damaged-file matrix per framework, as a report (not a test).

    python tests/reliability/damage_report.py [torch tensorflow mxnet] [--flips N] [--json]

Builds a tiny compiled model of each framework, damages copies of it every way the
harness knows (byte flips in the zip header, data and central directory of a
TorchScript file or in each file of a SavedModel / checkpoint, truncations, random
bytes, manifest edits), loads each with ``NEURON_RT_VALIDATE_HASH`` false and true, and
prints the counts and every case that failed uncleanly (there should be none: every
damaged load is a ModelLoadError naming the file). ``test_reliability_manifests.py`` runs
the manifest cases and this byte matrix as tests.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import warnings
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from damaged_files import (  # noqa: E402
    Report,
    byte_flips,
    manifest_edits,
    random_contents,
    run_matrix,
    semantic_edits,
    truncations,
)

import ncrt  # noqa: E402


def _files(model_path: Path) -> list[str | None]:
    if model_path.is_file():
        return [None]
    return sorted(str(p.relative_to(model_path)) for p in model_path.rglob("*") if p.is_file())


def byte_cases(model_path: Path, target: str | None, flips: int, seed: int) -> list:
    data = (model_path / target if target else model_path).read_bytes()
    cases = byte_flips(data, per_region=flips, seed=seed)
    cases += truncations(len(data), count=4, seed=seed)
    cases += random_contents([0, 16, len(data)], seed=seed)
    return cases


def report_for(framework: str, flips: int, workdir: Path) -> dict[str, Report]:
    from framework_models import BUILDERS

    (workdir / "model").mkdir()
    compiled = BUILDERS[framework](workdir / "model")
    reports: dict[str, Report] = {}
    for validate in ("false", "true"):
        os.environ["NEURON_RT_VALIDATE_HASH"] = validate
        ncrt.reset_runtime()
        report = Report()
        for number, target in enumerate(_files(compiled.path)):
            cases = byte_cases(compiled.path, target, flips, seed=number)
            partial = run_matrix(compiled.path, target, cases, lambda copy: compiled.load(copy).unload(), workdir)
            for outcome in partial.outcomes:
                outcome.case = type(outcome.case)(f"{target or compiled.path.name}: {outcome.case.name}",
                                                  outcome.case.kind, outcome.case.apply)
            report.outcomes += partial.outcomes
        edits = [compiled.wrap(case) for case in manifest_edits(compiled.manifest) + semantic_edits(compiled.manifest)]
        report.outcomes += run_matrix(compiled.path, compiled.manifest_file, edits,
                                      lambda copy: compiled.load(copy).unload(), workdir).outcomes
        reports[f"NEURON_RT_VALIDATE_HASH={validate}"] = report
    return reports


def _summary(report: Report) -> dict:
    unclean = Counter(outcome.error.split(":", 1)[0].split(" at ")[0] for outcome in report.unclean())
    return {"cases": len(report.outcomes), **report.counts(), "unclean by error": dict(unclean),
            "unclean cases": [f"{o.case.name} -> {o.error}" for o in report.unclean()],
            "accepted cases": [o.case.name for o in report.outcomes if o.verdict == "accepted"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("frameworks", nargs="*", default=["torch", "tensorflow", "mxnet"])
    parser.add_argument("--flips", type=int, default=8, help="byte flips per region (default 8)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    os.environ.setdefault("NCRT_STATE_DIR", tempfile.mkdtemp(prefix="ncrt-damage-"))
    results = {}
    for framework in args.frameworks:
        with tempfile.TemporaryDirectory() as workdir:
            results[framework] = {mode: _summary(report) for mode, report in
                                  report_for(framework, args.flips, Path(workdir)).items()}
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    for framework, modes in results.items():
        for mode, summary in modes.items():
            print(f"{framework} {mode}: {summary['cases']} cases, {summary.get('clean', 0)} clean, "
                  f"{summary.get('accepted', 0)} accepted, {summary.get('unclean', 0)} unclean "
                  f"{summary['unclean by error']}")
            for line in summary["unclean cases"]:
                print(f"    {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
