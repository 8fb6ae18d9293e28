"""The synthetic set at a glance: OUT_DIR/subjects.png (docs/images/synthetic_subjects.png is the default
set's). One tile per subject, read back from the written frames: its first video's onset frame (the neutral
face) and what moves up to the apex (|apex - onset|, magnified), captioned with the real faces the subject
derives from and the video's emotion."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from components.reports.drawing import caption, save_png, tile
from components.synthetic.identities import subject_source
from components.synthetic.render import FRAMES_FOLDER, ClipPlan

GALLERY_FILE = "subjects.png"
SIDE = 160             # pixels per picture
DIFFERENCE_GAIN = 8.0  # |apex - onset| is a few grey levels: magnified to be seen
COLUMNS = 2            # subjects per row


def write_gallery(out_dir: Path, plans: list[ClipPlan]) -> Path:
    """Write OUT_DIR/subjects.png for the set's clips `plans` (their frames must be written); return its path."""
    first: dict[int, ClipPlan] = {}
    for plan in plans:
        first.setdefault(plan.subject, plan)
    tiles = []
    for subject, plan in sorted(first.items()):
        folder = out_dir / FRAMES_FOLDER / plan.subject_folder / plan.video_id
        onset, apex = (cv2.imread(str(folder / f"img{n}.jpg"), cv2.IMREAD_GRAYSCALE).astype(np.float32)
                       for n in (plan.onset, plan.apex))
        # a light blur first, so the sensor noise does not hide the motion
        moved = DIFFERENCE_GAIN * np.abs(cv2.GaussianBlur(apex, (0, 0), 1.0) - cv2.GaussianBlur(onset, (0, 0), 1.0))
        pair = np.hstack([cv2.resize(np.clip(image, 0, 255).astype(np.uint8), (SIDE, SIDE),
                                     interpolation=cv2.INTER_AREA) for image in (onset, moved)])
        text = f"left onset, right |apex - onset| x{DIFFERENCE_GAIN:g}: {plan.emotion}"
        tiles.append(caption(caption(pair, text), f"{plan.subject_folder}: {subject_source(subject).label}"))
    path = out_dir / GALLERY_FILE
    save_png(cv2.cvtColor(tile(tiles, columns=min(COLUMNS, len(tiles)), gap=4), cv2.COLOR_RGB2GRAY), path)
    return path
