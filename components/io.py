"""Files and the per-video work of the stages: atomic writes, the per-sample file-name rule, the
parallel map over videos with a progress bar, and the stage report (rejects.csv, summary.json).

Progress bars (`progress_bar`) show only on a terminal: in a log file, a Kubeflow pod's log or under
`mol pipeline run-local` every update of a bar would be a line of its own.

Every stage output goes through `atomic_path`, so a killed run never leaves a half-written file behind,
and a rerun can trust that any file present is complete.

`map_videos` starts workers with `spawn` (no inherited threads or locks, the same on Linux and macOS)
and sets OpenCV to one thread in each: the videos are the parallel unit, so OpenCV's own thread pool
would only oversubscribe the cores. With one worker everything runs in this process (easy to debug).
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, TypeVar

import numpy as np
import pandas as pd
from tqdm import tqdm

from components.errors import UserError


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


def sample_file_stem(sample_id: str) -> str:
    """`casme2/sub01/EP02_01f` -> `casme2__sub01__EP02_01f` (the contract's file-name rule)."""
    return sample_id.replace("/", "__")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix or path.suffix)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600; give the file the usual permissions
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def write_npz(path: str | os.PathLike, compressed: bool = False, **arrays: np.ndarray) -> None:
    save = np.savez_compressed if compressed else np.savez
    with atomic_path(path, suffix=".npz") as tmp:
        with open(tmp, "wb") as f:
            save(f, **arrays)


def write_csv(path: str | os.PathLike, frame) -> None:
    """Write a pandas DataFrame atomically, without the index."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


# ---- the per-video work of a stage ----

Job = TypeVar("Job")
Result = TypeVar("Result")


def default_workers() -> int:
    return os.cpu_count() or 1


def _init_worker() -> None:
    import cv2

    cv2.setNumThreads(1)


def progress_bar(iterable: Iterable | None = None, *, enabled: bool = True, **options) -> tqdm:
    """A tqdm bar (same options) that is drawn only when stderr is a terminal and `enabled`."""
    return tqdm(iterable, disable=None if enabled else True, **options)


def map_videos(function: Callable[[Job], Result], jobs: Iterable[Job], workers: int | None = None,
               desc: str = "videos") -> Iterator[Result]:
    """Yield `function(job)` for every job, in completion order. `function` must be a module-level
    function (it is sent to the workers by name)."""
    if workers is not None and workers < 1:
        raise UserError(f"--workers must be at least 1 (got {workers})")
    jobs = list(jobs)
    workers = max(1, min(workers or default_workers(), len(jobs)))
    with progress_bar(total=len(jobs), desc=desc, unit="video", enabled=bool(jobs)) as progress:
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


def finished_with(path: Path, settings: dict, arrays: tuple[str, ...] = ()) -> bool:
    """True if the .npz at `path` is complete, holds `arrays` and was made with these settings, so a rerun
    can skip it; a missing, damaged, differently made or differently laid out file is redone."""
    if not path.is_file():
        return False
    try:
        with np.load(path) as stored:
            return (all(stored[key].item() == value for key, value in settings.items())
                    and set(arrays) <= set(stored.files))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return False
