"""Tiny clip files in the `mol labels` format, and LOSO folds over them, for training tests."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from components.io import sample_file_stem, write_npz


FLOW_METHOD = "farneback"  # as `mol labels` records it in each clip file
MANIFEST_SHA256 = "0f" * 32  # as `mol split` records it in FOLDS.json


def landmarks_track(rng: np.random.Generator, clips: int) -> np.ndarray:
    """float32 [clips, 8, 68, 2]: a random face shape inside the 128 crop, drifting slightly over frames."""
    shape = rng.uniform(24, 104, size=(68, 2))
    drift = rng.normal(0, 0.5, size=(clips, 8, 1, 2)).cumsum(axis=1)
    return (shape + drift).astype(np.float32)


def write_clip_file(folder: Path, sample_id: str, subject: str, label: int, seed: int,
                    train_clips: int = 2, eval_clips: int = 1) -> Path:
    rng = np.random.default_rng(seed)

    def view(n: int):
        video = rng.integers(0, 256, size=(n, 8, 128, 128), dtype=np.uint8)
        flow = np.broadcast_to(rng.normal(0, 1, size=(n, 7, 2, 1, 1)), (n, 7, 2, 128, 128)).astype(np.float16)
        return video, flow, landmarks_track(rng, n)

    video, flow, landmarks = view(train_clips)
    eval_video, eval_flow, eval_landmarks = view(eval_clips)
    path = folder / f"{sample_file_stem(sample_id)}.npz"
    write_npz(path, video=video, flow=flow, landmarks=landmarks, eval_video=eval_video, eval_flow=eval_flow,
              eval_landmarks=eval_landmarks, label=np.array(label), subject=np.array(subject),
              sample_id=np.array(sample_id), flow_method=np.array(FLOW_METHOD))
    return path


def write_clip_set(folder: Path, subjects=("s1", "s2", "s3"), classes: int = 2, per_class: int = 1,
                   eval_clips: int = 1) -> list[tuple[str, str, int]]:
    """`per_class` samples of each class for each subject; returns (sample_id, subject, label) rows."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = [(f"syn/{subject}/c{label}v{i}", subject, label)
            for subject in subjects for label in range(classes) for i in range(per_class)]
    for seed, (sample_id, subject, label) in enumerate(rows):
        write_clip_file(folder, sample_id, subject, label, seed, eval_clips=eval_clips)
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
