"""`mol labels`: cut 8-frame clips from the aligned videos and attach their optical-flow and landmark labels,
stored once at the aligned 144x144 size.

Clips as components/vision/clips.py defines them (stride N // 8 as the official). Flow is computed once per
frame pair on the aligned frames; crops are cut when a clip is used (a fresh random crop per training use,
the fixed centre crop for evaluation), so no crop is stored. The official recipe recomputes TV-L1 on every
128x128 crop, six times per pair, and stores each.

Output per sample, `OUT/<sample_id with / as __>.npz`, C = N // 8 clips:
  frames uint8 [C, 8, 144, 144], flow float16 [C, 7, 2, 144, 144] (each consecutive pair of a clip, pixels,
  channel 0 = x), landmarks float32 [C, 8, 68, 2] (aligned coordinates), label int, subject str,
  sample_id str, flow_method str, stride int, made_from str (what it was made from: a rerun redoes a sample
  whose label, subject, flow method or aligned file changed).
Plus `OUT/rejects.csv` and `OUT/summary.json`.
"""
from __future__ import annotations

import argparse
import hashlib
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from components.config import ExecutionSettings, LabelsSettings, add_params_argument, params_from_args
from components.data import read_manifest
from components.errors import UserError
from components.io import (check_output, digest, finished_with, made_from, map_videos, output_lock, run_report,
                           sample_file_stem, stored_made_from, write_npz, write_report)
from components.vision.clips import CLIP_ARRAYS, clip_indices
from components.vision.flow import compute_flow
from mol_model.clips import CLIP_LENGTH


@dataclass(frozen=True)
class LabelJob:
    sample_id: str
    subject: str
    label: int
    aligned_path: Path
    out_path: Path
    flow_method: str
    compress: bool
    made_from: str  # flow method, label, subject and the aligned file's identity: a change redoes the sample


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--manifest", required=True, help="manifest CSV written by `mol ingest`")
    parser.add_argument("--aligned", required=True, help="folder written by `mol align`")
    parser.add_argument("--out", required=True, help="folder for the clip .npz files, rejects.csv and summary.json")
    parser.add_argument("--compress", action="store_true",
                        help="write compressed .npz: about 13%% smaller, for about 0.3 s more per 20-frame "
                             "sample (default: plain .npz)")
    parser.add_argument("--force", action="store_true", help="redo samples whose output already exists")
    add_params_argument(parser)
    LabelsSettings.add_arguments(parser)
    ExecutionSettings.add_arguments(parser, only=("workers",))


def run(args: argparse.Namespace) -> int:
    params = params_from_args(args)
    settings = LabelsSettings.from_args(args, params)
    summary = labels(args.manifest, args.aligned, args.out, settings,
                     workers=ExecutionSettings.from_args(args, params).workers, force=args.force,
                     compress=args.compress)
    print(f"labelled {summary['labelled']} ({summary['clips']} clips, {settings.flow}), kept "
          f"{summary['skipped_existing']} existing, rejected {summary['rejected']} "
          f"(see {Path(args.out) / 'rejects.csv'})")
    return 0


def labels(manifest: str | Path, aligned: str | Path, out: str | Path, settings: LabelsSettings = LabelsSettings(),
           workers: int | None = None, force: bool = False, compress: bool = False) -> dict:
    """Write the clip, flow and landmark labels of every aligned sample; returns (and writes) the summary."""
    flow = settings.flow
    aligned, out = Path(aligned), check_output(out)
    if not aligned.is_dir():
        raise UserError(f"aligned folder {aligned} does not exist; run `mol align --out {aligned}` first")
    table = read_manifest(manifest)
    jobs = []
    for row in table.itertuples():
        aligned_path = aligned / f"{sample_file_stem(row.sample_id)}.npz"
        identity = made_from(flow=flow, label=int(row.label), subject=row.subject, aligned=_identity_of(aligned_path))
        jobs.append(LabelJob(sample_id=row.sample_id, subject=row.subject, label=int(row.label),
                             aligned_path=aligned_path, out_path=out / f"{sample_file_stem(row.sample_id)}.npz",
                             flow_method=flow, compress=compress, made_from=identity))
    with output_lock(out, "labels"):
        todo = [job for job in jobs if force or not finished_with(job.out_path, job.made_from, CLIP_ARRAYS)]
        start = time.perf_counter()
        results = list(map_videos(label_video, todo, workers, desc=f"labels ({flow})"))
        summary = _summary(jobs, todo, results, time.perf_counter() - start, flow)
        write_report(out, summary)
    return summary


def _identity_of(aligned_path: Path) -> str:
    """An aligned file's identity: the `made_from` align stored in it (what it was made from), else (an
    older file) a digest of its bytes; 'missing' when there is none."""
    if not aligned_path.is_file():
        return "missing"
    return stored_made_from(aligned_path) or digest(hashlib.sha256(aligned_path.read_bytes()).hexdigest())


def _summary(jobs: list[LabelJob], todo: list[LabelJob], results: list[dict], seconds: float, flow: str) -> dict:
    report = run_report(results, seconds)
    done = [r for r in results if not r["reason"]]
    return {
        "stage": "labels",
        "flow_method": flow,
        "videos": len(jobs),
        "labelled": report.pop("done"),
        "skipped_existing": len(jobs) - len(todo),
        "clips": sum(r["clips"] for r in done),
        "flow_pairs": sum(r["pairs"] for r in done),
        "flow_seconds": round(sum(r["flow_seconds"] for r in done), 3),
        **report,
    }


def label_video(job: LabelJob) -> dict:
    """Clips and labels of one sample, written to its .npz; bad data gives a reject reason."""
    result = {"sample_id": job.sample_id, "reason": "", "frames": 0, "clips": 0, "pairs": 0, "flow_seconds": 0.0}
    aligned = _read_aligned(job.aligned_path)
    if isinstance(aligned, str):
        result["reason"] = aligned
        job.out_path.unlink(missing_ok=True)  # an older output of this sample is stale now
        return result
    frames, landmarks = aligned  # [N, 144, 144], [N, 68, 2]

    clips = clip_indices(len(frames))  # [C, 8]
    start = time.perf_counter()
    flow = np.stack([[compute_flow(frames[a], frames[b], job.flow_method) for a, b in zip(clip[:-1], clip[1:])]
                     for clip in clips]).astype(np.float16)  # [C, 7, 2, 144, 144]: clips share no pair
    flow_seconds = time.perf_counter() - start
    write_npz(job.out_path, compressed=job.compress, frames=frames[clips], flow=flow, landmarks=landmarks[clips],
              label=np.array(job.label), subject=np.array(job.subject), sample_id=np.array(job.sample_id),
              flow_method=np.array(job.flow_method), stride=np.array(len(clips)), made_from=np.array(job.made_from))
    result.update(frames=len(frames), clips=len(clips), pairs=len(clips) * (CLIP_LENGTH - 1),
                  flow_seconds=flow_seconds)
    return result


def _read_aligned(path: Path) -> tuple[np.ndarray, np.ndarray] | str:
    """An aligned file's frames and landmarks, or the reason it cannot be labelled."""
    name = path.name
    if not path.is_file():
        return f"no aligned file {name} (rejected by `mol align`, or align has not run)"
    try:
        with np.load(path) as aligned:
            frames, landmarks = aligned["frames"], aligned["landmarks"]
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile) as e:
        return f"aligned file {name} is unreadable ({e}); redo it with `mol align --force`"
    if frames.dtype != np.uint8 or frames.ndim != 3 or landmarks.shape != (len(frames), 68, 2):
        return (f"aligned file {name} holds frames {frames.dtype} {list(frames.shape)} and landmarks "
                f"{list(landmarks.shape)}, not uint8 [N, 144, 144] and [N, 68, 2]; redo it with `mol align --force`")
    if len(frames) < CLIP_LENGTH:
        return f"only {len(frames)} frames; an {CLIP_LENGTH}-frame clip needs at least {CLIP_LENGTH}"
    return frames, landmarks
