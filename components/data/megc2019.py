"""The MEGC2019 composite: CASME II + SAMM + SMIC-HS in 3 classes, subjects kept apart per data set.

`--root` is a folder holding the three data sets as distributed, found by name up to three levels down:

    CASME II frames   a folder named CASME2_RAW_selected or Cropped (subject folders sub01, ...)
    CASME II sheet    CASME2-coding-*.xlsx (the newest by name when there are several)
    SAMM frames       a folder named SAMM (subject folders 006, ...)
    SAMM sheet        SAMM_Micro_FACS_Codes*.xlsx (the newest by name when there are several)
    SMIC-HS frames    a folder named HS (subject folders s1, ...), e.g. SMIC_all_raw/HS

The composite leaves out two CASME II clips (EXCLUDED); they become rejects with that reason.
"""
from __future__ import annotations

import fnmatch
import re
from collections import defaultdict
from pathlib import Path

from components.data import casme2, samm, smic
from components.data.classes import check_class_set
from components.data.samples import Reject, Sample
from components.errors import UserError

EXCLUDED = {"casme2/sub04/EP12_01f", "casme2/sub05/EP09_05f"}
SEARCH_DEPTH = 3

# part -> (how to recognise it, how to describe it)
_PARTS = {
    "casme2_frames": (lambda p: p.is_dir() and p.name.lower() in {"casme2_raw_selected", "cropped"},
                      "a CASME II frames folder (CASME2_RAW_selected or Cropped)"),
    "casme2_sheet": (lambda p: p.is_file() and fnmatch.fnmatch(p.name.lower(), "casme2-coding-*.xlsx"),
                     "the CASME II sheet (CASME2-coding-*.xlsx)"),
    "samm_frames": (lambda p: p.is_dir() and p.name.lower() == "samm", "a SAMM frames folder (SAMM)"),
    "samm_sheet": (lambda p: p.is_file() and fnmatch.fnmatch(p.name.lower(), "samm_micro_facs_codes*.xlsx"),
                   "the SAMM sheet (SAMM_Micro_FACS_Codes*.xlsx)"),
    "smic_frames": (lambda p: p.is_dir() and p.name.upper() == "HS", "a SMIC-HS frames folder (HS)"),
}
_SUBJECT_FOLDER = re.compile(r"(sub|s)?\d+", re.IGNORECASE)  # never searched: they hold frames


def locate(root: Path) -> dict[str, Path]:
    """The five parts of the composite under root; UserError naming what is missing or doubled."""
    found, frontier = defaultdict(list), [root]
    for _ in range(SEARCH_DEPTH):
        deeper = []
        for folder in frontier:
            for path in sorted(folder.iterdir()):
                part = next((name for name, (match, _) in _PARTS.items() if match(path)), None)
                if part:
                    found[part].append(path)
                if path.is_dir() and part not in {"casme2_frames", "smic_frames"} \
                        and not path.name.startswith(".") and not _SUBJECT_FOLDER.fullmatch(path.name):
                    deeper.append(path)
        frontier = deeper
    missing = [describe for name, (_, describe) in _PARTS.items() if not found[name]]
    if missing:
        raise UserError(f"--root {root} lacks {'; '.join(missing)}; put the three data sets under it as "
                        "distributed (see docs/datasets.md)")
    for name in ("casme2_frames", "samm_frames", "smic_frames"):
        if len(found[name]) > 1:
            raise UserError(f"--root {root} holds several folders for {_PARTS[name][1]}: "
                            f"{', '.join(map(str, found[name]))}; keep one or point --root lower")
    return {name: sorted(paths, key=lambda p: p.name)[-1] for name, paths in found.items()}


def collect(root: Path, annotations: Path | None, classes: int) -> tuple[list[Sample], list[Reject]]:
    check_class_set("megc2019", classes)
    if annotations is not None:
        raise UserError("--dataset megc2019 takes no --annotations: the sheets are found under --root; drop the flag")
    parts = locate(root)
    for name in sorted(parts):
        print(f"megc2019: {name.replace('_', ' ')}: {parts[name]}")
    samples, rejects = [], []
    for part_samples, part_rejects in (casme2.collect(parts["casme2_frames"], parts["casme2_sheet"], classes),
                                       samm.collect(parts["samm_frames"], parts["samm_sheet"], classes),
                                       smic.collect(parts["smic_frames"], None, classes)):
        samples += part_samples
        rejects += part_rejects
    rejects += [s.reject("left out of the MEGC2019 composite") for s in samples if s.sample_id in EXCLUDED]
    return [s for s in samples if s.sample_id not in EXCLUDED], rejects
