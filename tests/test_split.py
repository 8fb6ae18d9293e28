"""`mol split`: exact folds on a tiny manifest, in every mode, and its errors."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from components.cli import main
from components.config import SplitSettings
from components.errors import UserError
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


# ---------------------------------------------------------------- cross-data-set

def test_cross_trains_on_some_data_sets_and_tests_on_another(manifest, tmp_path):
    doc = split(manifest, tmp_path / "folds.json", SplitSettings(mode="cross", train_datasets="casme2",
                                                                 test_datasets="samm"))
    assert doc["mode"] == "cross" and len(doc["folds"]) == 1
    fold = doc["folds"][0]
    assert fold["train"] == ["casme2/sub01/a", "casme2/sub01/b", "casme2/sub02/a"]
    assert fold["test_dataset"] == "samm" and fold["train_datasets"] == ["casme2"] and fold["test_subjects"] == ["samm/006"]


@pytest.mark.parametrize("settings, message", [
    (dict(train_datasets="casme2", test_datasets="smic"), "no usable sample of smic; its data sets are casme2, samm"),
    (dict(train_datasets="casme2,samm", test_datasets="samm"), "samm is in both --train-datasets and --test-datasets"),
])
def test_cross_errors_name_the_data_sets(manifest, tmp_path, settings, message):
    with pytest.raises(UserError, match=message):
        split(manifest, tmp_path / "f.json", SplitSettings(mode="cross", **settings))


def test_cross_settings_go_together():
    with pytest.raises(UserError, match="mode cross needs both"):
        SplitSettings(mode="cross", train_datasets="casme2")
    with pytest.raises(UserError, match="apply to mode cross only, not loso"):
        SplitSettings(mode="loso", test_datasets="smic")


def test_cross_over_a_combined_manifest_of_three_ingested_data_sets(tmp_path, capsys):
    """casme2, casme3 and smic ingested in 3 classes, combined, then split from the command line: no fold
    shares a data set or a subject between train and test, and every id is a row of the combined manifest."""
    from components.data import read_manifest, resolve_frames_dir

    from fixtures_datasets import (
        CASME3_SHEET,
        build_casme2,
        build_casme3_videos,
        build_smic,
        write_casme2_sheet,
        write_casme3_sheet,
    )
    raw = tmp_path / "raw"
    build_casme2(raw / "CASME2", [("sub01", "EP01_01f", 1, 9), ("sub02", "EP02_01f", 1, 9)])
    write_casme2_sheet(raw / "coding.xlsx", [("01", "EP01_01f", 1, 3, 9, "", "happiness"),
                                             ("02", "EP02_01f", 1, 3, 9, "", "disgust")])
    build_casme3_videos(raw / "casme3", {("spNO.1", "a"): list(range(1, 30)), ("spNo.2", "b"): list(range(1, 12))})
    write_casme3_sheet(raw / "casme3" / CASME3_SHEET, [("spNO.1", "a", 1, 3, 9, "surprise"),
                                                       ("spNO.1", "a", 15, 18, 25, "sad"),
                                                       ("spNO.2", "b", 2, 4, 11, "happy")])
    build_smic(raw / "HS", [("s1", "negative", "s1_ne_01", 1, 9), ("s2", "positive", "s2_po_01", 1, 9)])
    data = tmp_path / "data"
    for dataset, root, extra in (("casme2", "CASME2", ["--annotations", str(raw / "coding.xlsx")]),
                                 ("casme3", "casme3", []), ("smic", "HS", [])):
        (data / dataset).mkdir(parents=True)
        assert main(["ingest", "--dataset", dataset, "--root", str(raw / root), "--classes", "3",
                     "--out", str(data / dataset / "manifest.csv"), *extra]) == 0
    combined = data / "all.csv"
    assert main(["ingest", "--combine", *(str(data / d / "manifest.csv") for d in ("casme2", "casme3", "smic")),
                 "--out", str(combined)]) == 0
    table = read_manifest(combined)
    assert len(table) == 7 and all(resolve_frames_dir(combined, d).is_dir() for d in table["frames_dir"])
    assert main(["split", "--manifest", str(combined), "--out", str(data / "folds.json"), "--mode", "cross",
                 "--train-datasets", "casme2", "--test-datasets", "casme3,smic"]) == 0
    folds = json.loads((data / "folds.json").read_text())["folds"]
    dataset_of = dict(zip(table["sample_id"], table["dataset"]))
    subject_of = dict(zip(table["sample_id"], table["subject"]))
    assert [f["test_dataset"] for f in folds] == ["casme3", "smic"]
    for fold in folds:
        assert {dataset_of[s] for s in fold["train"]} == {"casme2"}
        assert {dataset_of[s] for s in fold["test"]} == {fold["test_dataset"]}
        assert not {subject_of[s] for s in fold["train"]} & {subject_of[s] for s in fold["test"]}
    assert sorted(folds[0]["test"]) == ["casme3/spNO.1/a_1", "casme3/spNO.1/a_15", "casme3/spNO.2/b_2"]

    assert main(["ingest", "--dataset", "casme2", "--root", str(raw / "CASME2"), "--annotations",
                 str(raw / "coding.xlsx"), "--classes", "5", "--out", str(data / "five.csv")]) == 0
    capsys.readouterr()
    assert main(["ingest", "--combine", str(data / "five.csv"), str(data / "smic" / "manifest.csv"),
                 "--out", str(data / "bad.csv")]) == 2
    assert "ingest every data set with the same class set" in capsys.readouterr().err
