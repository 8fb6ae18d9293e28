"""What an adapter finds (a Sample or a Reject) and the checks every sample passes before it
becomes a manifest row."""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath

from components.data.classes import LabelMap
from components.data.manifest import frame_number, list_frames
from mol_model.clips import CLIP_LENGTH

MIN_FRAMES = CLIP_LENGTH  # one clip is the least the model can use


@dataclass
class Reject:
    sample_id: str
    dataset: str
    subject: str
    video_id: str
    frames_dir: Path | None
    emotion: str
    reason: str


@dataclass
class Sample:
    dataset: str
    subject: str  # prefixed by data set: `casme2/01`
    video_id: str
    sample_id: str
    frames_dir: Path
    emotion: str
    label_map: LabelMap
    onset: int | None = None
    apex: int | None = None
    offset: int | None = None
    onset_offset_from_frames: bool = False  # no sheet (SMIC, folder): first and last frame numbers

    def reject(self, reason: str) -> Reject:
        return Reject(self.sample_id, self.dataset, self.subject, self.video_id, self.frames_dir,
                      self.emotion, reason)


@dataclass
class Checked:
    row: dict  # manifest columns except frames_dir (the caller stores it relative to the manifest)
    frames_dir: Path
    warnings: list[str]


def check_sample(sample: Sample, min_frames: int = MIN_FRAMES) -> Checked | Reject:
    """A manifest row for a usable sample, else the Reject saying why not."""
    try:
        label, label_name = sample.label_map.lookup(sample.emotion)
    except ValueError as e:
        return sample.reject(str(e))
    if not sample.frames_dir.is_dir():
        return sample.reject("no clip folder for this sheet row")
    frames = list_frames(sample.frames_dir)
    if not frames:
        return sample.reject("no image frames in the clip folder")
    if len(frames) < min_frames:
        return sample.reject(f"too few frames ({len(frames)}, need at least {min_frames})")
    onset, apex, offset = sample.onset, sample.apex, sample.offset
    if sample.onset_offset_from_frames:
        onset, offset = frame_number(frames[0]), frame_number(frames[-1])
    row = dict(sample_id=sample.sample_id, dataset=sample.dataset, subject=sample.subject,
               video_id=sample.video_id, n_frames=len(frames), onset=onset, apex=apex, offset=offset,
               emotion=sample.emotion, label=label, label_name=label_name)
    return Checked(row, sample.frames_dir, _timing_warnings(sample.sample_id, onset, apex, offset))


def _timing_warnings(sample_id: str, onset: int | None, apex: int | None, offset: int | None) -> list[str]:
    """Odd annotations that do not make a sample unusable (SAMM has apexes outside onset-offset)."""
    if onset is None or offset is None:
        return []
    if onset > offset:
        return [f"{sample_id}: onset {onset} is after offset {offset}"]
    if apex is not None and not onset <= apex <= offset:
        return [f"{sample_id}: apex {apex} lies outside onset-offset {onset}-{offset}"]
    return []


def subfolders(path: Path) -> list[Path]:
    """The visible sub-folders of a folder, sorted by name."""
    return sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))


def cell_text(value) -> str:
    """A spreadsheet cell as text: 1 and 1.0 -> '1', None/NaN -> '', text trimmed."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def cell_frame(value) -> int | None:
    """A frame-number cell: an integer, or None for blanks and placeholders such as '/'."""
    text = cell_text(value)
    try:
        number = float(text)
    except ValueError:
        return None
    return int(number) if number.is_integer() else None


def canonical_subject(text: str, width: int) -> str:
    """Numeric subject ids zero-padded to the data set's width (`6` -> `006`); others unchanged."""
    return text.zfill(width) if text.isdigit() else text


def unsafe_name(text: str) -> bool:
    """True for a sheet value that is not a plain folder name (`../x`, `/abs`, `C:\\x`, `a/b`)."""
    return (text in {".", ".."} or "/" in text or "\\" in text
            or PurePosixPath(text).is_absolute() or PureWindowsPath(text).is_absolute()
            or bool(PureWindowsPath(text).drive))
