"""4DME (267 micro-expressions, 60 fps grey), read defensively: the facts about its layout are less certain.

The sheet `4DME_Labelling_Micro_release v1.xlsx` (any sheet; the header holds at least `sub_ID | fold_name
| Emotion | Onset | Apex | Offset`) is `--annotations`, else found under `--root`. Frames are
`gray_micro/<sub_ID>/<fold_name>/Frame_%09d.jpg`; `--root` is the `gray_micro` folder, a folder holding it
(up to three levels down), or a folder holding the `<sub_ID>` folders themselves. Subject and fold folders
match case-insensitively; a numeric sub_ID (`1`) also finds the one folder with that number (`S01`).
A fold named by several rows gives one sample per row, told apart by the onset (`<fold>_<onset>`).
Combined emotions (`Surprise+Positive`) take the class their parts share, else are rejected.
"""
from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from components.data.classes import dataset_label_map
from components.data.samples import (Reject, Sample, cell_text, cut_clip_range, frame_cells, row_rejection, subfolders,
                                     walk)
from components.data.sheets import SheetLayout, find_sheet, read_sheet
from components.errors import UserError

LAYOUT = SheetLayout(
    dataset="4dme", title="4DME", sheet=None, example_file="4DME_Labelling_Micro_release v1.xlsx",
    columns=("sub_ID", "fold_name", "Onset", "Apex", "Offset", "Emotion"), subject_prefix="", subject_width=0,
)
SHEET_PATTERN = "4dme_labelling_micro*.xlsx"
FRAMES_FOLDER = "gray_micro"
_NUMBER = re.compile(r"\d+")


def frames_root(root: Path, subjects: set[str]) -> Path:
    """The gray_micro folder: root itself, one under it, or root when it holds sheet subjects' folders."""
    if root.name.lower() == FRAMES_FOLDER:
        return root
    found = [p for p in walk(root, 3, descend=lambda p: p.name.lower() != FRAMES_FOLDER)
             if p.is_dir() and p.name.lower() == FRAMES_FOLDER]
    if found:
        return found[0]
    if {p.name.lower() for p in subfolders(root)} & {s.lower() for s in subjects}:
        return root
    raise UserError(f"--root {root} holds no 4DME frames: expected {FRAMES_FOLDER}/<sub_ID>/<fold_name>/Frame_%09d.jpg "
                    f"(the {FRAMES_FOLDER} folder, a folder holding it, or the <sub_ID> folders); pass that folder")


def _folder_index(folder: Path) -> dict[str, Path]:
    """Sub-folders by lower-case name, plus by number where exactly one sub-folder carries that number."""
    folders = subfolders(folder)
    index = {p.name.lower(): p for p in folders}
    numbers = Counter(int(m[-1]) for p in folders if (m := _NUMBER.findall(p.name)))
    for p in folders:
        found = _NUMBER.findall(p.name)
        if found and numbers[int(found[-1])] == 1:
            index.setdefault(str(int(found[-1])), p)
    return index


def collect(root: Path, annotations: Path | None, classes: int) -> tuple[list[Sample], list[Reject]]:
    label_map = dataset_label_map("4dme", classes)
    sheet = find_sheet(root, annotations, SHEET_PATTERN)
    if sheet is None:
        raise UserError(f"--dataset 4dme needs its sheet ({LAYOUT.example_file}): pass it with --annotations or "
                        "put it under --root")
    rows = [(n, *(cell_text(cells[c]) for c in ("sub_ID", "fold_name", "Emotion")),
             *frame_cells(cells, ("Onset", "Apex", "Offset"), n)) for n, cells in read_sheet(sheet, LAYOUT)]
    frames = frames_root(root, {r[1] for r in rows})
    subjects = _folder_index(frames)
    print(f"4dme: sheet {sheet}; frames {frames} ({len(subjects)} subject folders)")
    per_fold = Counter((r[1].lower(), r[2].lower()) for r in rows)
    samples, rejects, seen, named = [], [], {}, set()
    for row_number, sub_id, fold, emotion, onset, apex, offset, bad_cell in rows:
        subject_dir = subjects.get(sub_id.lower()) or subjects.get(str(int(sub_id)) if sub_id.isdigit() else "")
        subject = subject_dir.name if subject_dir else sub_id
        folds = _folder_index(subject_dir) if subject_dir else {}
        fold_dir = folds.get(fold.lower())
        named.add(fold_dir)
        several = per_fold[(sub_id.lower(), fold.lower())] > 1
        sample_id = f"4dme/{subject}/{fold}" + (f"_{'' if onset is None else onset}" if several else "")
        reason = row_rejection(row_number, bad_cell, {"sub_ID": sub_id, "fold_name": fold}, sample_id, seen)
        if reason:
            rejects.append(Reject(sample_id, "4dme", f"4dme/{subject}", fold, None, emotion, reason))
            continue
        seen[sample_id] = row_number
        folder = fold_dir or frames / subject / fold
        first, last, note = cut_clip_range(folder, onset, offset)
        samples.append(Sample("4dme", f"4dme/{subject}", fold, sample_id, folder, emotion, label_map, onset, apex,
                              offset, first_frame=first, last_frame=last,
                              warnings=[f"{sample_id}: {note}"] if note else []))
    rejects += [Reject(f"4dme/{s.name}/{f.name}", "4dme", f"4dme/{s.name}", f.name, f, "",
                       "clip folder has no row in the annotation sheet")
                for s in subfolders(frames) for f in subfolders(s) if f not in named]
    return samples, rejects
