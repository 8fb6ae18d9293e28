"""Annotation spreadsheets (CASME II, SAMM) and the adapters driven by them.

A sheet is read without trusting its row layout: the header is the first row (of the first 30)
that holds every required column, compared case- and space-insensitively, so SAMM's 13 note rows
and CASME II's blank columns need no special casing. Cells are read as Excel stores them and turned
into text here, so a Subject typed as the number 1 and as the text `01` are the same subject.
"""
from __future__ import annotations

import fnmatch
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from components.data.classes import dataset_label_map
from components.data.manifest import list_frames
from components.data.samples import (Reject, Sample, canonical_subject, cell_text, duplicate_row, frame_cells,
                                     subfolders, unsafe_name, walk)
from components.errors import UserError

HEADER_SEARCH_ROWS = 30


@dataclass(frozen=True)
class SheetLayout:
    dataset: str                 # `casme2`
    title: str                   # `CASME II`, for messages
    sheet: str | None            # the sheet as distributed (None: unknown, the one with the header)
    example_file: str            # the annotation file as distributed, for messages
    columns: tuple[str, ...]     # Subject, Filename, onset, apex, offset, emotion, as spelt in the sheet
    subject_prefix: str          # subject folder = prefix + subject (`sub` + `01`)
    subject_width: int           # numeric subjects are zero-padded to this width


def _key(name) -> str:
    return re.sub(r"\s+", "", cell_text(name)).lower()


def _load_tables(path: Path, layout: SheetLayout) -> list[pd.DataFrame]:
    """The raw cells (every value as Excel holds it, no header applied) of the layout's sheet, or of every
    sheet when the layout names none (the header then picks one)."""
    if not path.is_file():
        raise UserError(f"annotation file {path} does not exist; pass the {layout.title} sheet "
                        f"({layout.example_file}) with --annotations")
    if path.suffix.lower() == ".csv":
        try:
            return [pd.read_csv(path, header=None, dtype=object, keep_default_na=False, encoding="utf-8-sig")]
        except pd.errors.EmptyDataError:
            raise UserError(f"annotation file {path} is empty; pass the {layout.title} sheet "
                            f"({layout.example_file}) or a CSV export of it") from None
        except UnicodeDecodeError as e:
            raise UserError(f"annotation file {path} is not UTF-8 text (byte {e.start}); export the sheet again "
                            "as CSV UTF-8, or pass the .xlsx") from None
        except pd.errors.ParserError as e:
            raise UserError(f"annotation file {path} is not a readable CSV ({str(e).splitlines()[0]}); export "
                            "the sheet again, or pass the .xlsx") from None
    try:
        book = pd.ExcelFile(path, engine="openpyxl")
    except (zipfile.BadZipFile, ValueError, OSError, KeyError) as e:
        raise UserError(f"annotation file {path} is not a readable .xlsx workbook ({e}); pass the "
                        f"{layout.title} sheet ({layout.example_file}) or a CSV export of it") from None
    names = book.sheet_names
    if layout.sheet is None:
        return [book.parse(name, header=None, dtype=object) for name in names]
    if layout.sheet not in names and len(names) != 1:
        raise UserError(f"annotation file {path} has no sheet '{layout.sheet}' (it has {names}); pass "
                        f"the {layout.title} sheet ({layout.example_file})")
    return [book.parse(layout.sheet if layout.sheet in names else names[0], header=None, dtype=object)]


def read_sheet(path: str | Path, layout: SheetLayout) -> list[tuple[int, dict[str, object]]]:
    """(spreadsheet row number, {column as spelt in layout.columns: cell}) for every non-blank row
    under the header."""
    path = Path(path)
    wanted = {_key(c): c for c in layout.columns}
    for table in _load_tables(path, layout):
        header_row = next((r for r in range(min(HEADER_SEARCH_ROWS, len(table)))
                           if set(wanted) <= {_key(v) for v in table.iloc[r]}), None)
        if header_row is not None:
            break
    else:
        raise UserError(f"annotation file {path} has no header row with the columns "
                        f"{', '.join(layout.columns)} in its first {HEADER_SEARCH_ROWS} rows; pass the "
                        f"{layout.title} sheet ({layout.example_file})")
    keys = [_key(v) for v in table.iloc[header_row]]
    positions = {wanted[k]: keys.index(k) for k in wanted}
    rows = []
    for offset, values in enumerate(table.iloc[header_row + 1:].itertuples(index=False)):
        cells = {name: values[i] for name, i in positions.items()}
        if any(cell_text(v) for v in cells.values()):
            rows.append((header_row + 2 + offset, cells))  # 1-based, below the header
    return rows


def _subject_folders(root: Path, layout: SheetLayout) -> dict[str, Path]:
    """Canonical subject id -> its folder under root (`sub01` and `sub1` are both subject `01`)."""
    pattern = re.compile(rf"{layout.subject_prefix}(\d+)", re.IGNORECASE)
    folders = {}
    for path in sorted(root.iterdir()):
        match = pattern.fullmatch(path.name)
        if match and path.is_dir():
            folders[canonical_subject(match.group(1), layout.subject_width)] = path
    return folders


def collect_sheet_dataset(layout: SheetLayout, root: Path, annotations: Path | None,
                          classes: int) -> tuple[list[Sample], list[Reject]]:
    """Every sheet row as a Sample (or a Reject), plus a Reject for every clip folder with no row."""
    if annotations is None:
        raise UserError(f"--dataset {layout.dataset} needs --annotations: the {layout.title} sheet "
                        f"({layout.example_file})")
    subject_col, video_col, onset_col, apex_col, offset_col, emotion_col = layout.columns
    label_map = dataset_label_map(layout.dataset, classes)
    folders = _subject_folders(root, layout)
    samples, rejects, seen = [], [], {}
    for row_number, cells in read_sheet(annotations, layout):
        raw_subject, video, emotion = (cell_text(cells[c]) for c in (subject_col, video_col, emotion_col))
        subject = canonical_subject(raw_subject, layout.subject_width)
        subject_folder = folders[subject].name if subject in folders else f"{layout.subject_prefix}{subject}"
        sample_id = f"{layout.dataset}/{subject_folder}/{video}"
        reject = Reject(sample_id, layout.dataset, f"{layout.dataset}/{subject}", video, None, emotion, "")
        if not raw_subject or not video:
            reject.reason = f"sheet row {row_number} has no {subject_col if not raw_subject else video_col}"
        elif unsafe_name(raw_subject) or unsafe_name(video):
            reject.reason = f"sheet row {row_number} names an unsafe path ({raw_subject!r}, {video!r})"
        elif sample_id in seen:
            reject.reason = duplicate_row(row_number, seen[sample_id])
        onset, apex, offset, bad_cell = frame_cells(cells, (onset_col, apex_col, offset_col), row_number)
        if bad_cell and not reject.reason:  # the row names its folder: that folder is rejected, not row-less
            reject.reason, reject.frames_dir = bad_cell, root / subject_folder / video
        if reject.reason:
            rejects.append(reject)
            continue
        seen[sample_id] = row_number
        samples.append(Sample(layout.dataset, f"{layout.dataset}/{subject}", video, sample_id,
                              root / subject_folder / video, emotion, label_map, onset, apex, offset))
    claimed = {s.frames_dir for s in samples} | {r.frames_dir for r in rejects if r.frames_dir}
    for subject, subject_dir in folders.items():
        for clip_dir in subfolders(subject_dir):
            if clip_dir not in claimed:
                rejects.append(Reject(f"{layout.dataset}/{subject_dir.name}/{clip_dir.name}", layout.dataset,
                                      f"{layout.dataset}/{subject}", clip_dir.name, clip_dir, "",
                                      "clip folder has no row in the annotation sheet"))
    return samples, rejects


def find_sheet(root: Path, annotations: Path | None, pattern: str, depth: int = 3) -> Path | None:
    """`--annotations` if given, else the newest (by name) file under root matching `pattern`
    (lower-case fnmatch, e.g. `mmew_micro_exp*.xlsx`) within `depth` levels; None if there is none."""
    if annotations is not None:
        return annotations
    found = [p for p in walk(root, depth, descend=lambda p: not list_frames(p)[:1])
             if p.is_file() and fnmatch.fnmatch(p.name.lower(), pattern)]
    return max(found, key=lambda p: p.name.lower()) if found else None
