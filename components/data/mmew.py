"""MMEW (300 micro-expressions, 90 fps), read defensively: the facts about its layout are less certain.

Frames in either of the two forms seen (found under `--root`, up to three levels down):

    Micro_Expression/<emotion>/<Sxx-yy-zzz>/<n>.jpg      what public loaders read (frames numbered from 1)
    <Sxx>/<emotion>/<Sxx-yy-zzz>/<n>.jpg                  what the official page shows

The sheet `MMEW_Micro_Exp.xlsx` (header `Subject | Filename | OnsetFrame | ApexFrame | OffsetFrame |
Action Units | Estimated Emotion | remarks`, any sheet) gives labels and timing; it is `--annotations`,
else found under `--root`. A clip is found by its Filename, whichever emotion folder holds it; a folder
emotion that disagrees with the sheet is a warning (the sheet wins). Without a sheet, the emotion folder
is the label and onset/offset are the clip's first/last frames. The `others` folder may be named
`repression` (a synonym here). Subjects `S1`, `s01`, `1` are `S01`.
"""
from __future__ import annotations

import re
from pathlib import Path

from components.data.classes import canonical_word, dataset_label_map
from components.data.samples import (Reject, Sample, cell_text, cut_clip_range, frame_cells, row_rejection, subfolders,
                                     walk)
from components.data.sheets import SheetLayout, find_sheet, read_sheet
from components.errors import UserError

LAYOUT = SheetLayout(
    dataset="mmew", title="MMEW", sheet=None, example_file="MMEW_Micro_Exp.xlsx",
    columns=("Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame", "Estimated Emotion"),
    subject_prefix="S", subject_width=2,
)
SHEET_PATTERN = "mmew_micro_exp*.xlsx"
_SUBJECT = re.compile(r"s?(\d+)", re.IGNORECASE)
_EXPECTED = "Micro_Expression/<emotion>/<Sxx-yy-zzz>/<n>.jpg or Sxx/<emotion>/<Sxx-yy-zzz>/<n>.jpg"


def canonical_subject(text: str) -> str | None:
    match = _SUBJECT.fullmatch(text.strip())
    return f"S{int(match.group(1)):02d}" if match else None


def clip_folders(root: Path) -> dict[str, tuple[Path, str]]:
    """Clip name (lower case) -> (its folder, its emotion folder's name), from either form."""
    def is_micro(p: Path) -> bool:
        return p.is_dir() and p.name.lower() == "micro_expression"
    found = [root] if is_micro(root) else [p for p in walk(root, 3, descend=lambda p: not is_micro(p)) if is_micro(p)]
    if found:
        emotion_dirs = subfolders(found[0])
    else:
        subjects = [p for p in walk(root, 2, descend=lambda p: not _SUBJECT.fullmatch(p.name))
                    if p.is_dir() and p.name[:1].lower() == "s" and _SUBJECT.fullmatch(p.name)]
        emotion_dirs = [e for s in subjects for e in subfolders(s)]
    clips = {clip.name.lower(): (clip, emotion.name) for emotion in emotion_dirs for clip in subfolders(emotion)}
    if not clips:
        raise UserError(f"--root {root} holds no MMEW clips in either known form ({_EXPECTED}); pass the MMEW "
                        "folder that holds them")
    return clips


def collect(root: Path, annotations: Path | None, classes: int) -> tuple[list[Sample], list[Reject]]:
    label_map = dataset_label_map("mmew", classes)
    clips = clip_folders(root)
    sheet = find_sheet(root, annotations, SHEET_PATTERN)
    print(f"mmew: {len(clips)} clip folders; labels from {sheet or 'the emotion folders (no MMEW_Micro_Exp.xlsx found)'}")
    if sheet is None:
        return _folder_samples(clips, label_map)
    samples, rejects, seen = [], [], {}
    for row_number, cells in read_sheet(sheet, LAYOUT):
        raw_subject, video, emotion = (cell_text(cells[c]) for c in ("Subject", "Filename", "Estimated Emotion"))
        subject = canonical_subject(raw_subject) or canonical_subject(video.split("-")[0]) or raw_subject
        sample_id = f"mmew/{subject}/{video}"
        onset, apex, offset, bad_cell = frame_cells(cells, ("OnsetFrame", "ApexFrame", "OffsetFrame"), row_number)
        reason = row_rejection(row_number, bad_cell, {"Filename": video}, sample_id, seen)
        if reason:
            rejects.append(Reject(sample_id, "mmew", f"mmew/{subject}", video, None, emotion, reason))
            continue
        seen[sample_id] = row_number
        folder, folder_emotion = clips.get(video.lower(), (root / video, ""))
        first, last, note = cut_clip_range(folder, onset, offset)
        notes = [note] if note else []
        if folder_emotion and _same(folder_emotion) != _same(emotion):
            notes.append(f"sheet emotion '{emotion}' differs from its folder '{folder_emotion}' (the sheet is used)")
        samples.append(Sample("mmew", f"mmew/{subject}", video, sample_id, folder, emotion, label_map, onset, apex,
                              offset, first_frame=first, last_frame=last,
                              warnings=[f"{sample_id}: {n}" for n in notes]))
    named = {s.video_id.lower() for s in samples} | {r.video_id.lower() for r in rejects}
    rejects += [Reject(f"mmew/{canonical_subject(folder.name.split('-')[0]) or '?'}/{folder.name}", "mmew",
                       f"mmew/{canonical_subject(folder.name.split('-')[0]) or '?'}", folder.name, folder, emotion,
                       "clip folder has no row in the annotation sheet")
                for name, (folder, emotion) in sorted(clips.items()) if name not in named]
    return samples, rejects


def _same(word: str) -> str:
    word = canonical_word(word)
    return "others" if word == "repression" else word


def _folder_samples(clips: dict[str, tuple[Path, str]], label_map) -> tuple[list[Sample], list[Reject]]:
    """Without a sheet: the emotion folder is the label, the subject the clip name's `Sxx` (or its Sxx folder)."""
    samples, rejects = [], []
    for folder, emotion in (clips[name] for name in sorted(clips)):
        subject = canonical_subject(folder.name.split("-")[0]) or canonical_subject(folder.parent.parent.name)
        if subject is None:
            rejects.append(Reject(f"mmew/{folder.name}", "mmew", "", folder.name, folder, emotion,
                                  "clip name does not start with its subject (Sxx-...), so its subject is unknown"))
            continue
        samples.append(Sample("mmew", f"mmew/{subject}", folder.name, f"mmew/{subject}/{folder.name}", folder, emotion,
                              label_map, onset_offset_from_frames=True))
    return samples, rejects
