"""`mol ingest` on small fixture trees in each distributed layout: manifests and rejects, row by row."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from components.cli import main
from components.config import DataSettings
from components.data import (MANIFEST_COLUMNS, REJECT_COLUMNS, frame_number, list_frames, read_manifest,
                             resolve_frames_dir, stored_frames_dir)
from components.errors import UserError
from components.ingest import ingest

from fixtures_datasets import (build_casme2, build_samm, build_smic, numbered, write_casme2_sheet, write_frames,
                               write_samm_sheet)


def records(table: pd.DataFrame) -> list[dict]:
    """Rows as plain dicts, <NA> as None, for exact comparison."""
    return [{k: (None if pd.isna(v) else v) for k, v in row.items()} for row in table.to_dict("records")]


def read_rejects(manifest: Path) -> list[tuple[str, str]]:
    table = pd.read_csv(manifest.parent / "rejects.csv", dtype=str, keep_default_na=False)
    assert list(table.columns) == REJECT_COLUMNS
    return list(zip(table["sample_id"], table["reason"]))


# ---------------------------------------------------------------- manifest helpers

def test_list_frames_sorts_by_last_number_and_skips_non_frames(tmp_path):
    names = ["006_1000.jpg", "006_998.jpg", "006_0999.jpg", "img2_7.PNG", "._006_1.jpg", "notes.txt", "cover.jpg"]
    for name in names:
        (tmp_path / name).write_bytes(b"x")
    assert [p.name for p in list_frames(tmp_path)] == ["img2_7.PNG", "006_998.jpg", "006_0999.jpg", "006_1000.jpg"]
    assert frame_number("reg_img46.jpg") == 46 and frame_number("image069993.bmp") == 69993
    assert list_frames(tmp_path / "missing") == []


def test_frames_dir_is_stored_relative_to_the_manifest_and_resolves_back(tmp_path, monkeypatch):
    manifest = tmp_path / "data" / "manifest.csv"
    frames = tmp_path / "raw" / "sub01" / "EP02_01f"
    stored = stored_frames_dir(manifest, frames)
    assert stored == "../raw/sub01/EP02_01f"
    assert resolve_frames_dir(manifest, stored).resolve() == frames.resolve()
    assert resolve_frames_dir(manifest, str(frames)) == frames  # absolute values pass through
    monkeypatch.chdir(tmp_path)  # a relative manifest path resolves from the working folder
    assert resolve_frames_dir("data/manifest.csv", stored).resolve() == frames.resolve()


def test_read_manifest_rejects_a_file_without_the_columns(tmp_path):
    (tmp_path / "m.csv").write_text("a,b\n1,2\n")
    with pytest.raises(UserError, match="lacks the columns"):
        read_manifest(tmp_path / "m.csv")
    with pytest.raises(UserError, match="does not exist"):
        read_manifest(tmp_path / "none.csv")


# ---------------------------------------------------------------- CASME II

CASME2_ROWS = [
    # Subject (text or int), Filename, Onset, Apex, Offset, AUs, Emotion
    ("01", "EP02_01f", 46, 50, 55, "12", "happiness"),
    (1, "EP04_01f", 10, 14, 19, "4", "Other"),                   # int subject, alias 'Other'
    (2, "EP01_11f", 100, 104, 108, "1+2", " Surprise "),         # case and spaces
    ("02", "EP06_01f", 1, 4, 9, "14", "repression"),
    ("02", "EP05_03f", 1, 3, 9, "4", "fear"),                    # outside the 5-class set
    ("03", "EP07_01f", 1, 3, 9, "4", "xyz"),                     # unknown word
    ("03", "EP08_01f", 1, 3, 9, "4", "disgust"),                 # no folder
    ("04", "EP12_01f", 20, "/", 29, "9", "disgust"),             # apex '/'
    ("05", "EP09_05f", 1, 3, 9, "4", "disgust"),                 # empty folder
    ("05", "EP10_01f", 1, 3, 5, "4", "disgust"),                 # 5 frames
    ("../etc", "EP01_01f", 1, 3, 9, "4", "disgust"),             # path traversal
    ("01", "/abs/EP01", 1, 3, 9, "4", "disgust"),                # absolute path
    ("01", "EP02_01f", 46, 50, 55, "12", "happiness"),           # duplicate row
]


def make_casme2(tmp_path: Path, template: str = "img{}.jpg") -> tuple[Path, Path]:
    root = build_casme2(tmp_path / "CASME2_RAW_selected", [
        ("sub01", "EP02_01f", 46, 10), ("sub01", "EP04_01f", 10, 10), ("sub02", "EP01_11f", 100, 9),
        ("sub02", "EP06_01f", 1, 9), ("sub02", "EP05_03f", 1, 9), ("sub03", "EP07_01f", 1, 9),
        ("sub03", "EP99_01f", 1, 9), ("sub04", "EP12_01f", 20, 10), ("sub05", "EP10_01f", 1, 5),
    ], template)
    (root / "sub05" / "EP09_05f").mkdir()
    (root / "sub05" / "EP09_05f" / "Thumbs.db").write_bytes(b"")
    (root / "__MACOSX").mkdir()  # not a subject folder: ignored
    sheet = write_casme2_sheet(tmp_path / "CASME2-coding-20140508.xlsx", CASME2_ROWS)
    return root, sheet


def casme2_row(video, subject, n, onset, apex, offset, emotion, label, name):
    return dict(sample_id=f"casme2/sub{subject}/{video}", dataset="casme2", subject=f"casme2/{subject}",
                video_id=video, frames_dir=f"../CASME2_RAW_selected/sub{subject}/{video}", first_frame=None,
                last_frame=None, n_frames=n,
                onset=onset, apex=apex, offset=offset, emotion=emotion, label=label, label_name=name)


CASME2_REJECTS = [
    ("casme2/sub../etc/EP01_01f", "sheet row 12 names an unsafe path ('../etc', 'EP01_01f')"),
    ("casme2/sub01//abs/EP01", "sheet row 13 names an unsafe path ('01', '/abs/EP01')"),
    ("casme2/sub01/EP02_01f", "duplicate sheet row 14 (first on row 2)"),
    ("casme2/sub02/EP05_03f", "emotion 'fear' is not in the 5-class set"),
    ("casme2/sub03/EP07_01f", "unknown emotion 'xyz'"),
    ("casme2/sub03/EP08_01f", "no clip folder for this sheet row"),
    ("casme2/sub03/EP99_01f", "clip folder has no row in the annotation sheet"),
    ("casme2/sub05/EP09_05f", "no image frames in the clip folder"),
    ("casme2/sub05/EP10_01f", "too few frames (5, need at least 8)"),
]


def test_casme2_five_classes_every_row_and_every_reject(tmp_path):
    root, sheet = make_casme2(tmp_path)
    out = tmp_path / "out" / "manifest.csv"
    summary = ingest(DataSettings(dataset="casme2", root=str(root), annotations=str(sheet), classes=5), str(out))

    manifest = read_manifest(out)
    assert list(pd.read_csv(out).columns) == MANIFEST_COLUMNS
    assert records(manifest) == [
        casme2_row("EP02_01f", "01", 10, 46, 50, 55, "happiness", 1, "happiness"),
        casme2_row("EP04_01f", "01", 10, 10, 14, 19, "Other", 4, "others"),
        casme2_row("EP01_11f", "02", 9, 100, 104, 108, "Surprise", 0, "surprise"),
        casme2_row("EP06_01f", "02", 9, 1, 4, 9, "repression", 3, "repression"),
        casme2_row("EP12_01f", "04", 10, 20, None, 29, "disgust", 2, "disgust"),
    ]
    assert read_rejects(out) == CASME2_REJECTS
    assert summary.n_samples == 5 and summary.n_rejects == 9
    assert summary.per_subject == {"casme2/01": 2, "casme2/02": 2, "casme2/04": 1}
    assert summary.rejects_by_reason["unknown emotion 'xyz'"] == 1
    for row in manifest.itertuples():
        frames = list_frames(resolve_frames_dir(out, row.frames_dir))
        assert len(frames) == row.n_frames and frame_number(frames[0]) == row.onset


def test_casme2_three_classes_maps_negative_and_drops_others(tmp_path):
    root, sheet = make_casme2(tmp_path)
    out = tmp_path / "manifest.csv"
    ingest(DataSettings(dataset="casme2", root=str(root), annotations=str(sheet), classes=3), str(out))
    manifest = read_manifest(out)
    assert dict(zip(manifest["video_id"], zip(manifest["label"], manifest["label_name"]))) == {
        "EP02_01f": (1, "positive"), "EP01_11f": (0, "surprise"), "EP06_01f": (2, "negative"),
        "EP12_01f": (2, "negative")}
    rejects = dict(read_rejects(out))
    assert rejects["casme2/sub01/EP04_01f"] == "emotion 'Other' is not in the 3-class set"
    assert rejects["casme2/sub02/EP05_03f"] == "emotion 'fear' is not in the 3-class set"


def test_read_manifest_types(tmp_path):
    root, sheet = make_casme2(tmp_path)
    out = tmp_path / "manifest.csv"
    ingest(DataSettings(dataset="casme2", root=str(root), annotations=str(sheet)), str(out))
    manifest = read_manifest(out)
    assert manifest["subject"].map(type).eq(str).all() and manifest["video_id"].map(type).eq(str).all()
    assert str(manifest["apex"].dtype) == "Int64" and manifest["apex"].isna().sum() == 1
    assert manifest["n_frames"].dtype == "int64" and manifest["label"].dtype == "int64"


def test_casme2_cropped_frame_names(tmp_path):
    root = build_casme2(tmp_path / "Cropped", [("sub01", "EP02_01f", 46, 9)], "reg_img{}.jpg")
    sheet = write_casme2_sheet(tmp_path / "c.xlsx", [("01", "EP02_01f", 46, 50, 54, "12", "happiness")])
    ingest(DataSettings(dataset="casme2", root=str(root), annotations=str(sheet)), str(tmp_path / "m.csv"))
    assert records(read_manifest(tmp_path / "m.csv"))[0]["n_frames"] == 9


def test_strict_turns_a_reject_into_an_error(tmp_path, capsys):
    root, sheet = make_casme2(tmp_path)
    with pytest.raises(UserError, match="9 clip.*rejected with --strict"):
        ingest(DataSettings(dataset="casme2", root=str(root), annotations=str(sheet)), str(tmp_path / "m.csv"), strict=True)
    assert not (tmp_path / "m.csv").exists()
    code = main(["ingest", "--dataset", "casme2", "--root", str(root), "--annotations", str(sheet),
                 "--out", str(tmp_path / "m.csv"), "--strict"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("mol ingest: error: 9 clip(s) rejected") and err.count("\n") == 1


def test_cli_prints_a_summary(tmp_path, capsys):
    root, sheet = make_casme2(tmp_path)
    code = main(["ingest", "--dataset", "casme2", "--root", str(root), "--annotations", str(sheet),
                 "--out", str(tmp_path / "m.csv")])
    out = capsys.readouterr().out
    assert code == 0
    assert "5 samples, 3 subjects" in out and "rejects:" in out and "unknown emotion 'xyz'" in out


@pytest.mark.parametrize("case, message", [
    ("no_root", "is not a folder"),
    ("no_sheet_flag", "needs --annotations"),
    ("sheet_missing", "does not exist"),
    ("not_xlsx", "is not a readable .xlsx workbook"),
    ("wrong_sheet", "has no sheet 'Sheet1'"),
    ("no_header", "no header row with the columns Subject, Filename, OnsetFrame, ApexFrame, OffsetFrame, "
                  "Estimated Emotion"),
])
def test_casme2_bad_input_is_one_line_and_exit_2(tmp_path, capsys, case, message):
    root, sheet = make_casme2(tmp_path)
    bad = {"no_root": dict(root=tmp_path / "nope"), "no_sheet_flag": dict(sheet=None),
           "sheet_missing": dict(sheet=tmp_path / "missing.xlsx")}.get(case, {})
    if case == "not_xlsx":
        bad["sheet"] = tmp_path / "fake.xlsx"
        bad["sheet"].write_text("Subject,Filename\n")
    if case == "wrong_sheet":
        bad["sheet"] = write_samm_sheet(tmp_path / "samm.xlsx", [])
    if case == "no_header":
        bad["sheet"] = tmp_path / "h.xlsx"
        write_casme2_sheet(bad["sheet"], [])
        import openpyxl
        book = openpyxl.load_workbook(bad["sheet"])
        book["Sheet1"]["D1"] = "Onset"
        book.save(bad["sheet"])
    args = ["ingest", "--dataset", "casme2", "--root", str(bad.get("root", root)), "--out", str(tmp_path / "m.csv")]
    if bad.get("sheet", sheet) is not None:
        args += ["--annotations", str(bad.get("sheet", sheet))]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("mol ingest: error: ") and message in err and err.count("\n") == 1


def test_a_csv_export_of_the_sheet_reads_the_same(tmp_path):
    root, sheet = make_casme2(tmp_path)
    pd.read_excel(sheet, header=None, dtype=str).to_csv(tmp_path / "coding.csv", header=False, index=False)
    ingest(DataSettings(dataset="casme2", root=str(root), annotations=str(sheet)), str(tmp_path / "a.csv"))
    ingest(DataSettings(dataset="casme2", root=str(root), annotations=str(tmp_path / "coding.csv")), str(tmp_path / "b.csv"))
    assert (tmp_path / "a.csv").read_text() == (tmp_path / "b.csv").read_text()


# ---------------------------------------------------------------- SAMM

def make_samm(tmp_path: Path) -> tuple[Path, Path]:
    irregular = ["006_998.jpg", "006_999.jpg", "006_1000.jpg", "006_1001.jpg", "006_01002.jpg",
                 "006_1003 .jpg", "006_1004.jpg", "006_1005.jpg"]
    root = build_samm(tmp_path / "SAMM", [
        ("006", "006_1_2", numbered("006_{:05d}.jpg", 5562, 10)),
        ("006", "006_1_3", irregular),
        ("007", "007_3_1", numbered("007_{:05d}.jpg", 100, 9)),
        ("007", "007_6_1", numbered("007_{:05d}.jpg", 300, 9)),
        ("011", "011_2_1", numbered("011_{:05d}.jpg", 40, 9)),
    ])
    sheet = write_samm_sheet(tmp_path / "SAMM_Micro_FACS_Codes_v2.xlsx", [
        (6, "006_1_2", 5562, 5566, 5571, "Anger"),
        ("006", "006_1_3", 998, 1200, 1005, "Other"),             # apex outside onset-offset: kept
        ("7", "007_3_1", 100, 104, 108, "Contempt"),
        (7, "007_6_1", 300, 304, 308, "Disgust"),                 # not in SAMM's 5-class set
        (11, "011_2_1", 40, 44, 48, "Happiness"),
    ])
    return root, sheet


def test_samm_note_rows_int_subjects_and_irregular_names(tmp_path):
    root, sheet = make_samm(tmp_path)
    out = tmp_path / "manifest.csv"
    summary = ingest(DataSettings(dataset="samm", root=str(root), annotations=str(sheet), classes=5), str(out))
    rows = records(read_manifest(out))
    assert [(r["sample_id"], r["subject"], r["n_frames"], r["onset"], r["apex"], r["offset"], r["label"],
             r["label_name"]) for r in rows] == [
        ("samm/006/006_1_2", "samm/006", 10, 5562, 5566, 5571, 2, "anger"),
        ("samm/006/006_1_3", "samm/006", 8, 998, 1200, 1005, 4, "others"),
        ("samm/007/007_3_1", "samm/007", 9, 100, 104, 108, 3, "contempt"),
        ("samm/011/011_2_1", "samm/011", 9, 40, 44, 48, 1, "happiness"),
    ]
    assert read_rejects(out) == [("samm/007/007_6_1", "emotion 'Disgust' is not in the 5-class set")]
    assert summary.warnings == ["samm/006/006_1_3: apex 1200 lies outside onset-offset 998-1005"]
    frames = list_frames(root / "006" / "006_1_3")
    assert [frame_number(p) for p in frames] == list(range(998, 1006))


def test_samm_three_classes(tmp_path):
    root, sheet = make_samm(tmp_path)
    out = tmp_path / "manifest.csv"
    summary = ingest(DataSettings(dataset="samm", root=str(root), annotations=str(sheet), classes=3), str(out))
    assert summary.per_label == {"negative": 3, "positive": 1}
    assert read_rejects(out) == [("samm/006/006_1_3", "emotion 'Other' is not in the 3-class set")]


# ---------------------------------------------------------------- SMIC

def make_smic(tmp_path: Path) -> Path:
    hs = build_smic(tmp_path / "SMIC_all_raw" / "HS", [
        ("s1", "negative", "s1_ne_01", 69993, 9), ("s2", "positive", "s2_po_01", 100, 10),
        ("s3", "surprise", "s3_sur_01", 5, 8), ("s3", "confused", "s3_co_01", 5, 8),
        ("s11", "Negative", "s11_ne_02", 1, 4),
    ])
    write_frames(hs / "s1" / "non_micro" / "negative" / "s1_ne_99", ["image000001.bmp"] * 1)
    return hs


def test_smic_labels_from_folders_no_apex(tmp_path):
    hs = make_smic(tmp_path)
    out = tmp_path / "manifest.csv"
    ingest(DataSettings(dataset="smic", root=str(hs), classes=3), str(out))
    assert [(r["sample_id"], r["subject"], r["n_frames"], r["onset"], r["apex"], r["offset"], r["label_name"],
             r["label"]) for r in records(read_manifest(out))] == [
        ("smic/s1/s1_ne_01", "smic/s1", 9, 69993, None, 70001, "negative", 2),
        ("smic/s2/s2_po_01", "smic/s2", 10, 100, None, 109, "positive", 1),
        ("smic/s3/s3_sur_01", "smic/s3", 8, 5, None, 12, "surprise", 0),
    ]
    assert read_rejects(out) == [("smic/s11/s11_ne_02", "too few frames (4, need at least 8)"),
                                 ("smic/s3/s3_co_01", "unknown emotion 'confused'")]


def test_smic_refuses_five_classes_and_the_parent_folder(tmp_path):
    hs = make_smic(tmp_path)
    with pytest.raises(UserError, match="3 classes only"):
        ingest(DataSettings(dataset="smic", root=str(hs), classes=5), str(tmp_path / "m.csv"))
    with pytest.raises(UserError, match="pass .*HS instead"):
        ingest(DataSettings(dataset="smic", root=str(hs.parent), classes=3), str(tmp_path / "m.csv"))


# ---------------------------------------------------------------- MEGC2019 composite

def test_megc2019_composite_excludes_two_clips_and_prefixes_subjects(tmp_path):
    root = tmp_path / "megc"
    casme_root = build_casme2(root / "CASME2" / "CASME2_RAW_selected", [
        ("sub01", "EP02_01f", 46, 9), ("sub04", "EP12_01f", 20, 9), ("sub05", "EP09_05f", 1, 9),
        ("sub06", "EP01_01f", 1, 9)])
    write_casme2_sheet(root / "CASME2" / "CASME2-coding-20140508.xlsx", [("01", "EP02_01f", 46, 50, 54, "", "fear")])
    write_casme2_sheet(root / "CASME2" / "CASME2-coding-20190701.xlsx", [
        ("01", "EP02_01f", 46, 50, 54, "12", "happiness"), ("04", "EP12_01f", 20, "/", 28, "9", "disgust"),
        ("05", "EP09_05f", 1, 4, 9, "9", "repression"), ("06", "EP01_01f", 1, 4, 9, "4", "others")])
    build_samm(root / "SAMM", [("006", "006_1_2", numbered("006_{:05d}.jpg", 1, 9)),
                               ("007", "007_1_1", numbered("007_{:05d}.jpg", 1, 9))])
    write_samm_sheet(root / "SAMM" / "SAMM_Micro_FACS_Codes_v2.xlsx", [
        (6, "006_1_2", 1, 4, 9, "Surprise"), (7, "007_1_1", 1, 4, 9, "Fear")])
    make_smic(root)
    out = tmp_path / "manifest.csv"
    summary = ingest(DataSettings(dataset="megc2019", root=str(root), classes=3), str(out))
    rows = records(read_manifest(out))
    assert [(r["sample_id"], r["dataset"], r["subject"], r["label_name"]) for r in rows] == [
        ("casme2/sub01/EP02_01f", "casme2", "casme2/01", "positive"),
        ("samm/006/006_1_2", "samm", "samm/006", "surprise"),
        ("samm/007/007_1_1", "samm", "samm/007", "negative"),
        ("smic/s1/s1_ne_01", "smic", "smic/s1", "negative"),
        ("smic/s2/s2_po_01", "smic", "smic/s2", "positive"),
        ("smic/s3/s3_sur_01", "smic", "smic/s3", "surprise"),
    ]
    assert rows[0]["frames_dir"] == "megc/CASME2/CASME2_RAW_selected/sub01/EP02_01f"
    assert read_rejects(out) == [
        ("casme2/sub04/EP12_01f", "left out of the MEGC2019 composite"),
        ("casme2/sub05/EP09_05f", "left out of the MEGC2019 composite"),
        ("casme2/sub06/EP01_01f", "emotion 'others' is not in the 3-class set"),
        ("smic/s11/s11_ne_02", "too few frames (4, need at least 8)"),
        ("smic/s3/s3_co_01", "unknown emotion 'confused'"),
    ]
    assert summary.per_label == {"negative": 2, "positive": 2, "surprise": 2}
    assert len(summary.per_subject) == 6
    assert casme_root.is_dir()


def test_megc2019_names_the_missing_part(tmp_path):
    root = tmp_path / "megc"
    make_smic(root)
    with pytest.raises(UserError, match="lacks a CASME II frames folder .*the SAMM sheet"):
        ingest(DataSettings(dataset="megc2019", root=str(root), classes=3), str(tmp_path / "m.csv"))
    with pytest.raises(UserError, match="3 classes only"):
        ingest(DataSettings(dataset="megc2019", root=str(root), classes=5), str(tmp_path / "m.csv"))


# ---------------------------------------------------------------- official-code folders

def test_folder_layout_of_the_official_code(tmp_path):
    root = tmp_path / "data" / "SAMM_data_5"
    write_frames(root / "anger" / "006_1_2", numbered("006_{:05d}.jpg", 5562, 9))
    write_frames(root / "others" / "7_2_1", numbered("7_{}.jpg", 98, 9))
    write_frames(root / "fear" / "010_1_1", numbered("010_{:05d}.jpg", 1, 9))
    write_frames(root / "happiness" / "011_1_1", numbered("011_{:05d}.jpg", 1, 9))
    write_frames(root / "surprise" / "011_1_1", numbered("011_{:05d}.jpg", 1, 9))
    write_frames(root / "contempt" / "noname", numbered("x_{}.jpg", 1, 9))
    out = tmp_path / "manifest.csv"
    ingest(DataSettings(dataset="folder", root=str(root), classes=5), str(out))
    assert [(r["sample_id"], r["subject"], r["onset"], r["offset"], r["label"], r["label_name"])
            for r in records(read_manifest(out))] == [
        ("samm/006_1_2", "samm/006", 5562, 5570, 2, "anger"),
        ("samm/7_2_1", "samm/007", 98, 106, 4, "others"),
    ]
    assert read_rejects(out) == [
        ("samm/010_1_1", "emotion 'fear' is not in the 5-class set"),
        ("samm/011_1_1", "video is in several emotion folders (happiness, surprise)"),
        ("samm/011_1_1", "video is in several emotion folders (happiness, surprise)"),
        ("samm/noname", "video name has no '_', so its subject is unknown"),
    ]
    with pytest.raises(UserError, match="pass one of them"):
        ingest(DataSettings(dataset="folder", root=str(tmp_path / "data"), classes=5), str(out))


def test_folder_layout_three_classes_casme2_names(tmp_path):
    root = tmp_path / "CASME2_data_3"
    write_frames(root / "negative" / "01_EP19_05f", numbered("img{}.jpg", 1, 8))
    write_frames(root / "surprise" / "17_EP01_01f", numbered("img{}.jpg", 1, 8))
    out = tmp_path / "manifest.csv"
    ingest(DataSettings(dataset="folder", root=str(root), classes=3), str(out))
    assert [(r["sample_id"], r["dataset"], r["subject"], r["label"]) for r in records(read_manifest(out))] == [
        ("casme2/01_EP19_05f", "casme2", "casme2/01", 2), ("casme2/17_EP01_01f", "casme2", "casme2/17", 0)]


def test_folder_layout_sorted_in_five_classes_read_in_three(tmp_path):
    root = tmp_path / "CASME2_data_5"
    for emotion, video in (("happiness", "01_EP02_01f"), ("repression", "02_EP01_01f"), ("others", "03_EP01_01f")):
        write_frames(root / emotion / video, numbered("img{}.jpg", 1, 8))
    out = tmp_path / "manifest.csv"
    ingest(DataSettings(dataset="folder", root=str(root), classes=3), str(out))
    assert [(r["video_id"], r["label_name"]) for r in records(read_manifest(out))] == [
        ("01_EP02_01f", "positive"), ("02_EP01_01f", "negative")]
    assert read_rejects(out) == [("casme2/03_EP01_01f", "emotion 'others' is not in the 3-class set")]
