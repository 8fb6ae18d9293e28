"""Annotation spreadsheets (CASME II, SAMM) and the adapters driven by them.

A sheet is read without trusting its row layout: the header is the first row (of the first 30)
that holds every required column, compared case- and space-insensitively, so SAMM's 13 note rows
and CASME II's blank columns need no special casing. Cells are read as Excel stores them and turned
into text here, so a Subject typed as the number 1 and as the text `01` are the same subject.
"""
from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from components.data.classes import dataset_label_map
from components.data.samples import Reject, Sample, canonical_subject, cell_frame, cell_text, subfolders, unsafe_name
from components.errors import UserError

HEADER_SEARCH_ROWS = 30


@dataclass(frozen=True)
class SheetLayout:
    dataset: str                 # `casme2`
    title: str                   # `CASME II`, for messages
    sheet: str                   # the sheet as distributed
    example_file: str            # the annotation file as distributed, for messages
    columns: tuple[str, ...]     # Subject, Filename, onset, apex, offset, emotion, as spelt in the sheet
    subject_prefix: str          # subject folder = prefix + subject (`sub` + `01`)
    subject_width: int           # numeric subjects are zero-padded to this width


def _key(name) -> str:
    return re.sub(r"\s+", "", cell_text(name)).lower()


def _load_table(path: Path, layout: SheetLayout) -> pd.DataFrame:
    """The raw cells of the layout's sheet (every value as Excel holds it, no header applied)."""
    if not path.is_file():
        raise UserError(f"annotation file {path} does not exist; pass the {layout.title} sheet "
                        f"({layout.example_file}) with --annotations")
    if path.suffix.lower() == ".csv":
        return pd.read_csv(path, header=None, dtype=object, keep_default_na=False)
    try:
        book = pd.ExcelFile(path, engine="openpyxl")
    except (zipfile.BadZipFile, ValueError, OSError, KeyError) as e:
        raise UserError(f"annotation file {path} is not a readable .xlsx workbook ({e}); pass the "
                        f"{layout.title} sheet ({layout.example_file}) or a CSV export of it") from None
    names = book.sheet_names
    if layout.sheet not in names and len(names) != 1:
        raise UserError(f"annotation file {path} has no sheet '{layout.sheet}' (it has {names}); pass "
                        f"the {layout.title} sheet ({layout.example_file})")
    return book.parse(layout.sheet if layout.sheet in names else names[0], header=None, dtype=object)


def read_sheet(path: str | Path, layout: SheetLayout) -> list[tuple[int, dict[str, object]]]:
    """(spreadsheet row number, {column as spelt in layout.columns: cell}) for every non-blank row
    under the header."""
    path = Path(path)
    table = _load_table(path, layout)
    wanted = {_key(c): c for c in layout.columns}
    for header_row in range(min(HEADER_SEARCH_ROWS, len(table))):
        keys = [_key(v) for v in table.iloc[header_row]]
        if set(wanted) <= set(keys):
            break
    else:
        raise UserError(f"annotation file {path} has no header row with the columns "
                        f"{', '.join(layout.columns)} in its first {HEADER_SEARCH_ROWS} rows; pass the "
                        f"{layout.title} sheet ({layout.example_file})")
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
            reject.reason = f"duplicate sheet row {row_number} (first on row {seen[sample_id]})"
        if reject.reason:
            rejects.append(reject)
            continue
        seen[sample_id] = row_number
        samples.append(Sample(layout.dataset, f"{layout.dataset}/{subject}", video, sample_id,
                              root / subject_folder / video, emotion, label_map, cell_frame(cells[onset_col]),
                              cell_frame(cells[apex_col]), cell_frame(cells[offset_col])))
    claimed = {s.frames_dir for s in samples}
    for subject, subject_dir in folders.items():
        for clip_dir in subfolders(subject_dir):
            if clip_dir not in claimed:
                rejects.append(Reject(f"{layout.dataset}/{subject_dir.name}/{clip_dir.name}", layout.dataset,
                                      f"{layout.dataset}/{subject}", clip_dir.name, clip_dir, "",
                                      "clip folder has no row in the annotation sheet"))
    return samples, rejects
