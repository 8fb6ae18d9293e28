"""Files and the per-video work of the stages: atomic writes, output checks and locks, the per-sample
file-name rule, the parallel map over videos with a progress bar, and the stage report (rejects.csv,
summary.json).

Progress bars (`progress_bar`) show only on a terminal: in a log file, a Kubeflow pod's log or under
`mol pipeline run-local` every update of a bar would be a line of its own.

Every stage output goes through `atomic_path`, so a killed run never leaves a half-written file behind,
and a rerun can trust that any file present is complete. A kill -9 can still leave the hidden temporary
file of the write in progress; `output_lock` removes those when the next run takes the folder.

`check_output` runs before a stage does any work, so a bad `--out` costs one line, not a finished
computation. `output_lock` holds an output folder for one process at a time (two runs on one `--out` would
overwrite each other's finished files); `made_from` records what an output was computed from, so a rerun
redoes it when its inputs changed instead of trusting it by name.

`map_videos` starts workers with `spawn` (no inherited threads or locks, the same on Linux and macOS)
and sets OpenCV to one thread in each: the videos are the parallel unit, so OpenCV's own thread pool
would only oversubscribe the cores. With one worker everything runs in this process (easy to debug).
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import multiprocessing
import os
import re
import socket
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, TypeVar

import numpy as np
import pandas as pd
from tqdm import tqdm

from components.errors import UserError, redact

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; folders are then not guarded
    fcntl = None


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


# ---- what an output was made from ----

MADE_FROM_KEY = "made_from"


def made_from(**inputs: Any) -> str:
    """The identity of an output's inputs (settings, frame range, input files' identities) as canonical
    JSON: equal inputs give equal text, so a rerun compares it with the text stored in the output."""
    return json.dumps(inputs, sort_keys=True, separators=(",", ":"), default=str)


def digest(*parts: Any) -> str:
    """A short sha256 of JSON-able parts (a fold's sample list, a folder's file names and sizes)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def stored_made_from(path: Path) -> str | None:
    """The `made_from` text stored in the .npz at `path`; None when the file is missing, damaged, or
    has none (made by an older version)."""
    if not path.is_file():
        return None
    try:
        with np.load(path) as stored:
            return str(stored[MADE_FROM_KEY].item()) if MADE_FROM_KEY in stored.files else None
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile):
        return None


def finished_with(path: Path, identity: str, arrays: tuple[str, ...] = ()) -> bool:
    """True if the .npz at `path` is complete, holds `arrays` and was made from these inputs (`made_from`),
    so a rerun can skip it; a missing, damaged, older, differently made or laid out file is redone."""
    if stored_made_from(path) != identity:
        return False
    try:
        with np.load(path) as stored:
            return set(arrays) <= set(stored.files)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile):
        return False


# ---- outputs: checked before the work, held while it runs ----

def check_output(path: str | os.PathLike, kind: str = "dir", flag: str = "--out") -> Path:
    """Refuse, before any work, an output that could not be written: an existing file where a folder is
    wanted (or the reverse), a parent that is a file, or a place this user may not write to."""
    path = Path(path)
    try:
        exists = path.exists()
        if exists and kind == "dir" and not path.is_dir():
            raise UserError(f"{flag} {path} is a file, not a folder; pass a folder (new or existing)")
        if exists and kind == "file" and path.is_dir():
            raise UserError(f"{flag} {path} is a folder; pass the path of a file to write")
        place = path if exists and kind == "dir" else path.parent
        while not place.exists():
            place = place.parent
    except PermissionError:
        raise UserError(f"{flag} {path} lies in a folder this user may not read; pass another path") from None
    if not place.is_dir():
        raise UserError(f"{flag} {path} cannot be created: {place} is a file, not a folder; pass another path")
    if not os.access(place, os.W_OK | os.X_OK):
        raise UserError(f"{flag} {path} cannot be written: this user may not write in {place}; pass another path "
                        "or fix the folder's permissions")
    return path


LOCK_FILE = ".mol.lock"
# mkstemp's name for an atomic write of `name`: `.name.` + 8 random characters + suffix
_PARTIAL = re.compile(r"\.(?P<name>.+)\.[a-z0-9_]{8}(\.[A-Za-z0-9]+)?")


def remove_partial_files(folder: Path) -> list[str]:
    """Delete the hidden temporary files that atomic writes of a killed process left in `folder`.
    Call it only while holding the folder (`output_lock`): a live writer's files look the same."""
    removed = []
    for path in folder.iterdir() if folder.is_dir() else []:
        if _PARTIAL.fullmatch(path.name) and path.is_file():
            path.unlink(missing_ok=True)
            removed.append(path.name)
    return removed


def _holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text())
        return f"`{info['command']}` (pid {info['pid']} on {info['host']}, since {info['since']})"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"


@contextlib.contextmanager
def output_lock(folder: str | os.PathLike, stage: str) -> Iterator[Path]:
    """Hold `folder` (created if needed) for this process while the block runs; a second process gets a
    UserError naming the holder. The lock is the kernel's (flock), so a killed holder frees it at once and
    no stale lock survives it; the lock file also says who holds it. Leftover partial files are removed."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_FILE
    if fcntl is None:
        yield folder
        return
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666 & ~_UMASK)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise UserError(f"{folder} is in use by {redact(_holder(path))}; wait for that {stage} to finish "
                            "(or stop it), or pass another --out") from None
        try:
            current = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            current = False
        if current:
            break
        os.close(fd)  # the holder we raced with removed this file on release: lock the new one
    try:
        since = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
        info = {"command": redact(" ".join([Path(sys.argv[0]).name, *sys.argv[1:]]))[:300],
                "pid": os.getpid(), "host": socket.gethostname(), "since": since}
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps(info).encode())
        remove_partial_files(folder)
        yield folder
    finally:
        path.unlink(missing_ok=True)  # before unlocking: a process waiting on this file sees it gone
        os.close(fd)
