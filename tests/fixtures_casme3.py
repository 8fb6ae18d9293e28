"""A full-size CAS(ME)^3 part A in the long-video form, generated from the facts of DATASETS.md.

What the facts fix, and the sheet reproduces: 860 rows; 94 subjects `spNO.<n>` drawn from 1..217; 463
(Subject, Filename) videos, Filenames a-m, one `J`; up to 17 micro-expressions in one video; onsets 0..4738;
55 rows with onset == apex; the emotion words and their counts (`others` 158 + `Others` 3, ...), so the
3/4/7-class counts and the 88 subjects of the 3-class set; every documented sheet fault at its subject
and video (apex before onset, onset after offset, the two offset-0 rows, 0/0/25, 5/5/3460); zero-byte
frames where the real ones are unreadable; `spNO.`/`spNo.` folder case.

What the facts leave open, and is drawn here (seed 0): which subjects beside the faulty ones, how the
videos and rows spread over them, the other frame numbers (durations 8-15 frames), the emotions of the
faulty rows, and which 6 subjects hold only `others`. Frames are written only inside the rows' ranges
(a real long video holds every frame), as hard links to one tiny JPEG.
"""
from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from fixtures_datasets import CASME3_SHEET, write_casme3_sheet

EMOTIONS = {"disgust": 250, "surprise": 187, "others": 158, "Others": 3, "fear": 86, "anger": 64, "sad": 57,
            "happy": 55}
DOCUMENTED = {
    7: {"counts": {"surprise": 187, "happiness": 55, "disgust": 250, "anger": 64, "fear": 86, "sadness": 57,
                   "others": 161}, "subjects": 94},
    4: {"counts": {"surprise": 187, "positive": 55, "negative": 457, "others": 161}, "subjects": 94},
    3: {"counts": {"surprise": 187, "positive": 55, "negative": 457}, "subjects": 88},
}
# (subject, Filename) -> its faulty rows (onset, apex, offset); each video also gets ordinary rows
# except spNO.40 e, which holds only its two offset-0 rows.
FAULTY_ROWS = {
    (149, "d"): [(112, 83, 358)],
    (216, "d"): [(3647, 2668, 2694)],
    (40, "e"): [(1200, 1205, 0), (1500, 1504, 0)],
    (216, "e"): [(0, 0, 25)],
    (214, "c"): [(5, 5, 3460)],
    (3, "J"): [(498, 520, 576)],
    (4, "j"): [(568, 580, 609)],
}
UNREADABLE = {(3, "j"): range(498, 577), (4, "j"): range(568, 610)}  # zero-byte frames, as the real ones fail
FRAMES_OF_FAULTY = {(149, "d"): range(80, 121), (40, "e"): range(1200, 1211), (216, "e"): range(1, 26),
                    (214, "c"): range(1, 41)}
FAULT_REJECTS = [
    ("casme3/spNO.149/d_112", "apex 83 lies outside onset..offset 112..358 in the sheet (a known fault)"),
    ("casme3/spNO.216/d_3647", "onset 3647 is after offset 2694 in the sheet (a known fault)"),
    ("casme3/spNO.40/e_1200", "offset is 0 in the sheet (a known fault); the true offset is unknown"),
    ("casme3/spNO.40/e_1500", "offset is 0 in the sheet (a known fault); the true offset is unknown"),
]
N_ROWS, N_SUBJECTS, N_VIDEOS, MOST_PER_VIDEO, MAX_ONSET, ONSET_IS_APEX = 860, 94, 463, 17, 4738, 55


def _videos(rng: np.random.Generator) -> dict[tuple[int, str], int]:
    """(subject, Filename) -> number of rows, 463 videos, 860 rows."""
    faulty_subjects = sorted({s for s, _ in FAULTY_ROWS})
    pool = [n for n in range(1, 218) if n not in faulty_subjects]
    subjects = faulty_subjects + sorted(int(n) for n in rng.choice(pool, N_SUBJECTS - len(faulty_subjects), replace=False))
    per_subject = {s: 1 + sum(1 for f, _ in FAULTY_ROWS if f == s) for s in subjects}  # faulty ones + an ordinary one
    while sum(per_subject.values()) < N_VIDEOS:
        s = subjects[int(rng.integers(len(subjects)))]
        per_subject[s] += per_subject[s] < 13
    videos = {}
    for s in subjects:
        fixed = [v for f, v in FAULTY_ROWS if f == s]
        free = [c for c in "abcdefghijklm" if c not in {v.lower() for v in fixed}]
        for video in fixed + list(rng.choice(free, per_subject[s] - len(fixed), replace=False)):
            videos[(s, str(video))] = len(FAULTY_ROWS.get((s, video), []))
    ordinary = [k for k in videos if k != (40, "e")]
    for key in ordinary:
        videos[key] += 1
    videos[ordinary[-1]] = MOST_PER_VIDEO
    while sum(videos.values()) < N_ROWS:
        key = ordinary[int(rng.integers(len(ordinary) - 1))]
        videos[key] += videos[key] < 8
    return videos


def _emotions(rng: np.random.Generator, rows: list[list]) -> None:
    """Set the last cell of each row: the documented counts, 6 subjects with `others` only, and every other
    subject with a non-others row that no fault rejects."""
    words = [w for w, n in EMOTIONS.items() for _ in range(n)]
    rng.shuffle(words)
    others = [w for w in words if w.lower() == "others"]
    rest = [w for w in words if w.lower() != "others"]
    by_subject: dict[str, list[list]] = {}
    for row in rows:
        by_subject.setdefault(row[0], []).append(row)
    faulty = {f"spNO.{s}" for s, _ in FAULTY_ROWS}
    only_others = sorted((s for s in by_subject if s not in faulty), key=lambda s: (len(by_subject[s]), s))[:6]
    for subject, subject_rows in by_subject.items():
        if subject in only_others:
            for row in subject_rows:
                row[5] = others.pop()
        else:
            next(r for r in subject_rows if r[5] == "ordinary")[5] = rest.pop()
    remaining = others + rest
    rng.shuffle(remaining)
    for row in rows:
        if row[5] in ("ordinary", "fault"):
            row[5] = remaining.pop()


def generate_part_a(root: Path, seed: int = 0) -> list[tuple]:
    """Write root/<CASME3_SHEET> and root/data/<Subject>/<Filename>/color/<n>.jpg; return the sheet rows."""
    rng = np.random.default_rng(seed)
    rows, frames = [], {}
    videos = _videos(rng)
    for (subject, video), count in videos.items():
        faulty = FAULTY_ROWS.get((subject, video), [])
        slots = rng.choice(np.arange(20, MAX_ONSET - 20, 24), count - len(faulty), replace=False)
        numbers = set(FRAMES_OF_FAULTY.get((subject, video), ())) | set(UNREADABLE.get((subject, video.lower()), ()))
        for onset, apex, offset in faulty:
            rows.append([f"spNO.{subject}", video, onset, apex, offset, "fault"])
        for onset in sorted(int(s) for s in slots):
            last = onset + int(rng.integers(7, 15))
            apex = onset + int(rng.integers(1, last - onset))
            rows.append([f"spNO.{subject}", video.lower(), onset, apex, last, "ordinary"])  # one row only has `J`
            numbers |= set(range(onset, last + 1))
        frames[(subject, video.lower())] = numbers
    biggest = max(videos, key=videos.get)
    top = max((r for r in rows if (int(r[0][5:]), r[1]) == biggest), key=lambda r: r[2])
    shift = MAX_ONSET - top[2]
    frames[biggest] |= set(range(MAX_ONSET, MAX_ONSET + top[4] - top[2] + 1))
    top[2:5] = [MAX_ONSET, top[3] + shift, top[4] + shift]
    ordinary = [r for r in rows if r[5] == "ordinary"]
    for row in rng.choice(len(ordinary), ONSET_IS_APEX - 2, replace=False):  # 214 c and 216 e are the other two
        ordinary[row][3] = ordinary[row][2]
    _emotions(rng, rows)
    _write_frames(root / "data", frames, rng)
    write_casme3_sheet(root / CASME3_SHEET, [tuple(r) for r in rows])
    return [tuple(r) for r in rows]


def _write_frames(root: Path, frames: dict[tuple[int, str], set[int]], rng: np.random.Generator) -> None:
    tiny = root / "tiny.jpg"
    root.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(tiny), np.full((8, 8), 90, np.uint8))
    for (subject, video), numbers in frames.items():
        folder = root / (f"spNo.{subject}" if rng.random() < 0.3 else f"spNO.{subject}") / video / "color"
        folder.mkdir(parents=True, exist_ok=True)
        for n in sorted(numbers):
            if n in UNREADABLE.get((subject, video), ()):
                (folder / f"{n}.jpg").write_bytes(b"")
            else:
                os.link(tiny, folder / f"{n}.jpg")
    tiny.unlink()
