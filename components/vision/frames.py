"""Reading frames: a clip folder's image files in frame order, or a video file, as grayscale uint8.

A frame that cannot be read is a `RejectedVideo` with the reason: the stages reject that sample and go
on (align), or turn it into one clear error (predict). "Read" means whole: a JPEG cut short (a copy
interrupted) decodes to a partly grey picture without any error from OpenCV, so its end marker is
checked first; and the frames of one clip must share one size (the alignment and the flow labels
assume one camera).
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from components.data import frame_number, list_frames
from components.data.manifest import IMAGE_SUFFIXES
from components.errors import UserError


class RejectedVideo(Exception):
    """A video that cannot be used; the message is the reason written to rejects.csv."""


JPEG_START, JPEG_SCAN, JPEG_END = b"\xff\xd8", b"\xff\xda", b"\xff\xd9"


def read_gray(path: Path) -> np.ndarray:
    """A frame as uint8 grayscale; RejectedVideo for a zero-byte, truncated or undecodable file."""
    data = np.fromfile(path, dtype=np.uint8)
    if data.size == 0:
        raise RejectedVideo(f"zero-byte frame {path.name}")
    raw = data.tobytes()
    # a complete JPEG ends its (last) scan with the end-of-image marker; entropy-coded data never holds it
    if raw.startswith(JPEG_START) and raw.rfind(JPEG_END) < raw.rfind(JPEG_SCAN):
        raise RejectedVideo(f"truncated frame {path.name} (the JPEG ends before its end marker)")
    gray = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE)
    if gray is None:
        raise RejectedVideo(f"unreadable frame {path.name}")
    return gray


def read_clip(paths: list[Path]) -> list[np.ndarray]:
    """The frames of one clip, each read whole, all of one size (RejectedVideo naming the odd one)."""
    frames = [read_gray(path) for path in paths]
    for path, frame in zip(paths, frames):
        if frame.shape != frames[0].shape:
            raise RejectedVideo(f"frame {path.name} is {frame.shape[1]}x{frame.shape[0]} but {paths[0].name} is "
                                f"{frames[0].shape[1]}x{frames[0].shape[0]}; the frames of a clip must share one size")
    return frames


def frames_identity(frames_dir: Path, first: int | None, last: int | None) -> list:
    """What an aligned clip is made from, cheaply: its frame files' names and sizes (no decoding)."""
    try:
        paths, _ = clip_frame_paths(frames_dir, first, last)
    except RejectedVideo as e:
        return [str(e)]
    return [(p.name, p.stat().st_size) for p in paths]


def clip_frame_paths(frames_dir: Path, first: int | None, last: int | None) -> tuple[list[Path], str]:
    """The frames numbered first..last (either may be None: open end; see `sample_range`), in frame
    order, and a note naming frame numbers missing in between (those are skipped, not fatal)."""
    if not frames_dir.is_dir():
        raise RejectedVideo(f"frames folder {frames_dir} does not exist")
    paths = list_frames(frames_dir, first, last)
    if not paths:
        raise RejectedVideo(f"no frames between {first} and {last} in {frames_dir}")
    numbers = [frame_number(p) for p in paths]
    if len(set(numbers)) != len(numbers):
        raise RejectedVideo(f"two files carry the same frame number in {frames_dir}")
    missing = sorted(set(range(numbers[0], numbers[-1] + 1)) - set(numbers))
    note = f"frames missing and skipped: {_ranges(missing)}" if missing else ""
    return paths, note


def _ranges(numbers: list[int]) -> str:
    """[3, 4, 5, 9] -> '3-5, 9'."""
    runs: list[list[int]] = []
    for n in numbers:
        if runs and n == runs[-1][1] + 1:
            runs[-1][1] = n
        else:
            runs.append([n, n])
    return ", ".join(f"{a}-{b}" if a != b else f"{a}" for a, b in runs)


def read_frames(input: Path, start: int | None, end: int | None) -> tuple[list[np.ndarray], list[int]]:
    """The grayscale frames numbered start..end (inclusive) of a video file or a folder of frames,
    with their frame numbers. Folders: the number in each file name; videos: 0-based position."""
    if start is not None and end is not None and start > end:
        raise UserError(f"--start {start} is after --end {end}; give a first frame not after the last")
    if input.is_dir():
        frames, numbers = _read_folder(input, start, end)
    elif input.is_file():
        if input.suffix.lower() in IMAGE_SUFFIXES:
            raise UserError(f"{input} is a single image; pass a video file or a folder of frames")
        frames, numbers = _read_video(input, start, end)
    else:
        raise UserError(f"{input} does not exist; pass a video file or a folder of frames")
    if not frames:
        raise UserError(f"{input} has no frames between {start if start is not None else 'the first'} and "
                        f"{end if end is not None else 'the last'}; check --start/--end")
    return frames, numbers


def _in_range(number: int, start: int | None, end: int | None) -> bool:
    return (start is None or number >= start) and (end is None or number <= end)


def _read_folder(folder: Path, start: int | None, end: int | None) -> tuple[list[np.ndarray], list[int]]:
    if not list_frames(folder):
        raise UserError(f"{folder} holds no image files with a frame number in their names; pass a folder "
                        "of frames (e.g. img001.jpg, img002.jpg, ...) or a video file")
    paths = list_frames(folder, start, end)
    try:
        return read_clip(paths), [frame_number(p) for p in paths]
    except RejectedVideo as e:
        raise UserError(f"{folder}: {e}; remove or replace that file") from None


def _read_video(path: Path, start: int | None, end: int | None) -> tuple[list[np.ndarray], list[int]]:
    capture = cv2.VideoCapture(str(path))
    frames, numbers = [], []
    try:
        if not capture.isOpened():
            raise UserError(f"{path} is not a video OpenCV can read; pass an mp4/avi file or a folder of frames")
        position = 0
        while end is None or position <= end:
            ok, frame = capture.read()
            if not ok:
                break
            if _in_range(position, start, end):
                frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) if frame.ndim == 3 else frame)
                numbers.append(position)
            position += 1
    finally:
        capture.release()
    if position == 0:
        raise UserError(f"{path} holds no readable video frames; pass an mp4/avi file or a folder of frames")
    return frames, numbers
