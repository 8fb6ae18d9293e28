"""What an adapter finds (a Sample or a Reject) and the checks every sample passes before it
becomes a manifest row."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
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
    first_frame: int | None = None  # the sample's frames inside frames_dir (None: from the start / to the end)
    last_frame: int | None = None
    warnings: list[str] = field(default_factory=list)  # e.g. a documented correction applied to its sheet row

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
    ranged = sample.first_frame is not None or sample.last_frame is not None
    frames = list_frames(sample.frames_dir, sample.first_frame, sample.last_frame)
    if not frames:
        if ranged and list_frames(sample.frames_dir):
            return sample.reject(f"no image frames numbered {_range_text(sample)} in the video folder")
        return sample.reject("no image frames in the clip folder")
    if len(frames) < min_frames:
        return sample.reject(f"too few frames ({len(frames)}, need at least {min_frames})")
    onset, apex, offset = sample.onset, sample.apex, sample.offset
    if sample.onset_offset_from_frames:
        onset, offset = frame_number(frames[0]), frame_number(frames[-1])
    numbers = [frame_number(p) for p in frames]  # without a range the later stages cut onset..offset
    in_range = [n for n in numbers if (onset is None or n >= onset) and (offset is None or n <= offset)]
    if not ranged and len(in_range) < min_frames:
        return sample.reject(f"only {len(in_range)} frames between onset {onset} and offset {offset} (the folder "
                             f"has frames {numbers[0]}..{numbers[-1]}; need at least {min_frames}); check the sheet")
    row = dict(sample_id=sample.sample_id, dataset=sample.dataset, subject=sample.subject,
               video_id=sample.video_id, first_frame=sample.first_frame, last_frame=sample.last_frame,
               n_frames=len(frames), onset=onset, apex=apex, offset=offset,
               emotion=sample.emotion, label=label, label_name=label_name)
    warnings = sample.warnings + _timing_warnings(sample.sample_id, onset, apex, offset)
    if ranged:
        warnings += _gap_warnings(sample, [frame_number(p) for p in frames])
    return Checked(row, sample.frames_dir, warnings)


def _range_text(sample: Sample) -> str:
    return f"{'' if sample.first_frame is None else sample.first_frame}..{'' if sample.last_frame is None else sample.last_frame}"


def _gap_warnings(sample: Sample, numbers: list[int]) -> list[str]:
    """Frames absent inside a sample's range (align skips them; a long gap is worth a look)."""
    first = numbers[0] if sample.first_frame is None else sample.first_frame
    last = numbers[-1] if sample.last_frame is None else sample.last_frame
    missing = last - first + 1 - len(set(numbers))
    return [f"{sample.sample_id}: {missing} frame(s) missing inside {first}..{last}"] if missing > 0 else []


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


UNKNOWN_FRAME = {"", "/"}  # a blank cell, or the sheets' own placeholder (CASME II's apex '/')
MAX_FRAME = 10_000_000  # far beyond any recording; a larger value is a typo or a misread cell


def cell_frame(value) -> int | None:
    """A frame-number cell: a whole number, or None for a blank or '/' (unknown). Anything else (text,
    a fraction, a negative or absurd number) is a ValueError naming the value: guessing would silently
    use the wrong frames."""
    text = cell_text(value)
    if text in UNKNOWN_FRAME:
        return None
    try:
        number = float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a frame number") from None
    if not number.is_integer():
        raise ValueError(f"{text!r} is not a whole frame number")
    if not 0 <= number <= MAX_FRAME:
        raise ValueError(f"{text!r} is outside 0..{MAX_FRAME}")
    return int(number)


def frame_cells(cells: dict, columns: tuple[str, ...], row_number: int) -> tuple:
    """A sheet row's frame-number cells (onset, apex, offset, ...) read with `cell_frame`, followed by ''
    or, when a cell is no frame number, by the reject reason naming it (the values are then all None)."""
    values = []
    for column in columns:
        try:
            values.append(cell_frame(cells[column]))
        except ValueError as e:
            return (*(None for _ in columns), f"sheet row {row_number}: {column} {e}; correct the cell "
                                              "(blank or / if unknown)")
    return (*values, "")


def canonical_subject(text: str, width: int) -> str:
    """Numeric subject ids zero-padded to the data set's width (`6` -> `006`); others unchanged."""
    return text.zfill(width) if text.isdigit() else text


def duplicate_row(row_number: int, first_row: int) -> str:
    """The reject reason of a sheet row that names a sample an earlier row already named."""
    return f"duplicate sheet row {row_number} (first on row {first_row})"


def row_rejection(row_number: int, bad_cell: str, names: dict[str, str], sample_id: str, seen: dict) -> str:
    """Why a sheet row cannot become a sample ('' when it can): a bad frame cell, a name column (header ->
    value) that is empty or not a plain folder name, or a sample an earlier row named (`seen`: id -> row)."""
    if bad_cell:
        return bad_cell
    if not all(names.values()) or any(unsafe_name(v) for v in names.values()):
        return (f"sheet row {row_number} names no plain {' and '.join(names)} "
                f"({', '.join(repr(v) for v in names.values())})")
    return duplicate_row(row_number, seen[sample_id]) if sample_id in seen else ""


def unsafe_name(text: str) -> bool:
    """True for a sheet value that is not a plain folder name (`../x`, `/abs`, `C:\\x`, `a/b`)."""
    return (text in {".", ".."} or "/" in text or "\\" in text
            or PurePosixPath(text).is_absolute() or PureWindowsPath(text).is_absolute()
            or bool(PureWindowsPath(text).drive))


def walk(root: Path, depth: int, descend=lambda path: True):
    """Every visible file and folder up to `depth` levels below root (its entries are level 1), level by
    level in name order; a folder `descend` refuses (e.g. one that holds frames) is yielded, not entered."""
    frontier = [root]
    for _ in range(depth):
        deeper = []
        for folder in frontier:
            for path in sorted(folder.iterdir()):
                if path.name.startswith("."):
                    continue
                yield path
                if path.is_dir() and descend(path):
                    deeper.append(path)
        frontier = deeper


def cut_clip_range(frames_dir: Path, onset: int | None, offset: int | None) -> tuple[int | None, int | None, str]:
    """The frame range of a folder cut around one micro-expression, whose numbering is not documented:
    the sheet's onset..offset where the folder's numbers hold them, else the whole folder (its own first
    and last numbers, so later stages do not cut it at the sheet's) with a note saying so."""
    numbers = [frame_number(p) for p in list_frames(frames_dir)]
    if not numbers or onset is None or offset is None or (numbers[0] <= onset and offset <= numbers[-1]):
        return onset, offset, ""
    return numbers[0], numbers[-1], (f"clip frames are numbered {numbers[0]}..{numbers[-1]}, not the sheet's "
                                     f"{onset}..{offset}: the whole clip is used")
