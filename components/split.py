"""`mol split`: cross-validation folds over a manifest, written as FOLDS.json.

Modes:
- `loso`  leave one subject out: one fold per subject (the protocol of the MER literature).
- `kfold` K folds grouped by subject (no person in both train and test), balanced by sample count.
- `lodo`  leave one data set out (composite manifests: train on CASME II + SAMM, test on SMIC, ...).
- `holdout` one fold only: the first of the `kfold` groups (about 1/K of the samples) is the test set.
          A quick check that fits a laptop's time budget, not a cross-validation: its UF1 is one group's.
- `cross` cross-data-set (as MEB offers): train on the `--train-datasets`, test on each `--test-datasets`
          data set in turn (one fold each); other data sets in the manifest are left out. A data set is
          never on both sides, so no subject is either.

Subjects are already data-set-prefixed in a composite manifest (`casme2/01`), so LOSO never mixes people.
Rows whose label is outside the class set (negative, e.g. an unmapped emotion) are left out and said so.
"""
from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

from components.config import DataSettings, SplitSettings, add_params_argument, params_from_args
from components.data import read_manifest
from components.errors import UserError
from components.io import check_output, write_json


def class_names_of(table: pd.DataFrame, num_classes: int | None) -> list[str]:
    """Class names ordered by label id. A class absent from the manifest is named `class_<id>`."""
    names: dict[int, str] = {}
    for label, name in table[["label", "label_name"]].drop_duplicates().itertuples(index=False):
        if names.setdefault(int(label), name) != name:
            raise UserError(f"label {label} is named both '{names[int(label)]}' and '{name}' in the manifest; "
                            "recreate it with `mol ingest`")
    count = max(names) + 1 if num_classes is None else num_classes
    if max(names) >= count:
        raise UserError(f"the manifest has label {max(names)} but --classes is {count}; "
                        f"pass --classes {max(names) + 1} or more")
    return [names.get(i, f"class_{i}") for i in range(count)]


def fold_entry(index: int, test: pd.DataFrame, train: pd.DataFrame, grouped: bool) -> dict:
    """One fold of FOLDS.json from its test and training rows of the manifest (`grouped`: it also lists its
    test subjects)."""
    subjects = sorted(test["subject"].unique())
    fold = {"fold": index, "test_subject": ",".join(subjects),
            "train": train["sample_id"].tolist(), "test": test["sample_id"].tolist()}
    if grouped:
        fold["test_subjects"] = subjects
    return fold


def loso_groups(table: pd.DataFrame) -> list[list[str]]:
    return [[s] for s in sorted(table["subject"].unique())]


def kfold_groups(table: pd.DataFrame, k: int, seed: int) -> list[list[str]]:
    """Subjects into k groups of near-equal sample counts: largest subject first into the smallest group;
    the seed shuffles the order among subjects of equal size (and so which fold gets which)."""
    counts = table["subject"].value_counts()
    if k < 2 or k > len(counts):
        raise UserError(f"--k {k} must lie between 2 and the number of subjects ({len(counts)})")
    subjects = sorted(counts.index)
    order = np.random.default_rng(seed).permutation(len(subjects))
    shuffled = [subjects[i] for i in order]
    shuffled.sort(key=lambda s: -counts[s])  # stable: ties keep their shuffled order
    groups: list[list[str]] = [[] for _ in range(k)]
    sizes = [0] * k
    for subject in shuffled:
        smallest = min(range(k), key=lambda g: (sizes[g], g))
        groups[smallest].append(subject)
        sizes[smallest] += counts[subject]
    return [sorted(g) for g in groups]


def lodo_groups(table: pd.DataFrame) -> list[list[str]]:
    datasets = sorted(table["dataset"].unique())
    if len(datasets) < 2:
        raise UserError(f"--mode lodo needs a manifest with two or more data sets; this one has only {datasets}")
    return [sorted(table.loc[table["dataset"] == d, "subject"].unique()) for d in datasets]


def _names(text: str) -> list[str]:
    return list(dict.fromkeys(name.strip() for name in text.split(",") if name.strip()))


def cross_folds(table: pd.DataFrame, settings: SplitSettings) -> list[dict]:
    """One fold per test data set: train on every row of the train data sets, test on that data set's."""
    train_sets, test_sets = _names(settings.train_datasets), _names(settings.test_datasets)
    present = sorted(table["dataset"].unique())
    unknown = [d for d in train_sets + test_sets if d not in present]
    if unknown:
        raise UserError(f"--mode cross: the manifest has no usable sample of {', '.join(unknown)}; its data sets are "
                        f"{', '.join(present)} (combine manifests with `mol ingest --combine`)")
    both = [d for d in test_sets if d in train_sets]
    if both:
        raise UserError(f"--mode cross: {', '.join(both)} is in both --train-datasets and --test-datasets; "
                        "a data set is trained on or tested on, not both")
    train = table[table["dataset"].isin(train_sets)]
    left_out = sorted(set(present) - set(train_sets) - set(test_sets))
    if left_out:
        print(f"split: cross leaves out the data sets {', '.join(left_out)}")
    folds = []
    for dataset in test_sets:
        test = table[table["dataset"] == dataset]
        shared = sorted(set(test["subject"]) & set(train["subject"]))
        if shared:
            raise UserError(f"--mode cross: subjects {', '.join(shared[:3])} are in {dataset} and in the training data "
                            "sets; subjects must be prefixed by their data set (recreate the manifest with `mol ingest`)")
        folds.append({**fold_entry(len(folds), test, train, grouped=True), "test_dataset": dataset,
                      "train_datasets": train_sets})
    return folds


def split(manifest: str | Path, out: str | Path, settings: SplitSettings = SplitSettings(),
          num_classes: int | None = None, subjects: list[str] | None = None) -> dict:
    """Write FOLDS.json for `manifest` and return it.

    `num_classes` is the class set's size (default: the largest label + 1), for manifests in which the
    last class happens not to occur. `subjects` restricts the study to those subjects (train and test;
    default: all in the manifest); a listed subject with no usable sample is skipped with a message.
    """
    mode, k, seed = settings.mode, settings.k, settings.seed
    out = check_output(out, "file")
    table = read_manifest(manifest)
    usable = table[table["label"] >= 0]
    if len(usable) < len(table):
        print(f"split: left out {len(table) - len(usable)} rows with a negative label (outside the class set)")
    if usable.empty:
        raise UserError(f"manifest {manifest} has no sample with a class label; check `mol ingest --classes`")
    class_names = class_names_of(usable, num_classes)
    wanted = set(table["subject"] if subjects is None else subjects)
    skipped = sorted(wanted - set(usable["subject"]))
    if skipped:
        print(f"split: skipped subjects with no test samples: {', '.join(skipped)}")
    usable = usable[usable["subject"].isin(wanted)]

    if mode == "cross":
        return write_folds(out, manifest, mode, class_names, seed, cross_folds(usable, settings), usable)
    if mode == "loso":
        groups = loso_groups(usable)
    elif mode in ("kfold", "holdout"):
        groups = kfold_groups(usable, k, seed)
    else:
        groups = lodo_groups(usable)
    if len(groups) < 2:
        raise UserError(f"--mode {mode} needs at least two groups of subjects; the manifest gives {len(groups)}")
    if mode == "holdout":
        groups = groups[:1]

    folds = []
    for group in groups:
        is_test = usable["subject"].isin(group)
        folds.append(fold_entry(len(folds), usable[is_test], usable[~is_test], grouped=mode != "loso"))
        if mode == "lodo":
            folds[-1]["test_dataset"] = usable.loc[is_test, "dataset"].iloc[0]

    return write_folds(out, manifest, mode, class_names, seed, folds, usable, **({"k": k} if mode in ("kfold", "holdout") else {}))


def write_folds(out: str | Path, manifest: str | Path, mode: str, class_names: list[str], seed: int, folds: list[dict],
                usable: pd.DataFrame, **extra) -> dict:
    """Write FOLDS.json (the folds over `usable`, the manifest's rows that have a class) and return it."""
    document = {"mode": mode, "num_classes": len(class_names), "class_names": class_names,
                "seed": seed, "manifest_sha256": hashlib.sha256(Path(manifest).read_bytes()).hexdigest(),
                "datasets": sorted(usable["dataset"].unique()), "folds": folds, **extra}
    write_json(out, document)
    used = {sid for fold in folds for sid in fold["train"] + fold["test"]}
    print(f"split: {len(folds)} {mode} fold{'s' if len(folds) > 1 else ''} over "
          f"{usable[usable['sample_id'].isin(used)]['subject'].nunique()} subjects, {len(used)} samples, "
          f"{len(class_names)} classes -> {out}")
    return document


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--manifest", required=True, help="manifest CSV written by `mol ingest`")
    parser.add_argument("--out", required=True, help="FOLDS.json to write")
    parser.add_argument("--subjects", nargs="+", default=None,
                        help="use only these subjects, for training and testing (default: all in the manifest); "
                             "a listed subject without usable samples is skipped with a message")
    parser.add_argument("--classes", type=int, default=None,
                        help="size of the class set (default: data.classes of --params, else the manifest's "
                             "largest label + 1)")
    add_params_argument(parser)
    SplitSettings.add_arguments(parser)


def run(args: argparse.Namespace) -> int:
    params = params_from_args(args)
    classes = args.classes or (params.section(DataSettings).classes if params else None)
    split(args.manifest, args.out, SplitSettings.from_args(args, params), num_classes=classes, subjects=args.subjects)
    return 0
