"""`mol ingest --dataset mmew` and `--dataset 4dme` on fixture trees in each known form (the facts about
both layouts are less certain, so the adapters accept every form seen and name them when none matches)."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from components.config import DataSettings
from components.data import read_manifest
from components.errors import UserError
from components.ingest import ingest

from fixtures_datasets import FOURDME_HEADER, MMEW_HEADER, write_frames, write_plain_sheet


def rows_of(manifest: Path, *columns: str) -> list[tuple]:
    table = read_manifest(manifest)
    return [tuple(None if pd.isna(v) else v for v in row) for row in table[list(columns)].itertuples(index=False)]


def rejects_of(manifest: Path) -> list[tuple[str, str]]:
    table = pd.read_csv(manifest.parent / "rejects.csv", dtype=str, keep_default_na=False)
    return list(zip(table["sample_id"], table["reason"]))


def frames(folder: Path, first: int, last: int, template: str = "{}.jpg") -> None:
    write_frames(folder, [template.format(n) for n in range(first, last + 1)])


# ---------------------------------------------------------------- MMEW

def make_mmew_loader_form(tmp_path: Path) -> Path:
    micro = tmp_path / "MMEW" / "Micro_Expression"
    frames(micro / "happiness" / "S01-01-001", 1, 20)
    frames(micro / "repression" / "S02-03-002", 1, 12)      # the others folder, under its other name
    frames(micro / "surprise" / "S01-02-005", 1, 10)
    frames(micro / "anger" / "S03-01-001", 1, 10)           # no sheet row
    write_plain_sheet(tmp_path / "MMEW" / "MMEW_Micro_Exp.xlsx", MMEW_HEADER, [
        ("S01", "S01-01-001", 3, 7, 12, "12", "happiness", ""),
        (2, "S02-03-002", 100, 104, 111, "4", "others", ""),  # numbered otherwise than the clip
        ("s1", "S01-02-005", 1, 4, 10, "9", "disgust", "folder says surprise"),
        ("S04", "S04-01-001", 1, 4, 10, "9", "fear", ""),      # no folder
    ])
    return tmp_path / "MMEW"


def test_mmew_loader_form_with_its_sheet(tmp_path):
    root = make_mmew_loader_form(tmp_path)
    out = tmp_path / "m.csv"
    summary = ingest(DataSettings(dataset="mmew", root=str(root), classes=7), str(out))
    assert rows_of(out, "sample_id", "subject", "first_frame", "last_frame", "n_frames", "onset", "label_name") == [
        ("mmew/S01/S01-01-001", "mmew/S01", 3, 12, 10, 3, "happiness"),
        ("mmew/S01/S01-02-005", "mmew/S01", 1, 10, 10, 1, "disgust"),
        ("mmew/S02/S02-03-002", "mmew/S02", 1, 12, 12, 100, "others"),
    ]
    assert rejects_of(out) == [("mmew/S03/S03-01-001", "clip folder has no row in the annotation sheet"),
                               ("mmew/S04/S04-01-001", "no clip folder for this sheet row")]
    warnings = "\n".join(summary.warnings)
    assert "S01-02-005: sheet emotion 'disgust' differs from its folder 'surprise'" in warnings
    assert "S02-03-002: clip frames are numbered 1..12, not the sheet's 100..111" in warnings
    assert "repression" not in warnings  # the others folder's other name is no disagreement


def test_mmew_official_form_without_a_sheet_three_classes(tmp_path):
    root = tmp_path / "MMEW"
    frames(root / "S01" / "happiness" / "S01-01-001", 1, 9)
    frames(root / "S02" / "fear" / "S02-01-003", 1, 8)
    frames(root / "S02" / "others" / "S02-02-001", 1, 8)
    out = tmp_path / "m.csv"
    ingest(DataSettings(dataset="mmew", root=str(root), classes=3), str(out))
    assert rows_of(out, "sample_id", "subject", "onset", "offset", "label_name") == [
        ("mmew/S01/S01-01-001", "mmew/S01", 1, 9, "positive"), ("mmew/S02/S02-01-003", "mmew/S02", 1, 8, "negative")]
    assert rejects_of(out) == [("mmew/S02/S02-02-001", "emotion 'others' is not in the 3-class set")]


def test_mmew_neither_form_is_one_clear_error(tmp_path):
    frames(tmp_path / "MMEW" / "clips" / "S01-01-001", 1, 9)
    with pytest.raises(UserError, match="no MMEW clips in either known form .Micro_Expression/<emotion>/"):
        ingest(DataSettings(dataset="mmew", root=str(tmp_path / "MMEW"), classes=7), str(tmp_path / "m.csv"))


# ---------------------------------------------------------------- 4DME

FRAME = "Frame_{:09d}.jpg"
FOURDME_ROWS = [
    ("S01", "fold1", "Positive", 3, 6, 12, "AU12"),
    ("S01", "fold2", "Surprise+Positive", 1, 4, 9, "AU1+AU12"),     # two classes: rejected
    ("S02", "fold1", "Negative+Repression", 1, 4, 9, "AU4"),        # one class in 3, two in 5
    (3, "Fold1", "Others", 1, 4, 9, "AU4"),                         # numeric sub_ID, folder S03/fold1
    ("S02", "fold3", "Surprise", 2, 4, 9, "AU1"),                   # two micro-expressions in one fold
    ("S02", "fold3", "Positive", 15, 18, 23, "AU12"),
]


def make_4dme(base: Path) -> Path:
    gray = base / "4DME" / "gray_micro"
    frames(gray / "S01" / "fold1", 1, 14, FRAME)
    frames(gray / "S01" / "fold2", 1, 9, FRAME)
    frames(gray / "S02" / "fold1", 1, 9, FRAME)
    frames(gray / "S03" / "fold1", 1, 9, FRAME)
    frames(gray / "S02" / "fold3", 1, 25, FRAME)
    frames(gray / "S04" / "fold9", 1, 9, FRAME)                    # no sheet row
    write_plain_sheet(base / "4DME" / "4DME_Labelling_Micro_release v1.xlsx", FOURDME_HEADER, FOURDME_ROWS)
    return base / "4DME"


def test_4dme_three_classes_combined_labels_and_several_mes_per_fold(tmp_path):
    root = make_4dme(tmp_path)
    out = tmp_path / "m.csv"
    ingest(DataSettings(dataset="4dme", root=str(tmp_path), classes=3), str(out))  # gray_micro two levels down
    assert rows_of(out, "sample_id", "subject", "first_frame", "last_frame", "n_frames", "label_name") == [
        ("4dme/S01/fold1", "4dme/S01", 3, 12, 10, "positive"),
        ("4dme/S02/fold1", "4dme/S02", 1, 9, 9, "negative"),
        ("4dme/S02/fold3_15", "4dme/S02", 15, 23, 9, "positive"),
        ("4dme/S02/fold3_2", "4dme/S02", 2, 9, 8, "surprise"),
    ]
    assert rejects_of(out) == [
        ("4dme/S01/fold2", "combined emotion 'Surprise+Positive' spans several classes (surprise, positive) of the "
                           "3-class set"),
        ("4dme/S03/Fold1", "emotion 'Others' is not in the 3-class set"),
        ("4dme/S04/fold9", "clip folder has no row in the annotation sheet"),
    ]
    assert root.is_dir()


def test_4dme_five_classes_from_the_gray_micro_folder_itself(tmp_path):
    root = make_4dme(tmp_path)
    out = tmp_path / "m.csv"
    ingest(DataSettings(dataset="4dme", root=str(root / "gray_micro"),
                        annotations=str(root / "4DME_Labelling_Micro_release v1.xlsx"), classes=5), str(out))
    assert rows_of(out, "sample_id", "label", "label_name") == [
        ("4dme/S01/fold1", 1, "positive"), ("4dme/S02/fold3_15", 1, "positive"), ("4dme/S02/fold3_2", 0, "surprise"),
        ("4dme/S03/Fold1", 4, "others")]
    assert ("4dme/S02/fold1", "combined emotion 'Negative+Repression' spans several classes (negative, repression) "
                              "of the 5-class set") in rejects_of(out)


def test_4dme_subject_folders_without_gray_micro_and_the_errors(tmp_path):
    root = make_4dme(tmp_path)
    (root / "gray_micro").rename(root / "frames")
    sheet = str(root / "4DME_Labelling_Micro_release v1.xlsx")
    out = tmp_path / "m.csv"
    ingest(DataSettings(dataset="4dme", root=str(root / "frames"), annotations=sheet, classes=5), str(out))
    assert len(read_manifest(out)) == 4
    with pytest.raises(UserError, match="no 4DME frames: expected gray_micro/<sub_ID>/<fold_name>/Frame_%09d.jpg"):
        ingest(DataSettings(dataset="4dme", root=str(root), annotations=sheet, classes=5), str(out))
    with pytest.raises(UserError, match="needs its sheet .4DME_Labelling_Micro_release v1.xlsx"):
        ingest(DataSettings(dataset="4dme", root=str(root / "frames"), classes=5), str(out))
