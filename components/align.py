"""`mol align`: find the face in every frame, put 68 landmarks on it, and align it to 144x144.

One similarity transform per video (from the median landmarks of its first frames) is applied to
every frame, so the face's real motion between frames survives alignment and the detector's
frame-to-frame jitter is not turned into fake motion. `--per-frame` is the official recipe instead
(a transform from each frame's own landmarks). Landmarks come from `FaceTracker`: one full-frame
detection, then prediction in a box carried along by the previous frame's landmarks.

Output per sample: `OUT/<sample_id with / as __>.npz` holding `frames` uint8 [N, 144, 144],
`landmarks` float32 [N, 68, 2] (aligned pixels, x then y), `frame_numbers` int64 [N], and two
extras: `transforms` float64 [N, 2, 3] (source pixels -> aligned pixels, per frame; all equal unless
`--per-frame`) and `alignment` ("video" or "frame"). Plus `OUT/rejects.csv` and `OUT/summary.json`.
"""
from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from components.datasets import frame_number, list_frames, read_manifest, resolve_frames_dir
from components.face import FaceTracker, alignment_matrix, transform_points, warp_face
from components.errors import UserError
from components.fileio import sample_file_stem, write_npz
from components.parallel import finished_with, map_videos, run_report, write_report

REFERENCE_FRAMES = 5  # the per-video transform uses the median landmarks of this many first frames


class RejectedVideo(Exception):
    """A video that cannot be aligned; the message is the reason written to rejects.csv."""


@dataclass(frozen=True)
class AlignJob:
    sample_id: str
    frames_dir: Path
    onset: int | None
    offset: int | None
    out_path: Path
    per_frame: bool
    reference_frames: int


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--manifest", required=True, help="manifest CSV written by `mol ingest`")
    parser.add_argument("--out", required=True, help="folder for the aligned .npz files, rejects.csv and summary.json")
    parser.add_argument("--per-frame", action="store_true",
                        help="official recipe: align every frame with its own landmarks (removes head motion "
                             "but turns landmark jitter into image motion); default: one transform per video")
    parser.add_argument("--reference-frames", type=int, default=REFERENCE_FRAMES,
                        help=f"first frames whose median landmarks define the per-video transform "
                             f"(default {REFERENCE_FRAMES})")
    parser.add_argument("--workers", type=int, default=None, help="worker processes (default: all cores)")
    parser.add_argument("--force", action="store_true", help="redo videos whose output already exists")


def run(args: argparse.Namespace) -> int:
    summary = align(args.manifest, args.out, per_frame=args.per_frame, workers=args.workers,
                    force=args.force, reference_frames=args.reference_frames)
    print(f"aligned {summary['aligned']}, kept {summary['skipped_existing']} existing, "
          f"rejected {summary['rejected']} (see {Path(args.out) / 'rejects.csv'}); "
          f"{summary['frames_per_s']:.1f} frames/s")
    return 0


def align(manifest: str | Path, out: str | Path, per_frame: bool = False, workers: int | None = None,
          force: bool = False, reference_frames: int = REFERENCE_FRAMES) -> dict:
    """Align every video of the manifest into `out`; returns (and writes) the summary."""
    if reference_frames < 1:
        raise UserError(f"--reference-frames must be at least 1 (got {reference_frames})")
    out = Path(out)
    table = read_manifest(manifest)
    jobs = [AlignJob(sample_id=row.sample_id,
                     frames_dir=resolve_frames_dir(manifest, row.frames_dir),
                     onset=None if pd.isna(row.onset) else int(row.onset),
                     offset=None if pd.isna(row.offset) else int(row.offset),
                     out_path=out / f"{sample_file_stem(row.sample_id)}.npz",
                     per_frame=per_frame, reference_frames=reference_frames)
            for row in table.itertuples()]
    todo = [job for job in jobs if force or not finished_with(job.out_path, {"alignment": _mode(job.per_frame)})]
    start = time.perf_counter()
    results = list(map_videos(align_video, todo, workers, desc="align"))
    seconds = time.perf_counter() - start

    report = run_report(results, seconds)
    done = [r for r in results if not r["reason"]]
    summary = {
        "stage": "align",
        "alignment": _mode(per_frame),
        "videos": len(jobs),
        "aligned": report.pop("done"),
        "skipped_existing": len(jobs) - len(todo),
        "interpolated_frames": sum(r["interpolated"] for r in done),
        "full_detections": sum(r["detections"] for r in done),
        **report,
        "notes": {r["sample_id"]: r["note"] for r in done if r["note"]},
    }
    write_report(out, summary)
    return summary


def _mode(per_frame: bool) -> str:
    return "frame" if per_frame else "video"


@dataclass
class AlignedVideo:
    frames: np.ndarray      # uint8 [N, 144, 144]
    landmarks: np.ndarray   # float32 [N, 68, 2], aligned pixels
    transforms: np.ndarray  # float64 [N, 2, 3], source pixels -> aligned pixels
    interpolated: int       # frames without a face (landmarks interpolated)
    detections: int         # full-frame detector runs


def align_frames(frames: list[np.ndarray], per_frame: bool = False,
                 reference_frames: int = REFERENCE_FRAMES) -> AlignedVideo:
    """Track landmarks through grayscale frames and align them (one transform per video unless
    `per_frame`); RejectedVideo when no frame shows a face."""
    tracker = FaceTracker()
    landmarks, n_missing = fill_missing([tracker(gray) for gray in frames])  # [N, 68, 2], source pixels
    if per_frame:
        matrices = np.stack([alignment_matrix(points) for points in landmarks])
    else:
        reference = np.median(landmarks[:reference_frames], axis=0)  # robust to one bad frame
        matrices = np.repeat(alignment_matrix(reference)[None], len(frames), axis=0)
    return AlignedVideo(frames=np.stack([warp_face(gray, m) for gray, m in zip(frames, matrices)]),
                        landmarks=np.stack([transform_points(p, m) for p, m in zip(landmarks, matrices)]
                                           ).astype(np.float32),
                        transforms=matrices, interpolated=n_missing, detections=tracker.detections)


def align_video(job: AlignJob) -> dict:
    """Align one video and write its .npz; never raises for bad data (returns the reject reason)."""
    result = {"sample_id": job.sample_id, "reason": "", "note": "", "frames": 0, "interpolated": 0, "detections": 0}
    try:
        paths, note = clip_frame_paths(job.frames_dir, job.onset, job.offset)
        video = align_frames([read_gray(path) for path in paths], job.per_frame, job.reference_frames)
    except RejectedVideo as e:
        result["reason"] = str(e)
        return result
    write_npz(job.out_path, frames=video.frames, landmarks=video.landmarks,
              frame_numbers=np.array([frame_number(p) for p in paths], dtype=np.int64),
              transforms=video.transforms, alignment=np.array(_mode(job.per_frame)))
    if video.interpolated:
        note += f"{'; ' if note else ''}no face in {video.interpolated} frame(s): landmarks interpolated"
    result.update(note=note, frames=len(paths), interpolated=video.interpolated, detections=video.detections)
    return result


def clip_frame_paths(frames_dir: Path, onset: int | None, offset: int | None) -> tuple[list[Path], str]:
    """The frames from onset to offset (either may be None: open end), in frame order, and a note
    naming frame numbers missing in between (those are skipped, not fatal)."""
    if not frames_dir.is_dir():
        raise RejectedVideo(f"frames folder {frames_dir} does not exist")
    paths = [p for p in list_frames(frames_dir)
             if (onset is None or frame_number(p) >= onset) and (offset is None or frame_number(p) <= offset)]
    if not paths:
        raise RejectedVideo(f"no frames between onset {onset} and offset {offset} in {frames_dir}")
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


def read_gray(path: Path) -> np.ndarray:
    """A frame as uint8 grayscale; RejectedVideo for a zero-byte or undecodable file."""
    if path.stat().st_size == 0:
        raise RejectedVideo(f"zero-byte frame {path.name}")
    gray = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if gray is None:
        raise RejectedVideo(f"unreadable frame {path.name}")
    return gray


def fill_missing(landmarks: list[np.ndarray | None]) -> tuple[np.ndarray, int]:
    """Frames without a face take landmarks linearly interpolated from their nearest neighbours with
    one (the nearest one's at the ends). Returns ([N, 68, 2] float32, how many were filled)."""
    found = np.array([points is not None for points in landmarks])
    if not found.any():
        raise RejectedVideo(f"no face found in any of its {len(landmarks)} frames")
    index = np.arange(len(landmarks))
    known = np.stack([points for points in landmarks if points is not None]).reshape(int(found.sum()), -1)
    filled = np.stack([np.interp(index, index[found], column) for column in known.T], axis=1)
    return filled.reshape(len(landmarks), 68, 2).astype(np.float32), int((~found).sum())

