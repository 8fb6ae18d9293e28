"""SMIC as distributed: the label is the folder. `--root` is the HS (or VIS, NIR) folder:
`<root>/s1/micro/negative/s1_ne_01/image069993.bmp`; `non_micro/` is not micro-expression data and is
ignored. There is no apex; onset and offset are the first and last frame numbers. 3 classes only."""
from __future__ import annotations

import re
from pathlib import Path

from components.data.classes import dataset_label_map
from components.data.samples import Reject, Sample, subfolders
from components.errors import UserError

_SUBJECT = re.compile(r"s\d+", re.IGNORECASE)


def collect(root: Path, annotations: Path | None, classes: int) -> tuple[list[Sample], list[Reject]]:
    label_map = dataset_label_map("smic", classes)  # 3 classes only: an error naming them otherwise
    if annotations is not None:
        raise UserError("--dataset smic takes no --annotations: its labels are its folder names; drop the flag")
    subjects = [p for p in subfolders(root) if _SUBJECT.fullmatch(p.name)]
    if not subjects:
        inside = [p.name for p in subfolders(root) if p.name.upper() in {"HS", "VIS", "NIR"}]
        hint = f"; pass {root / inside[0]} instead" if inside else ""
        raise UserError(f"{root} holds no SMIC subject folders (s1, s2, ...); --root must be the HS, VIS or "
                        f"NIR folder{hint}")
    samples = []
    for subject_dir in subjects:
        micro = subject_dir / "micro"
        for emotion_dir in subfolders(micro) if micro.is_dir() else []:
            for clip_dir in subfolders(emotion_dir):
                samples.append(Sample("smic", f"smic/{subject_dir.name}", clip_dir.name,
                                      f"smic/{subject_dir.name}/{clip_dir.name}", clip_dir, emotion_dir.name,
                                      label_map, onset_offset_from_frames=True))
    return samples, []
