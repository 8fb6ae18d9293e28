"""The synthetic set's coding sheet: CASME II's `Sheet1` (header on row 1 with its two blank columns),
written byte-stable (fixed timestamps), so the file's bytes follow the seed. One column more than CASME II's,
`Real faces`, says which real face photographs each subject derives from (`astronaut`, or a morph such as
`astronaut 67% + grace_hopper 33%`); the casme2 adapter reads the columns it needs by name and ignores it."""
from __future__ import annotations

import datetime
import io
import re
import zipfile
from pathlib import Path

import openpyxl

from components.io import atomic_path
from components.synthetic.identities import subject_source
from components.synthetic.render import ClipPlan, au_text

SHEET_FILE = "CASME2-coding-synthetic.xlsx"
CASME2_HEADER = ["Subject", "Filename", None, "OnsetFrame", "ApexFrame", "OffsetFrame", None,
                 "Action Units", "Estimated Emotion"]
SOURCE_COLUMN = "Real faces"
FIXED_TIME = datetime.datetime(2014, 5, 8)


def write_sheet(path: Path, plans: list[ClipPlan]) -> None:
    """The CASME II coding sheet (Sheet1, header on row 1 with its two blank columns) plus the Real faces
    column, byte-stable."""
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Sheet1"
    sheet.append(CASME2_HEADER + [SOURCE_COLUMN])
    for p in plans:
        sheet.append([f"{p.subject:02d}", p.video_id, None, p.onset, p.apex, p.offset, None,
                      au_text(p.action_units), p.emotion, subject_source(p.subject).label])
    book.properties.created = FIXED_TIME
    buffer = io.BytesIO()
    book.save(buffer)
    with atomic_path(path) as tmp:
        tmp.write_bytes(_fixed_timestamps(buffer.getvalue()))


def _fixed_timestamps(xlsx: bytes) -> bytes:
    """The same workbook with every zip entry and the document's modified time set to FIXED_TIME."""
    stamp = FIXED_TIME.strftime("%Y-%m-%dT%H:%M:%SZ")
    source, out = zipfile.ZipFile(io.BytesIO(xlsx)), io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            data = source.read(info)
            if info.filename == "docProps/core.xml":
                data = re.sub(rb"(<dcterms:modified[^>]*>)[^<]*", rb"\g<1>" + stamp.encode(), data)
            target.writestr(zipfile.ZipInfo(info.filename, FIXED_TIME.timetuple()[:6]), data,
                            zipfile.ZIP_DEFLATED)
    return out.getvalue()
