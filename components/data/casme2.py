"""CASME II as distributed: `<root>/sub01/EP02_01f/img46.jpg` (or the cropped `reg_img46.jpg`) and
the coding sheet CASME2-coding-20140508.xlsx (or -20190701.xlsx), sheet `Sheet1`, header on row 1."""
from __future__ import annotations

from pathlib import Path

from components.data.samples import Reject, Sample
from components.data.sheets import SheetLayout, collect_sheet_dataset

LAYOUT = SheetLayout(
    dataset="casme2", title="CASME II", sheet="Sheet1", example_file="CASME2-coding-20140508.xlsx",
    columns=("Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame", "Estimated Emotion"),
    subject_prefix="sub", subject_width=2,
)


def collect(root: Path, annotations: Path | None, classes: int) -> tuple[list[Sample], list[Reject]]:
    return collect_sheet_dataset(LAYOUT, root, annotations, classes)
