"""Cross-validation folds: FOLDS.json (written by `mol split`, read by `mol train`) and the per-fold
folders of a training run (`RUNS/fold_KK/`, written by `mol train`, read by `mol evaluate`).

FOLDS.json: {"mode", "num_classes", "class_names", "seed", "manifest_sha256", "datasets", "folds": [{"fold": 0,
"test_subject": "...", "train": [sample_id, ...], "test": [sample_id, ...]}, ...]}.
"""
from __future__ import annotations

import json
from pathlib import Path

from components.errors import UserError

FOLD_KEYS = ("fold", "test_subject", "train", "test")


def read_folds(path: str | Path) -> dict:
    """FOLDS.json, checked: the document's keys and every fold's."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"folds file {path} does not exist; create it with `mol split --out {path}`")
    try:
        document = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"folds file {path} is not JSON ({e}); recreate it with `mol split`") from None
    missing = [k for k in ("folds", "num_classes", "class_names") if k not in document]
    if missing or not document["folds"]:
        raise UserError(f"folds file {path} lacks {missing or 'folds'}; recreate it with `mol split`")
    for index, fold in enumerate(document["folds"]):
        absent = [k for k in FOLD_KEYS if not isinstance(fold, dict) or k not in fold]
        if absent:
            raise UserError(f"folds file {path}: fold {index} lacks {', '.join(absent)}; recreate it with `mol split`")
    return document


def datasets_of(document: dict) -> list[str]:
    """The data sets a FOLDS.json covers: its `datasets` list, or (files from before it) the first part of
    its sample ids (`casme2/sub01/EP02_01f`)."""
    if document.get("datasets"):
        return list(document["datasets"])
    return sorted({sample_id.split("/", 1)[0] for fold in document["folds"]
                   for sample_id in fold["train"] + fold["test"]})


def fold_dir(runs: str | Path, fold: int) -> Path:
    """Where `mol train` writes fold `fold` of a run: RUNS/fold_KK/."""
    return Path(runs) / f"fold_{fold:02d}"


def fold_dirs(runs: str | Path) -> list[Path]:
    """The fold folders present in a run, in fold order."""
    return sorted(Path(runs).glob("fold_[0-9][0-9]*"))
