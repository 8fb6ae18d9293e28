"""`mol ingest`: read a data set as distributed into a manifest CSV, plus rejects.csv beside it.

Every clip either becomes a manifest row or a rejects.csv row with its reason: nothing is dropped
silently. `frames_dir` is stored relative to the manifest's folder (see components.data.manifest).
"""
from __future__ import annotations

import argparse
import importlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from components.config import DataSettings, add_params_argument, params_from_args
from components.data import (ADAPTERS, MANIFEST_COLUMNS, REJECT_COLUMNS, read_manifest, resolve_frames_dir,
                             stored_frames_dir)
from components.data.samples import Checked, Reject, check_sample
from components.errors import UserError
from components.io import check_output, write_csv


@dataclass
class IngestSummary:
    manifest: str
    rejects: str
    n_samples: int
    per_label: dict[str, int]             # class name -> samples, in label id order
    per_subject: dict[str, int]           # subject -> samples
    rejects_by_reason: dict[str, int]     # reason -> rejected clips
    warnings: list[str] = field(default_factory=list)

    @property
    def n_rejects(self) -> int:
        return sum(self.rejects_by_reason.values())


def ingest(data: DataSettings, out: str | Path, strict: bool = False) -> IngestSummary:
    """Write the manifest `out` and `rejects.csv` beside it for the data set `data` describes; return the counts."""
    dataset, root = data.dataset, Path(data.root)
    out = check_output(out, "file")
    check_output(out.parent / "rejects.csv", "file", flag="rejects.csv beside --out:")
    if not data.root or not root.is_dir():
        raise UserError(f"--root {data.root!r} is not a folder; pass the folder that holds the {dataset} clips")
    adapter = importlib.import_module(ADAPTERS[dataset])
    samples, rejects = adapter.collect(root, Path(data.annotations) if data.annotations else None, data.classes)

    checked: list[Checked] = []
    for result in map(check_sample, samples):
        (checked if isinstance(result, Checked) else rejects).append(result)
    if strict and rejects:
        first = rejects[0]
        raise UserError(f"{len(rejects)} clip(s) rejected with --strict, first {first.sample_id}: {first.reason}; "
                        "fix the data or drop --strict (rejects are then listed in rejects.csv)")

    manifest = pd.DataFrame([{**c.row, "frames_dir": stored_frames_dir(out, c.frames_dir)} for c in checked],
                            columns=MANIFEST_COLUMNS)
    manifest = manifest.sort_values("sample_id", kind="stable")
    for column in ("first_frame", "last_frame", "onset", "apex", "offset"):
        manifest[column] = manifest[column].astype("Int64")
    rejects_path = Path(out).parent / "rejects.csv"
    write_csv(out, manifest)
    write_csv(rejects_path, _rejects_table(rejects, out))

    summary = IngestSummary(
        manifest=str(out), rejects=str(rejects_path), n_samples=len(manifest),
        per_label={name: int(n) for (_, name), n in manifest.groupby(["label", "label_name"]).size().items()},
        per_subject=dict(sorted(Counter(manifest["subject"]).items())),
        rejects_by_reason=dict(Counter(r.reason for r in rejects).most_common()),
        warnings=[w for c in checked for w in c.warnings],
    )
    if summary.n_samples == 0:
        raise UserError(f"no usable clip found under {data.root} ({summary.n_rejects} rejected, see {rejects_path}); "
                        f"check that --root and --dataset {dataset} match the data")
    return summary


def _rejects_table(rejects: list[Reject], out: str) -> pd.DataFrame:
    rows = [{"sample_id": r.sample_id, "dataset": r.dataset, "subject": r.subject, "video_id": r.video_id,
             "frames_dir": stored_frames_dir(out, r.frames_dir) if r.frames_dir else "",
             "emotion": r.emotion, "reason": r.reason} for r in rejects]
    return pd.DataFrame(rows, columns=REJECT_COLUMNS).sort_values("sample_id", kind="stable")


def print_summary(summary: IngestSummary) -> None:
    print(f"manifest: {summary.manifest}: {summary.n_samples} samples, {len(summary.per_subject)} subjects")
    for name, n in summary.per_label.items():
        print(f"  {name:<12} {n}")
    print(f"rejects: {summary.rejects}: {summary.n_rejects}")
    for reason, n in summary.rejects_by_reason.items():
        print(f"  {n:>4}  {reason}")
    for warning in summary.warnings:
        print(f"warning: {warning}")


def combine(manifests: list[str | Path], out: str | Path) -> pd.DataFrame:
    """One manifest of several (for `mol split --mode lodo|cross`): rows as they are, `frames_dir` re-based
    to `out`'s folder. Each input's rejects.csv stays where ingest wrote it."""
    tables, names = [], {}
    for path in manifests:
        table = read_manifest(path)
        for label, name in table[["label", "label_name"]].drop_duplicates().itertuples(index=False):
            first = names.setdefault(int(label), (name, path))
            if first[0] != name:
                raise UserError(f"label {label} is '{first[0]}' in {first[1]} but '{name}' in {path}; ingest every "
                                "data set with the same class set (e.g. --classes 3) before combining")
        table["frames_dir"] = [stored_frames_dir(out, resolve_frames_dir(path, d)) for d in table["frames_dir"]]
        tables.append(table)
    combined = pd.concat(tables, ignore_index=True).sort_values("sample_id", kind="stable")
    doubled = combined.loc[combined["sample_id"].duplicated(), "sample_id"].tolist()
    if doubled:
        raise UserError(f"sample {doubled[0]} is in more than one of the manifests ({len(doubled)} such); "
                        "combine each data set once")
    write_csv(out, combined[MANIFEST_COLUMNS])
    print(f"manifest: {out}: {len(combined)} samples of {', '.join(sorted(combined['dataset'].unique()))}, "
          f"{combined['subject'].nunique()} subjects")
    return combined


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="manifest CSV to write; rejects.csv goes beside it")
    parser.add_argument("--strict", action="store_true", help="fail if any clip is rejected")
    parser.add_argument("--combine", nargs="+", metavar="MANIFEST", default=None,
                        help="instead of reading a data set, combine these manifests (written by `mol ingest`) into "
                             "--out, for `mol split --mode lodo|cross`")
    add_params_argument(parser)
    DataSettings.add_arguments(parser)


def run(args: argparse.Namespace) -> int:
    if args.combine:
        combine(args.combine, args.out)
        return 0
    print_summary(ingest(DataSettings.from_args(args, params_from_args(args)), args.out, args.strict))
    return 0
