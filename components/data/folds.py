"""Cross-validation folds: FOLDS.json (written by `mol split`, read by `mol train`) and the per-fold
folders of a training run (`RUNS/fold_KK/`, written by `mol train`, read by `mol evaluate`).

FOLDS.json: {"mode", "num_classes", "class_names", "seed", "manifest_sha256", "datasets", "folds": [{"fold": 0,
"test_subject": "...", "train": [sample_id, ...], "test": [sample_id, ...]}, ...]}.

RUNS/fold_plan.json, written by every `mol train` into its run: the folds the run is meant to hold and
the digest of each fold's samples. `mol evaluate` names the folds that are missing, unfinished, or were
trained on other samples (a folds file changed under a run) instead of pooling whatever it finds.
"""
from __future__ import annotations

import json
from pathlib import Path

from components.errors import UserError
from components.io import digest, write_json

FOLD_KEYS = ("fold", "test_subject", "train", "test")


def read_folds(path: str | Path) -> dict:
    """FOLDS.json, checked: the document's keys and every fold's."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"folds file {path} does not exist; create it with `mol split --out {path}`")
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"folds file {path} is not JSON ({e}); recreate it with `mol split`") from None
    if not isinstance(document, dict):
        raise UserError(f"folds file {path} holds a JSON {type(document).__name__}, not the object `mol split` "
                        "writes; recreate it with `mol split`")
    missing = [k for k in ("folds", "num_classes", "class_names") if k not in document]
    if missing or not document["folds"]:
        raise UserError(f"folds file {path} lacks {missing or 'folds'}; recreate it with `mol split`")
    problem = _shape_problem(document)
    if problem:
        raise UserError(f"folds file {path}: {problem}; recreate it with `mol split`")
    return document


def _shape_problem(document: dict) -> str:
    """What is wrong with the types of a FOLDS.json document ('' when nothing)."""
    count, names = document["num_classes"], document["class_names"]
    if isinstance(count, bool) or not isinstance(count, int) or count < 2:
        return f"num_classes is {count!r}, not a whole number of at least 2"
    if not isinstance(names, list) or len(names) != count or not all(isinstance(n, str) for n in names):
        return f"class_names is {names!r}, not a list of {count} names"
    if not isinstance(document["folds"], list):
        return "folds is not a list"
    numbers = set()
    for index, fold in enumerate(document["folds"]):
        absent = [k for k in FOLD_KEYS if not isinstance(fold, dict) or k not in fold]
        if absent:
            return f"fold {index} lacks {', '.join(absent)}"
        if isinstance(fold["fold"], bool) or not isinstance(fold["fold"], int) or fold["fold"] < 0:
            return f"fold {index} has the number {fold['fold']!r}, not a whole number of at least 0"
        if fold["fold"] in numbers:
            return f"fold number {fold['fold']} appears twice"
        numbers.add(fold["fold"])
        for key in ("train", "test"):
            if not isinstance(fold[key], list) or not all(isinstance(s, str) for s in fold[key]):
                return f"fold {index}'s {key} is not a list of sample ids"
    return ""


PLAN_FILE = "fold_plan.json"


def members_digest(spec: dict, folds_doc: dict) -> str:
    """What a fold is, as a digest: its test subject, its training and test samples, the class set."""
    return digest(spec["test_subject"], sorted(spec["train"]), sorted(spec["test"]), folds_doc["num_classes"],
                  folds_doc["class_names"])


def write_fold_plan(runs: str | Path, folds_doc: dict) -> None:
    """RUNS/fold_plan.json for `folds_doc` (every process training into RUNS writes the same bytes)."""
    write_json(Path(runs) / PLAN_FILE, {"folds": [{"fold": f["fold"], "test_subject": f["test_subject"],
                                                   "samples": members_digest(f, folds_doc)}
                                                  for f in folds_doc["folds"]]})


def read_fold_plan(runs: str | Path) -> dict[int, dict] | None:
    """fold number -> {"fold", "test_subject", "samples"} of RUNS/fold_plan.json; None for a run trained
    before the plan was recorded (or a damaged record)."""
    try:
        plan = json.loads((Path(runs) / PLAN_FILE).read_text(encoding="utf-8"))
        return {int(f["fold"]): f for f in plan["folds"]}
    except (OSError, ValueError, KeyError, TypeError):
        return None


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
