"""`mol split`: exact folds on a tiny manifest, in every mode, and its errors."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from components.cli import main
from components.errors import UserError
from components.config import SplitSettings
from components.split import split

CLASSES = ["negative", "positive", "surprise"]


def write_manifest(path, rows):
    """rows: (sample_id, dataset, subject, label)."""
    table = pd.DataFrame([{"sample_id": sid, "dataset": ds, "subject": subj, "video_id": sid.rsplit("/", 1)[-1],
                           "frames_dir": f"frames/{sid}", "n_frames": 16, "onset": 1, "apex": "", "offset": 16,
                           "emotion": CLASSES[label] if label >= 0 else "fear", "label": label,
                           "label_name": CLASSES[label] if label >= 0 else ""}
                          for sid, ds, subj, label in rows])
    table.to_csv(path, index=False)
    return path


@pytest.fixture
def manifest(tmp_path):
    rows = [("casme2/sub01/a", "casme2", "casme2/01", 0), ("casme2/sub01/b", "casme2", "casme2/01", 1),
            ("casme2/sub02/a", "casme2", "casme2/02", 1),
            ("samm/006/a", "samm", "samm/006", 0), ("samm/006/b", "samm", "samm/006", 0),
            ("samm/006/c", "samm", "samm/006", 1),
            ("samm/007/a", "samm", "samm/007", -1)]  # only an unmapped emotion: no test sample
    return write_manifest(tmp_path / "manifest.csv", rows)


def test_loso_exact_folds_and_skipped_subject(manifest, tmp_path, capsys):
    doc = split(manifest, tmp_path / "folds.json")
    assert "skipped subjects with no test samples: samm/007" in capsys.readouterr().out
    assert json.loads((tmp_path / "folds.json").read_text()) == doc
    assert doc["mode"] == "loso" and doc["num_classes"] == 2 and doc["class_names"] == ["negative", "positive"]
    assert [(f["fold"], f["test_subject"], f["test"]) for f in doc["folds"]] == [
        (0, "casme2/01", ["casme2/sub01/a", "casme2/sub01/b"]),
        (1, "casme2/02", ["casme2/sub02/a"]),
        (2, "samm/006", ["samm/006/a", "samm/006/b", "samm/006/c"])]
    assert doc["folds"][1]["train"] == ["casme2/sub01/a", "casme2/sub01/b", "samm/006/a", "samm/006/b", "samm/006/c"]
    for fold in doc["folds"]:  # no sample in both, none lost
        assert not set(fold["train"]) & set(fold["test"])
        assert len(fold["train"]) + len(fold["test"]) == 6


def test_classes_override_names_absent_classes(manifest, tmp_path):
    doc = split(manifest, tmp_path / "folds.json", num_classes=3)
    assert doc["class_names"] == ["negative", "positive", "class_2"]
    with pytest.raises(UserError, match="--classes 2 or more"):
        split(manifest, tmp_path / "folds.json", num_classes=1)


def test_subjects_restrict_the_study(manifest, tmp_path, capsys):
    doc = split(manifest, tmp_path / "folds.json", subjects=["casme2/01", "samm/006", "smic/s9"])
    assert "smic/s9" in capsys.readouterr().out
    assert [f["test_subject"] for f in doc["folds"]] == ["casme2/01", "samm/006"]
    assert doc["folds"][0]["train"] == ["samm/006/a", "samm/006/b", "samm/006/c"]


def test_kfold_balanced_grouped_and_deterministic(tmp_path):
    sizes = [5, 4, 3, 3, 2, 2, 1]
    rows = [(f"d/s{s}/v{i}", "d", f"s{s}", i % 2) for s, n in enumerate(sizes) for i in range(n)]
    manifest = write_manifest(tmp_path / "m.csv", rows)
    doc = split(manifest, tmp_path / "a.json", SplitSettings(mode="kfold", k=3, seed=1))
    assert doc["k"] == 3 and len(doc["folds"]) == 3
    assert sorted(len(f["test"]) for f in doc["folds"]) == [6, 7, 7]  # 20 samples as even as subjects allow
    subjects = [s for f in doc["folds"] for s in f["test_subjects"]]
    assert sorted(subjects) == [f"s{s}" for s in range(7)]  # every subject tested exactly once
    for f in doc["folds"]:
        assert f["test_subject"] == ",".join(f["test_subjects"])
        assert not {sid.split("/")[1] for sid in f["train"]} & set(f["test_subjects"])
    assert split(manifest, tmp_path / "b.json", SplitSettings(mode="kfold", k=3, seed=1)) == doc
    with pytest.raises(UserError, match="--k 8"):
        split(manifest, tmp_path / "c.json", SplitSettings(mode="kfold", k=8))


def test_holdout_is_the_first_kfold_fold_alone(tmp_path):
    sizes = [5, 4, 3, 3, 2, 2, 1]
    rows = [(f"d/s{s}/v{i}", "d", f"s{s}", i % 2) for s, n in enumerate(sizes) for i in range(n)]
    manifest = write_manifest(tmp_path / "m.csv", rows)
    kfold = split(manifest, tmp_path / "k.json", SplitSettings(mode="kfold", k=4, seed=2))
    holdout = split(manifest, tmp_path / "h.json", SplitSettings(mode="holdout", k=4, seed=2))
    assert holdout["mode"] == "holdout" and holdout["k"] == 4
    assert holdout["folds"] == kfold["folds"][:1]
    fold = holdout["folds"][0]
    assert len(fold["train"]) + len(fold["test"]) == 20 and len(fold["test"]) == 5  # about 1/4 of the samples
    with pytest.raises(UserError, match="split.k is 1, outside >= 2"):
        split(manifest, tmp_path / "x.json", SplitSettings(mode="holdout", k=1))


def test_lodo(manifest, tmp_path):
    doc = split(manifest, tmp_path / "folds.json", SplitSettings(mode="lodo"))
    assert [(f["test_dataset"], f["test_subjects"]) for f in doc["folds"]] == [
        ("casme2", ["casme2/01", "casme2/02"]), ("samm", ["samm/006"])]
    assert doc["folds"][1]["train"] == ["casme2/sub01/a", "casme2/sub01/b", "casme2/sub02/a"]
    assert doc["datasets"] == ["casme2", "samm"]  # recorded for the models' provenance tags


def test_lodo_needs_two_datasets(tmp_path):
    manifest = write_manifest(tmp_path / "m.csv", [("d/a/1", "d", "a", 0), ("d/b/1", "d", "b", 1)])
    with pytest.raises(UserError, match="two or more data sets"):
        split(manifest, tmp_path / "f.json", SplitSettings(mode="lodo"))


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["split", "--manifest", str(tmp_path / "absent.csv"), "--out", str(tmp_path / "f.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("mol split: error: manifest") and "\n" not in err
    one_subject = write_manifest(tmp_path / "m.csv", [("d/a/1", "d", "a", 0), ("d/a/2", "d", "a", 1)])
    assert main(["split", "--manifest", str(one_subject), "--out", str(tmp_path / "f.json")]) == 2
    assert "at least two groups" in capsys.readouterr().err
    assert not (tmp_path / "f.json").exists()
