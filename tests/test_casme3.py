"""`mol ingest --dataset casme3` on fixture trees in both distributed forms, with the sheet's real faults."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
from fixtures_casme3 import DOCUMENTED, EMOTIONS, FAULT_REJECTS, generate_part_a

from components.config import DataSettings
from components.data import list_frames, read_manifest, resolve_frames_dir
from components.data.classes import canonical_word, dataset_label_map
from components.errors import UserError
from components.ingest import ingest

from fixtures_datasets import CASME3_SHEET, build_casme3_videos, write_casme3_sheet, write_frames

ROWS = [
    # Subject, Filename, Onset, Apex, Offset, emotion (as the JpgIndex sheet holds them, text)
    ("spNO.1", "a", 355, 360, 365, "happy"),
    ("spNO.1", "a", 380, 383, 390, "disgust"),       # a second ME in the same long video
    ("spNO.1", "b", 10, 10, 18, "surprise"),         # onset == apex; frame 14 missing inside the range
    ("spNO.149", "d", 112, 83, 358, "fear"),         # apex before onset
    ("spNO.216", "d", 3647, 2668, 2694, "anger"),    # onset after offset
    ("spNO.40", "e", 100, 104, 0, "sad"),            # offset 0
    ("spNO.216", "e", 0, 0, 25, "others"),           # no frame 0: documented correction to 1
    ("spNO.214", "c", 5, 5, 3460, "Others"),         # offset 3460 for 34: documented correction
    ("spNO.3", "J", 498, 500, 505, "surprise"),      # capital J; folder spNo.3/j
    ("spNO.2", "a", 20, 22, 28, "anger"),            # no folder
    ("spNO.1", "a", 355, 360, 365, "happy"),         # duplicate row
    ("spNO.5", "a", 5, 6, 9, "sad"),                 # 5 frames only
    ("spNO.6", "a", 1, 3, 9, "confused"),            # unknown word
]


def make_long_videos(tmp_path: Path) -> Path:
    root = tmp_path / "part_A"
    build_casme3_videos(root / "data", {
        ("spNO.1", "a"): list(range(350, 396)),
        ("spNO.1", "b"): [n for n in range(10, 19) if n != 14],
        ("spNO.149", "d"): list(range(80, 120)),
        ("spNo.216", "e"): list(range(1, 26)),
        ("spNO.214", "c"): list(range(1, 41)),
        ("spNo.3", "j"): list(range(490, 510)),
        ("spNO.5", "a"): list(range(5, 10)),
        ("spNO.6", "a"): list(range(1, 10)),
        ("spNO.7", "k"): list(range(1, 10)),           # no sheet row
    })
    write_casme3_sheet(root / CASME3_SHEET, ROWS)
    return root


def rows_of(manifest: Path) -> list[tuple]:
    return [(r.sample_id, r.subject, r.video_id, r.first_frame, r.last_frame, r.n_frames, r.onset, r.apex, r.offset,
             r.label_name) for r in read_manifest(manifest).itertuples()]


def rejects_of(manifest: Path) -> list[tuple[str, str]]:
    table = pd.read_csv(manifest.parent / "rejects.csv", dtype=str, keep_default_na=False)
    return list(zip(table["sample_id"], table["reason"]))


def test_long_videos_several_mes_per_video_and_every_fault(tmp_path):
    root = make_long_videos(tmp_path)
    out = tmp_path / "out" / "manifest.csv"
    summary = ingest(DataSettings(dataset="casme3", root=str(root), classes=7), str(out))  # sheet found under root
    assert rows_of(out) == [
        ("casme3/spNO.1/a_355", "casme3/spNO.1", "a", 355, 365, 11, 355, 360, 365, "happiness"),
        ("casme3/spNO.1/a_380", "casme3/spNO.1", "a", 380, 390, 11, 380, 383, 390, "disgust"),
        ("casme3/spNO.1/b_10", "casme3/spNO.1", "b", 10, 18, 8, 10, 10, 18, "surprise"),
        ("casme3/spNO.214/c_5", "casme3/spNO.214", "c", 5, 34, 30, 5, 5, 34, "others"),
        ("casme3/spNO.216/e_0", "casme3/spNO.216", "e", 1, 25, 25, 1, 1, 25, "others"),
        ("casme3/spNO.3/j_498", "casme3/spNO.3", "j", 498, 505, 8, 498, 500, 505, "surprise"),
    ]
    assert rejects_of(out) == [
        ("casme3/spNO.1/a_355", "duplicate sheet row 12 (first on row 2)"),
        ("casme3/spNO.149/d_112", "apex 83 lies outside onset..offset 112..358 in the sheet (a known fault)"),
        ("casme3/spNO.2/a_20", "no video folder spNO.2/a/color nor clip folder spNO.2_a_20 under --root"),
        ("casme3/spNO.216/d_3647", "onset 3647 is after offset 2694 in the sheet (a known fault)"),
        ("casme3/spNO.40/e_100", "offset is 0 in the sheet (a known fault); the true offset is unknown"),
        ("casme3/spNO.5/a_5", "too few frames (5, need at least 8)"),
        ("casme3/spNO.6/a_1", "unknown emotion 'confused'"),
        ("casme3/spNO.7/k", "video folder has no row in the annotation sheet"),
    ]
    assert summary.n_samples + summary.n_rejects == len(ROWS) + 1  # every row, and the folder without one
    manifest = read_manifest(out)
    first = manifest.iloc[0]
    frames_dir = resolve_frames_dir(out, first.frames_dir)
    assert first.frames_dir == "../part_A/data/spNO.1/a/color"
    names = [p.name for p in list_frames(frames_dir, first.first_frame, first.last_frame)]
    assert names == [f"{n}.jpg" for n in range(355, 366)]
    assert len(list_frames(frames_dir)) == 46  # the whole long video; the sample is 355..365 of it
    warnings = "\n".join(summary.warnings)
    assert "casme3/spNO.1/b_10: 1 frame(s) missing inside 10..18" in warnings
    assert "casme3/spNO.214/c_5: sheet 5/5/3460 corrected to 5/5/34" in warnings
    assert "casme3/spNO.216/e_0: sheet 0/0/25 corrected to 1/1/25" in warnings


def test_class_sets_three_four_seven(tmp_path):
    root = make_long_videos(tmp_path)
    by_set = {}
    for classes in (3, 4, 7):
        out = tmp_path / str(classes) / "manifest.csv"
        ingest(DataSettings(dataset="casme3", root=str(root), classes=classes), str(out))
        by_set[classes] = {r.sample_id: (r.label, r.label_name) for r in read_manifest(out).itertuples()}
    assert by_set[4] == {"casme3/spNO.1/a_355": (1, "positive"), "casme3/spNO.1/a_380": (2, "negative"),
                         "casme3/spNO.1/b_10": (0, "surprise"), "casme3/spNO.214/c_5": (3, "others"),
                         "casme3/spNO.216/e_0": (3, "others"), "casme3/spNO.3/j_498": (0, "surprise")}
    assert by_set[3] == {k: v for k, v in by_set[4].items() if v[1] != "others"}
    assert by_set[7]["casme3/spNO.1/a_380"] == (2, "disgust")
    assert ("casme3/spNO.214/c_5", "emotion 'Others' is not in the 3-class set") in rejects_of(tmp_path / "3" / "manifest.csv")
    with pytest.raises(UserError, match="casme3 defines 3, 4 or 7 classes, not 5"):
        DataSettings(dataset="casme3", root=str(root), classes=5)


def test_cut_clips_either_numbering_and_folder_case(tmp_path):
    root = tmp_path / "CAS(ME)3"
    clips = root / "Part_A_ME_clip" / "frame"
    write_frames(clips / "spNO.1_a_355", [f"{n}.jpg" for n in range(355, 366)])   # numbered as the long video
    write_frames(clips / "spNo.2_b_40", [f"{n}.jpg" for n in range(0, 12)])       # numbered from 0
    write_frames(clips / "spNO.9_c_7", [f"{n}.jpg" for n in range(7, 16)])        # no sheet row
    sheet = write_casme3_sheet(tmp_path / CASME3_SHEET, [("spNO.1", "a", 355, 360, 365, "happy"),
                                                         ("spNO.2", "B", 40, 45, 51, "surprise")])
    out = tmp_path / "manifest.csv"
    summary = ingest(DataSettings(dataset="casme3", root=str(root), annotations=str(sheet), classes=7), str(out))
    assert rows_of(out) == [
        ("casme3/spNO.1/a_355", "casme3/spNO.1", "a", 355, 365, 11, 355, 360, 365, "happiness"),
        ("casme3/spNO.2/b_40", "casme3/spNO.2", "b", 0, 11, 12, 40, 45, 51, "surprise"),
    ]
    assert read_manifest(out)["frames_dir"].tolist() == ["CAS(ME)3/Part_A_ME_clip/frame/spNO.1_a_355",
                                                         "CAS(ME)3/Part_A_ME_clip/frame/spNo.2_b_40"]
    assert rejects_of(out) == [("casme3/spNO.9/c_7", "clip folder has no row in the annotation sheet")]
    assert any("spNO.2/b_40: clip frames are numbered 0..11, not the sheet's 40..51" in w for w in summary.warnings)


def test_both_forms_present_each_row_takes_its_long_video(tmp_path):
    root = make_long_videos(tmp_path)
    write_frames(root / "Part_A_ME_clip" / "frame" / "spNO.1_a_355", [f"{n}.jpg" for n in range(355, 366)])
    out = tmp_path / "manifest.csv"
    ingest(DataSettings(dataset="casme3", root=str(root), classes=7), str(out))
    assert read_manifest(out).set_index("sample_id").loc["casme3/spNO.1/a_355", "frames_dir"] == "part_A/data/spNO.1/a/color"
    assert not any("Part_A_ME_clip" in reason for _, reason in rejects_of(out))


def test_a_root_without_either_form_or_without_a_sheet_is_one_clear_error(tmp_path):
    (tmp_path / "empty" / "videos").mkdir(parents=True)
    with pytest.raises(UserError, match="neither CAS.ME.\\^3 frame layout .*spNO.<n>/<a-m>/color"):
        ingest(DataSettings(dataset="casme3", root=str(tmp_path / "empty"), classes=7), str(tmp_path / "m.csv"))
    build_casme3_videos(tmp_path / "nosheet", {("spNO.1", "a"): list(range(1, 10))})
    with pytest.raises(UserError, match="needs the sheet cas.me.3_part_A_ME_label_JpgIndex_v2.xlsx"):
        ingest(DataSettings(dataset="casme3", root=str(tmp_path / "nosheet"), classes=7), str(tmp_path / "m.csv"))


# ---------------------------------------------------------------- the full-size sheet

@pytest.fixture(scope="module")
def part_a(tmp_path_factory):
    root = tmp_path_factory.mktemp("casme3")
    return root, generate_part_a(root / "CAS(ME)3")


def test_860_rows_every_row_accounted_and_the_documented_counts(part_a):
    base, rows = part_a
    # the generated sheet holds the documented facts
    assert len(rows) == 860 and len({r[0] for r in rows}) == 94 and len({(r[0], r[1].lower()) for r in rows}) == 463
    assert all(1 <= int(r[0][5:]) <= 217 for r in rows) and [r[1] for r in rows if r[1].isupper()] == ["J"]
    assert min(r[2] for r in rows) == 0 and max(r[2] for r in rows) == 4738 and sum(r[2] == r[3] for r in rows) == 55
    assert Counter(r[5] for r in rows) == Counter(EMOTIONS)
    manifests = {}
    for classes in (3, 4, 7):
        out = base / f"c{classes}" / "manifest.csv"
        ingest(DataSettings(dataset="casme3", root=str(base / "CAS(ME)3"), classes=classes), str(out))
        manifests[classes] = read_manifest(out)
        rejects = pd.read_csv(out.parent / "rejects.csv", dtype=str, keep_default_na=False)
        assert len(manifests[classes]) + len(rejects) == 860  # every sheet row, kept or rejected, once
        faults = rejects[~rejects["reason"].str.contains("-class set")]
        assert sorted(zip(faults["sample_id"], faults["reason"])) == sorted(FAULT_REJECTS)
        label_map = dataset_label_map("casme3", classes)
        lost = Counter(label_map.words[canonical_word(r)] for r in faults["emotion"])
        kept = Counter(manifests[classes]["label_name"])
        assert {name: kept[name] + lost[name] for name in label_map.class_names} == DOCUMENTED[classes]["counts"]
        subjects = set(manifests[classes]["subject"])
        assert len(subjects) == DOCUMENTED[classes]["subjects"]
    seven = manifests[7]
    assert len(seven) >= 840 and seven["sample_id"].is_unique
    per_video = seven.groupby(["subject", "video_id"]).size()
    assert per_video.max() == 17 and len(per_video) == 463 - 1  # spNO.40 e holds only its two offset-0 rows
