"""Run one function over many videos, in worker processes, with a progress bar; and the stage report
(rejects.csv, summary.json) that such a run ends with.

Workers are started with `spawn` (no inherited threads or locks, the same on Linux and macOS) and
each sets OpenCV to one thread: the videos are the parallel unit, so OpenCV's own thread pool would
only oversubscribe the cores. With one worker everything runs in this process (easy to debug).
"""
from __future__ import annotations

import multiprocessing
import os
import zipfile
from pathlib import Path
from typing import Callable, Iterable, Iterator, TypeVar

import numpy as np
import pandas as pd
from tqdm import tqdm

from components.errors import UserError
from components.fileio import write_csv, write_json

Job = TypeVar("Job")
Result = TypeVar("Result")


def default_workers() -> int:
    return os.cpu_count() or 1


def _init_worker() -> None:
    import cv2

    cv2.setNumThreads(1)


def map_videos(function: Callable[[Job], Result], jobs: Iterable[Job], workers: int | None = None,
               desc: str = "videos") -> Iterator[Result]:
    """Yield `function(job)` for every job, in completion order. `function` must be a module-level
    function (it is sent to the workers by name)."""
    if workers is not None and workers < 1:
        raise UserError(f"--workers must be at least 1 (got {workers})")
    jobs = list(jobs)
    workers = max(1, min(workers or default_workers(), len(jobs)))
    with tqdm(total=len(jobs), desc=desc, unit="video", disable=not jobs) as progress:
        if workers == 1:
            for job in jobs:
                yield function(job)
                progress.update()
            return
        with multiprocessing.get_context("spawn").Pool(workers, initializer=_init_worker) as pool:
            for result in pool.imap_unordered(function, jobs):
                yield result
                progress.update()


def run_report(results: list[dict], seconds: float) -> dict:
    """The common part of a stage summary from per-video results (dicts with `sample_id`, `reason`
    ('' when the video succeeded) and `frames`): counts, rejects sorted by sample, speed."""
    done = [r for r in results if not r["reason"]]
    frames = sum(r["frames"] for r in done)
    rejects = sorted(({"sample_id": r["sample_id"], "reason": r["reason"]} for r in results if r["reason"]),
                     key=lambda r: r["sample_id"])
    return {"done": len(done), "rejected": len(rejects), "frames": frames, "seconds": round(seconds, 3),
            "videos_per_s": len(done) / seconds if seconds > 0 else 0.0,
            "frames_per_s": frames / seconds if seconds > 0 else 0.0, "rejects": rejects}


def write_report(out: Path, summary: dict) -> None:
    """`out/rejects.csv` (sample_id, reason) and `out/summary.json`, atomically."""
    write_csv(out / "rejects.csv", pd.DataFrame(summary["rejects"], columns=["sample_id", "reason"]))
    write_json(out / "summary.json", summary)


def finished_with(path: Path, settings: dict) -> bool:
    """True if the .npz at `path` is complete and was made with these settings, so a rerun can skip it;
    a missing, damaged or differently made file is redone."""
    if not path.is_file():
        return False
    try:
        with np.load(path) as stored:
            return all(stored[key].item() == value for key, value in settings.items())
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return False
