"""The manifest: one CSV row per video sample, and the helpers every later stage reads it with.

`frames_dir` is stored relative to the manifest's own folder (POSIX separators), so a project tree
that holds both the data and the manifest can be moved or cloned (DVC) without rewriting paths.
Absolute paths are also accepted on reading (and written where no relative path exists, e.g. another
drive on Windows). Always go through `resolve_frames_dir` to turn the stored value into a real path.

`first_frame`/`last_frame` name the frames of the sample inside `frames_dir` (a micro-expression inside a
long video, as CAS(ME)^3 ships them); empty means the whole folder. `sample_range` is the range a stage
reads and `list_frames(folder, first, last)` the one function that lists it.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import pandas as pd

from components.errors import UserError

# The fixed contract: column names, in this order.
MANIFEST_COLUMNS = ["sample_id", "dataset", "subject", "video_id", "frames_dir", "first_frame", "last_frame",
                    "n_frames", "onset", "apex", "offset", "emotion", "label", "label_name"]
REJECT_COLUMNS = ["sample_id", "dataset", "subject", "video_id", "frames_dir", "emotion", "reason"]

_STRING_COLUMNS = ["sample_id", "dataset", "subject", "video_id", "frames_dir", "emotion", "label_name"]
RANGE_COLUMNS = ["first_frame", "last_frame"]  # absent from manifests written before them: whole folders
_FRAME_COLUMNS = RANGE_COLUMNS + ["onset", "apex", "offset"]  # nullable: empty where there is no value
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


def list_frames(frames_dir: str | os.PathLike, first: int | None = None, last: int | None = None) -> list[Path]:
    """The image files of a clip folder numbered first..last (inclusive; None: open end), in frame order
    (by the last number in the name, never as text).

    Non-images, hidden files (e.g. macOS `._img46.jpg`) and images whose name holds no number are
    not frames and are left out. A missing folder gives an empty list.
    """
    folder = Path(frames_dir)
    if not folder.is_dir():
        return []
    frames = []
    for path in folder.iterdir():
        number = frame_number(path) if path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".") else None
        if number is not None and (first is None or number >= first) and (last is None or number <= last) \
                and path.is_file():
            frames.append((number, path.name, path))
    return [path for _, _, path in sorted(frames)]


def sample_range(row) -> tuple[int | None, int | None]:
    """The frame numbers a manifest row's sample spans: first_frame..last_frame where the row names a
    range, else onset..offset (whole-folder data sets: their folders are cut at the annotation).
    Either end may be None (open)."""
    def value(name: str) -> int | None:
        v = getattr(row, name, None)
        return None if v is None or pd.isna(v) else int(v)
    if value("first_frame") is not None or value("last_frame") is not None:
        return value("first_frame"), value("last_frame")
    return value("onset"), value("offset")


def read_manifest(path: str | os.PathLike) -> pd.DataFrame:
    """Read a manifest with fixed types: text columns as str (`subject` '01' stays '01'),
    `n_frames`/`label` int64, `first_frame/last_frame/onset/apex/offset` nullable Int64 (<NA> where empty).
    A manifest written before the range columns existed reads as whole folders (empty ranges)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"manifest {path} does not exist; create it with `mol ingest ... --out {path}`")
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise UserError(f"manifest {path} is not a readable CSV ({e}); recreate it with `mol ingest`") from None
    for column in RANGE_COLUMNS:
        if column not in table.columns:
            table[column] = ""
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
