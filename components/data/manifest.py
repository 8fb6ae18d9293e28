"""The manifest: one CSV row per video sample, and the helpers every later stage reads it with.

`frames_dir` is stored relative to the manifest's own folder (POSIX separators), so a project tree
that holds both the data and the manifest can be moved or cloned (DVC) without rewriting paths.
Absolute paths are also accepted on reading (and written where no relative path exists, e.g. another
drive on Windows). Always go through `resolve_frames_dir` to turn the stored value into a real path.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import pandas as pd

from components.errors import UserError

# The fixed contract: column names, in this order.
MANIFEST_COLUMNS = ["sample_id", "dataset", "subject", "video_id", "frames_dir", "n_frames",
                    "onset", "apex", "offset", "emotion", "label", "label_name"]
REJECT_COLUMNS = ["sample_id", "dataset", "subject", "video_id", "frames_dir", "emotion", "reason"]

_STRING_COLUMNS = ["sample_id", "dataset", "subject", "video_id", "frames_dir", "emotion", "label_name"]
_FRAME_COLUMNS = ["onset", "apex", "offset"]  # nullable: empty where the data set has no value
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff"}
_NUMBER = re.compile(r"\d+")


def stored_frames_dir(manifest_path: str | os.PathLike, frames_dir: str | os.PathLike) -> str:
    """The value written to the manifest: `frames_dir` relative to the manifest's folder."""
    base = Path(manifest_path).absolute().parent
    target = Path(frames_dir).absolute()
    try:
        return Path(os.path.relpath(target, base)).as_posix()
    except ValueError:  # no relative path between them (different Windows drives)
        return target.as_posix()


def resolve_frames_dir(manifest_path: str | os.PathLike, frames_dir: str | os.PathLike) -> Path:
    """The real folder of a manifest row: relative values are taken from the manifest's folder."""
    path = Path(frames_dir)
    return path if path.is_absolute() else Path(manifest_path).parent / path


def frame_number(path: str | os.PathLike) -> int | None:
    """The last number in a file's stem (`006_05562.jpg` -> 5562, `reg_img46.jpg` -> 46), or None."""
    numbers = _NUMBER.findall(Path(path).stem)
    return int(numbers[-1]) if numbers else None


def list_frames(frames_dir: str | os.PathLike) -> list[Path]:
    """The image files of a clip folder, in frame order (by the last number in the name, never as text).

    Non-images, hidden files (e.g. macOS `._img46.jpg`) and images whose name holds no number are
    not frames and are left out. A missing folder gives an empty list.
    """
    folder = Path(frames_dir)
    if not folder.is_dir():
        return []
    frames = [p for p in folder.iterdir()
              if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".") and p.is_file()
              and frame_number(p) is not None]
    return sorted(frames, key=lambda p: (frame_number(p), p.name))


def read_manifest(path: str | os.PathLike) -> pd.DataFrame:
    """Read a manifest with fixed types: text columns as str (`subject` '01' stays '01'),
    `n_frames`/`label` int64, `onset/apex/offset` nullable Int64 (<NA> where empty)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"manifest {path} does not exist; create it with `mol ingest ... --out {path}`")
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise UserError(f"manifest {path} is not a readable CSV ({e}); recreate it with `mol ingest`") from None
    missing = [c for c in MANIFEST_COLUMNS if c not in table.columns]
    if missing:
        raise UserError(f"manifest {path} lacks the columns {missing}; recreate it with `mol ingest`")
    table = table[MANIFEST_COLUMNS].copy()
    try:
        for column in ["n_frames", "label"]:
            table[column] = table[column].astype("int64")
        for column in _FRAME_COLUMNS:
            table[column] = pd.array([int(v) if v.strip() else pd.NA for v in table[column]], dtype="Int64")
    except ValueError as e:
        raise UserError(f"manifest {path} holds a non-integer frame number or label ({e}); "
                        "recreate it with `mol ingest`") from None
    return table
