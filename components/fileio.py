"""Atomic file writes and the naming rule for per-sample files.

Every stage output goes through these helpers, so a killed run never leaves a half-written file
behind, and a rerun can trust that any file present is complete.
"""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np


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
