"""SAMM as distributed: `<root>/006/006_1_2/006_05562.jpg` and SAMM_Micro_FACS_Codes_v2.xlsx, sheet
`MICRO_ONLY`, 13 note rows then the header on row 14. Subjects `6` and `006` are the same."""
from __future__ import annotations

from pathlib import Path

from components.data.samples import Reject, Sample
from components.data.sheets import SheetLayout, collect_sheet_dataset

LAYOUT = SheetLayout(
    dataset="samm", title="SAMM", sheet="MICRO_ONLY", example_file="SAMM_Micro_FACS_Codes_v2.xlsx",
    columns=("Subject", "Filename", "Onset Frame", "Apex Frame", "Offset Frame", "Estimated Emotion"),
    subject_prefix="", subject_width=3,
)


def collect(root: Path, annotations: Path | None, classes: int) -> tuple[list[Sample], list[Reject]]:
    return collect_sheet_dataset(LAYOUT, root, annotations, classes)
