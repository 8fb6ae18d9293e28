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

import numpy as np

from components.config import AlignSettings, ExecutionSettings, add_params_argument, params_from_args
from components.data import frame_number, read_manifest, resolve_frames_dir, sample_range
from components.io import (check_output, digest, finished_with, made_from, map_videos, output_lock, run_report,
                           sample_file_stem, write_npz, write_report)
from components.vision.face import align_frames
from components.vision.frames import RejectedVideo, clip_frame_paths, frames_identity, read_clip


@dataclass(frozen=True)
class AlignJob:
    sample_id: str
    frames_dir: Path
    frame_range: tuple[int | None, int | None]  # the sample's first and last frame numbers (`sample_range`)
    out_path: Path
    per_frame: bool
    reference_frames: int
    made_from: str  # the inputs' identity, stored in the output: a rerun redoes the sample when it changes


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--manifest", required=True, help="manifest CSV written by `mol ingest`")
    parser.add_argument("--out", required=True, help="folder for the aligned .npz files, rejects.csv and summary.json")
    parser.add_argument("--force", action="store_true", help="redo videos whose output already exists")
    add_params_argument(parser)
    AlignSettings.add_arguments(parser)
    ExecutionSettings.add_arguments(parser, only=("workers",))


def run(args: argparse.Namespace) -> int:
    params = params_from_args(args)
    summary = align(args.manifest, args.out, AlignSettings.from_args(args, params),
                    workers=ExecutionSettings.from_args(args, params).workers, force=args.force)
    print(f"aligned {summary['aligned']}, kept {summary['skipped_existing']} existing, "
          f"rejected {summary['rejected']} (see {Path(args.out) / 'rejects.csv'}); "
          f"{summary['frames_per_s']:.1f} frames/s")
    return 0


def align(manifest: str | Path, out: str | Path, settings: AlignSettings = AlignSettings(),
          workers: int | None = None, force: bool = False) -> dict:
    """Align every video of the manifest into `out`; returns (and writes) the summary."""
    per_frame = settings.per_frame
    out = check_output(out)
    table = read_manifest(manifest)
    jobs = [_job(row, manifest, out, settings) for row in table.itertuples()]
    with output_lock(out, "align"):
        todo = [job for job in jobs if force or not finished_with(job.out_path, job.made_from)]
        start = time.perf_counter()
        results = list(map_videos(align_video, todo, workers, desc="align"))
        seconds = time.perf_counter() - start
        summary = _summary(jobs, todo, results, seconds, per_frame)
        write_report(out, summary)
    return summary


def _job(row, manifest: str | Path, out: Path, settings: AlignSettings) -> AlignJob:
    frames_dir, frame_range = resolve_frames_dir(manifest, row.frames_dir), sample_range(row)
    identity = made_from(alignment=_mode(settings.per_frame), reference_frames=settings.reference_frames,
                         frame_range=frame_range, frames=digest(frames_identity(frames_dir, *frame_range)))
    return AlignJob(sample_id=row.sample_id, frames_dir=frames_dir, frame_range=frame_range,
                    out_path=out / f"{sample_file_stem(row.sample_id)}.npz", per_frame=settings.per_frame,
                    reference_frames=settings.reference_frames, made_from=identity)


def _summary(jobs: list[AlignJob], todo: list[AlignJob], results: list[dict], seconds: float,
             per_frame: bool) -> dict:
    report = run_report(results, seconds)
    done = [r for r in results if not r["reason"]]
    return {
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


def _mode(per_frame: bool) -> str:
    return "frame" if per_frame else "video"


def align_video(job: AlignJob) -> dict:
    """Align one video and write its .npz; never raises for bad data (returns the reject reason)."""
    result = {"sample_id": job.sample_id, "reason": "", "note": "", "frames": 0, "interpolated": 0, "detections": 0}
    try:
        paths, note = clip_frame_paths(job.frames_dir, *job.frame_range)
        video = align_frames(read_clip(paths), job.per_frame, job.reference_frames)
    except RejectedVideo as e:
        result["reason"] = str(e)
        job.out_path.unlink(missing_ok=True)  # an older output of this sample is stale now
        return result
    write_npz(job.out_path, frames=video.frames, landmarks=video.landmarks,
              frame_numbers=np.array([frame_number(p) for p in paths], dtype=np.int64),
              transforms=video.transforms, alignment=np.array(_mode(job.per_frame)),
              made_from=np.array(job.made_from))
    if video.interpolated:
        note += f"{'; ' if note else ''}no face in {video.interpolated} frame(s): landmarks interpolated"
    result.update(note=note, frames=len(paths), interpolated=video.interpolated, detections=video.detections)
    return result

