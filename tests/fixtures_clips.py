"""Tiny clip files in the `mol labels` format, and LOSO folds over them, for training tests."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from components.io import sample_file_stem, write_npz

FLOW_METHOD = "farneback"  # as `mol labels` records it in each clip file
MANIFEST_SHA256 = "0f" * 32  # as `mol split` records it in FOLDS.json


def landmarks_track(rng: np.random.Generator, clips: int) -> np.ndarray:
    """float32 [clips, 8, 68, 2]: a random face shape inside every 128 crop of the 144 frame, drifting
    slightly over frames."""
    shape = rng.uniform(40, 104, size=(68, 2))
    drift = rng.normal(0, 0.5, size=(clips, 8, 1, 2)).cumsum(axis=1)
    return (shape + drift).astype(np.float32)


def write_clip_file(folder: Path, sample_id: str, subject: str, label: int, seed: int, clips: int = 2) -> Path:
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 256, size=(clips, 8, 144, 144), dtype=np.uint8)
    flow = np.broadcast_to(rng.normal(0, 1, size=(clips, 7, 2, 1, 1)), (clips, 7, 2, 144, 144)).astype(np.float16)
    path = folder / f"{sample_file_stem(sample_id)}.npz"
    write_npz(path, frames=frames, flow=flow, landmarks=landmarks_track(rng, clips), label=np.array(label),
              subject=np.array(subject), sample_id=np.array(sample_id), flow_method=np.array(FLOW_METHOD))
    return path


def write_clip_set(folder: Path, subjects=("s1", "s2", "s3"), classes: int = 2, per_class: int = 1,
                   clips: int = 2) -> list[tuple[str, str, int]]:
    """`per_class` samples of each class for each subject; returns (sample_id, subject, label) rows."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = [(f"syn/{subject}/c{label}v{i}", subject, label)
            for subject in subjects for label in range(classes) for i in range(per_class)]
    for seed, (sample_id, subject, label) in enumerate(rows):
        write_clip_file(folder, sample_id, subject, label, seed, clips=clips)
    return rows


def write_loso_folds(path: Path, rows: list[tuple[str, str, int]], class_names: list[str]) -> dict:
    subjects = sorted({subject for _, subject, _ in rows})
    document = {"mode": "loso", "num_classes": len(class_names), "class_names": class_names,
                "manifest_sha256": MANIFEST_SHA256,
                "folds": [{"fold": k, "test_subject": s,
                           "train": [sid for sid, subj, _ in rows if subj != s],
                           "test": [sid for sid, subj, _ in rows if subj == s]} for k, s in enumerate(subjects)]}
    path.write_text(json.dumps(document))
    return document
