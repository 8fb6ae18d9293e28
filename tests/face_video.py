"""A real face moving by a known sub-pixel shift per frame, written as a frame folder + manifest.

The face is the astronaut photograph shipped with scikit-image (dlib finds it; about 43 px between
the eye centres). Frames are PNG (lossless) so the sub-pixel motion survives on disk.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from skimage import data

MANIFEST_COLUMNS = ["sample_id", "dataset", "subject", "video_id", "frames_dir", "n_frames",
                    "onset", "apex", "offset", "emotion", "label", "label_name"]
SHIFT = (0.7, 0.3)  # pixels per frame (x, y)


def astronaut_face() -> np.ndarray:
    """uint8 [320, 320] grayscale, the face roughly in the middle."""
    gray = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2GRAY)
    return np.ascontiguousarray(gray[0:320, 60:380])


def shifted(image: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """`image` moved by (dx, dy) pixels (content moves right/down for positive values)."""
    matrix = np.float32([[1, 0, dx], [0, 1, dy]])
    return cv2.warpAffine(image, matrix, image.shape[::-1], flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def write_video(folder: Path, n_frames: int, shift: tuple[float, float] = SHIFT, first: int = 10,
                blank: tuple[int, ...] = ()) -> Path:
    """Frames img<first>.png ... moved by k * shift at frame k; indices in `blank` are flat grey."""
    folder.mkdir(parents=True, exist_ok=True)
    face = astronaut_face()
    for k in range(n_frames):
        image = np.full_like(face, 120) if k in blank else shifted(face, k * shift[0], k * shift[1])
        assert cv2.imwrite(str(folder / f"img{first + k}.png"), image)
    return folder


def manifest_row(sample_id: str, frames_dir: str, n_frames: int, first: int = 10, label: int = 1,
                 subject: str = "s1") -> dict:
    return dict(sample_id=sample_id, dataset="test", subject=subject, video_id=sample_id.rsplit("/", 1)[-1],
                frames_dir=frames_dir, n_frames=n_frames, onset=first, apex=first + 1,
                offset=first + n_frames - 1, emotion="happiness", label=label, label_name="happiness")


def write_manifest(path: Path, rows: list[dict]) -> Path:
    pd.DataFrame(rows, columns=MANIFEST_COLUMNS).to_csv(path, index=False)
    return path
