"""`mol bench cross-person`: does the model generalise to a new person? Train on the synthetic subjects
derived from one real face only and test on those derived from another (and the reverse), beside the
trivial baselines on the same test clips.

The default holdout (split.mode holdout) tests subjects whose real face is also in training (subject 3 is
the astronaut, subject 6 Grace Hopper, and both are among the training subjects' faces), so it answers "a
new identity warp of a known face". Here the test person was never seen: with the default 8 subjects, one
direction trains on the astronaut's 3 subjects and tests on Grace Hopper's 3, the other the reverse; the
2 morph subjects (both faces) are left out of both. Which real faces a subject derives from is read from
the set's synth.json (`identities`, also the coding sheet's `Real faces` column).

It reuses the pipeline's outputs (the manifest, the clip files of `mol labels`) and stage functions: per
direction OUT/<train face>-to-<test face>/folds.json (one fold, mode `cross-person`), `mol train` of it and
`mol evaluate`, without MLflow or registration; finished folds are reused. Prints one markdown row per
direction: video UF1 / UAR beside chance and the majority class, flow EPE beside predicting no motion,
landmark NME beside the training clips' mean shape.
"""
from __future__ import annotations

import argparse
import json
from itertools import permutations
from pathlib import Path

import pandas as pd

from components.config import DataSettings, EvaluateSettings, ExecutionSettings, TrainSettings, load_params
from components.data import read_manifest
from components.errors import UserError
from components.evaluate import evaluate
from components.split import class_names_of, fold_entry, write_folds
from components.synth import SETTINGS_FILE
from components.train import train

MODE = "cross-person"


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--synthetic", default="data/synthetic",
                        help=f"the `mol synth` folder the manifest was ingested from: its {SETTINGS_FILE} says which "
                             "real faces each subject derives from (default data/synthetic)")
    parser.add_argument("--manifest", default="data/manifest.csv", help="manifest of `mol ingest` (default data/manifest.csv)")
    parser.add_argument("--clips", default="data/clips", help="clip files of `mol labels` (default data/clips)")
    parser.add_argument("--out", default="runs/cross-person", help="one folder per direction (default runs/cross-person)")
    parser.add_argument("--one-way", action="store_true",
                        help="only the first direction (train on the first real face, test on the second)")
    parser.add_argument("--params", default="params.yaml",
                        help="the schedule: this file's train: and execution: sections, and data.classes (default "
                             "params.yaml, the laptop schedule); the flags below override single keys")
    TrainSettings.add_arguments(parser)
    ExecutionSettings.add_arguments(parser, only=("device", "threads", "checkpoint_every", "eval_batch_size"))


def subject_faces(synthetic: str | Path) -> dict[str, tuple[str, ...]]:
    """Subject folder (`sub01`) -> the real faces it derives from, from the set's synth.json."""
    path = Path(synthetic) / SETTINGS_FILE
    try:
        identities = json.loads(path.read_text(encoding="utf-8"))["identities"]
    except (OSError, ValueError, KeyError, TypeError):
        raise UserError(f"{path} does not say which real faces the subjects derive from (no such file, or made "
                        "before it did); pass --synthetic the `mol synth` folder, or make the set again") from None
    return {folder: tuple(weights) for folder, weights in identities.items()}


def person_groups(table: pd.DataFrame, faces: dict[str, tuple[str, ...]]) -> dict[str, list[str]]:
    """Real face -> the manifest's subjects derived from that face alone (morph subjects belong to none)."""
    groups: dict[str, set[str]] = {}
    for sample_id, subject in zip(table["sample_id"], table["subject"]):
        folder = sample_id.split("/")[-2]  # casme2/sub01/EP01_01f
        if folder not in faces:
            raise UserError(f"sample {sample_id} has no subject folder in the synthetic set's {SETTINGS_FILE}; pass "
                            "--manifest and --synthetic of the same set")
        if len(faces[folder]) == 1:
            groups.setdefault(faces[folder][0], set()).add(subject)
    if len(groups) < 2:
        raise UserError(f"the manifest has subjects of {len(groups)} real face(s) alone ({', '.join(groups) or 'none'}); "
                        "a cross-person test needs two: make the synthetic set with --subjects 2 or more")
    return {face: sorted(subjects) for face, subjects in sorted(groups.items())}


def write_direction_folds(manifest: str | Path, out: Path, trained: list[str], tested: list[str],
                          num_classes: int | None, seed: int) -> dict:
    """FOLDS.json with one fold: train on the subjects `trained`, test on `tested`."""
    table = read_manifest(manifest)
    usable = table[table["label"] >= 0]
    usable = usable[usable["subject"].isin(trained + tested)]
    is_test = usable["subject"].isin(tested)
    fold = fold_entry(0, usable[is_test], usable[~is_test], grouped=True)
    return write_folds(out, manifest, MODE, class_names_of(usable, num_classes), seed, [fold], usable)


def run_direction(args: argparse.Namespace, schedule: TrainSettings, execution: ExecutionSettings,
                  num_classes: int | None, groups: dict[str, list[str]], train_face: str, test_face: str) -> dict:
    """Train on one face's subjects, test on the other's: the table row."""
    out = Path(args.out) / f"{train_face}-to-{test_face}"
    folds = out / "folds.json"
    write_direction_folds(args.manifest, folds, groups[train_face], groups[test_face], num_classes, schedule.seed)
    train(args.clips, folds, out, config=schedule, execution=execution, track=False)
    pooled = evaluate(out, out / "evaluation", EvaluateSettings(register=False), track=False)
    baselines = pooled.get("baselines", {})
    return {"train": train_face, "test": test_face, "train_subjects": len(groups[train_face]),
            "test_subjects": len(groups[test_face]), "videos": pooled["video"]["n"],
            "uf1": pooled["uf1"], "uar": pooled["uar"],
            "uf1_chance": baselines.get("chance", {}).get("uf1"), "uf1_majority": baselines.get("majority", {}).get("uf1"),
            "flow_epe": pooled["flow_epe"], "flow_epe_zero": pooled.get("flow_epe_zero"),
            "landmark_nme": pooled["landmark_nme"], "landmark_nme_mean_shape": pooled.get("landmark_nme_mean_shape")}


def _cell(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def format_table(rows: list[dict]) -> str:
    lines = ["| trained on (subjects) | tested on (subjects, videos) | video UF1 | chance UF1 | majority UF1 | video UAR "
             "| flow EPE (px) | zero flow | landmark NME | mean shape |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['train']} ({r['train_subjects']}) | {r['test']} ({r['test_subjects']}, {r['videos']}) | "
                     f"{_cell(r['uf1'])} | {_cell(r['uf1_chance'])} | {_cell(r['uf1_majority'])} | {_cell(r['uar'])} | "
                     f"{_cell(r['flow_epe'])} | {_cell(r['flow_epe_zero'])} | {_cell(r['landmark_nme'], 4)} | "
                     f"{_cell(r['landmark_nme_mean_shape'], 4)} |")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    params = load_params(args.params)
    schedule, execution = TrainSettings.from_args(args, params), ExecutionSettings.from_args(args, params)
    num_classes = params.section(DataSettings).classes
    groups = person_groups(read_manifest(args.manifest), subject_faces(args.synthetic))
    directions = list(permutations(groups, 2))
    rows = [run_direction(args, schedule, execution, num_classes, groups, a, b)
            for a, b in (directions[:1] if args.one_way else directions)]
    s = schedule
    print(f"\ncross-person: {s.steps} steps of batch {s.batch_size}, lr {s.lr}, seed {s.seed}; subjects of one real "
          f"face trained on, another's tested ({', '.join(f'{face}: {len(subjects)}' for face, subjects in groups.items())} "
          "subjects; morphs left out)")
    print(format_table(rows))
    return 0
