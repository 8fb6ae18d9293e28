"""Small fixture trees in the real distributed layouts (tiny generated images, real sheet headers).

Plain helpers rather than pytest fixtures, so any test module can build the tree it needs.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import openpyxl

CASME2_HEADER = ["Subject", "Filename", None, "OnsetFrame", "ApexFrame", "OffsetFrame", None,
                 "Action Units", "Estimated Emotion"]
SAMM_HEADER = ["Subject", "Filename", "Inducement Code", "Onset Frame", "Apex Frame", "Offset Frame",
               "Duration", "Micro", "Action Units", "Estimated Emotion", "Objective Classes", "Notes"]
SAMM_NOTE_ROWS = 13


def write_frames(folder: Path, names: list[str], size: int = 8) -> None:
    """Tiny JPEG frames with the given file names (content differs per frame)."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        image = np.full((size, size), 40 + 10 * i % 200, np.uint8)
        assert cv2.imwrite(str(folder / name), image)


def numbered(template: str, first: int, count: int) -> list[str]:
    """`numbered('img{}.jpg', 46, 3)` -> img46.jpg, img47.jpg, img48.jpg."""
    return [template.format(n) for n in range(first, first + count)]


def write_casme2_sheet(path: Path, rows: list[tuple], sheet: str = "Sheet1") -> Path:
    """rows: (Subject, Filename, OnsetFrame, ApexFrame, OffsetFrame, Action Units, Estimated Emotion),
    each cell written with the Python type given (int 1 or text '01')."""
    book = openpyxl.Workbook()
    page = book.active
    page.title = sheet
    page.append(CASME2_HEADER)
    for subject, filename, onset, apex, offset, aus, emotion in rows:
        page.append([subject, filename, None, onset, apex, offset, None, aus, emotion])
    book.save(path)
    return path


def write_samm_sheet(path: Path, rows: list[tuple]) -> Path:
    """rows: (Subject, Filename, Onset Frame, Apex Frame, Offset Frame, Estimated Emotion); 13 note rows
    precede the header on row 14, as in SAMM_Micro_FACS_Codes_v2.xlsx, and a second sheet exists."""
    book = openpyxl.Workbook()
    page = book.active
    page.title = "MICRO_ONLY"
    page.append(["SAMM: Spontaneous Micro-Facial Movement Dataset"])
    for i in range(2, SAMM_NOTE_ROWS + 1):
        page.append([f"note {i}: please cite Davison et al." if i % 3 else None])
    page.append(SAMM_HEADER)
    for subject, filename, onset, apex, offset, emotion in rows:
        duration = offset - onset + 1 if isinstance(offset, int) and isinstance(onset, int) else None
        page.append([subject, filename, "2", onset, apex, offset, duration, "Micro", "R12", emotion,
                     "Class 1", None])
    book.create_sheet("MACRO")["A1"] = "macro movements"
    book.save(path)
    return path


def build_casme2(root: Path, clips: list[tuple[str, str, int, int]], template: str = "img{}.jpg") -> Path:
    """clips: (subject folder, video, first frame number, frame count) under root (CASME2_RAW_selected)."""
    for subject, video, first, count in clips:
        write_frames(root / subject / video, numbered(template, first, count))
    return root


def build_samm(root: Path, clips: list[tuple[str, str, list[str]]]) -> Path:
    """clips: (subject folder, video, frame file names) under root (SAMM)."""
    for subject, video, names in clips:
        write_frames(root / subject / video, names)
    return root


def build_smic(hs_root: Path, clips: list[tuple[str, str, str, int, int]]) -> Path:
    """clips: (subject, emotion folder, video, first frame number, count) as HS/s1/micro/negative/s1_ne_01."""
    for subject, emotion, video, first, count in clips:
        names = [f"image{n:06d}.bmp" for n in range(first, first + count)]
        write_frames(hs_root / subject / "micro" / emotion / video, names)
    return hs_root


CASME3_SHEET = "cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx"
CASME3_HEADER = ["Subject", "Filename", "Onset", "Apex", "Offset", "AU", "Objective class", "emotion"]


def write_casme3_sheet(path: Path, rows: list[tuple]) -> Path:
    """rows: (Subject, Filename, Onset, Apex, Offset, emotion), every cell stored as text as in the
    distributed workbook, on sheet `label`; the empty sheets `Sheet1` and `Sheet3` exist beside it."""
    book = openpyxl.Workbook()
    page = book.active
    page.title = "label"
    page.append(CASME3_HEADER)
    for subject, filename, onset, apex, offset, emotion in rows:
        page.append([subject, filename, str(onset), str(apex), str(offset), "R12", "1", emotion])
    book.create_sheet("Sheet1")
    book.create_sheet("Sheet3")
    book.save(path)
    return path


def build_casme3_videos(root: Path, frames: dict[tuple[str, str], list[int]]) -> Path:
    """Long videos as distributed: root/<Subject>/<Filename>/color/<n>.jpg (unpadded), and depth/<n>.png
    beside color/ (never read). frames: (subject folder, filename folder) -> frame numbers to write."""
    for (subject, video), numbers in frames.items():
        write_frames(root / subject / video / "color", [f"{n}.jpg" for n in numbers])
        (root / subject / video / "depth").mkdir(exist_ok=True)
        (root / subject / video / "depth" / f"{numbers[0]}.png").write_bytes(b"")
    return root


MMEW_HEADER = ["Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame", "Action Units", "Estimated Emotion",
               "remarks"]
FOURDME_HEADER = ["sub_ID", "fold_name", "Emotion", "Onset", "Apex", "Offset", "AUs"]


def write_plain_sheet(path: Path, header: list[str], rows: list[tuple], title: str = "Sheet1") -> Path:
    """A workbook whose one sheet holds header then rows, cell for cell."""
    book = openpyxl.Workbook()
    page = book.active
    page.title = title
    page.append(header)
    for row in rows:
        page.append(list(row))
    book.save(path)
    return path
