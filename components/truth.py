"""The synthetic data set's ground truth (`components.synth`) carried into the aligned, cropped frames
that the labels and the model see: true flow and true landmarks in evaluation-crop pixels.

Used by the label-quality benchmark (`benchmarks/preprocess.py --quality`) and by `mol evaluate`'s
sample pictures (label vs prediction vs truth).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from components.face import transform_points
from components.labels import CROP_SIZE, EVAL_OFFSET, clip_indices
from components.synth import ground_truth_path, load_ground_truth
from components.synth_motion import ClipMotion


def inverse_affine(matrix: np.ndarray) -> np.ndarray:
    """[2, 3] affine -> its inverse [2, 3]."""
    return np.linalg.inv(np.vstack([matrix, [0, 0, 1]]))[:2]


def true_aligned_flow(motion: ClipMotion, a: int, b: int, matrix_a: np.ndarray, matrix_b: np.ndarray) -> np.ndarray:
    """The true flow from ground-truth frame a to frame b on the evaluation crop, in aligned pixels
    [2, 128, 128]. Exact: each aligned pixel of frame a is mapped back to the source frame (matrix_a),
    moved by the synthetic warp from a to b, and mapped forward into aligned frame b (matrix_b; the
    same matrix for a per-video alignment)."""
    ys, xs = np.mgrid[0:CROP_SIZE, 0:CROP_SIZE].astype(np.float64)
    aligned_points = np.stack([xs + EVAL_OFFSET[0], ys + EVAL_OFFSET[1]], axis=-1)  # [128, 128, 2]
    source = transform_points(aligned_points, inverse_affine(matrix_a))
    moved = motion.from_neutral(b, motion.to_neutral(a, source))
    return (transform_points(moved, matrix_b) - aligned_points).transpose(2, 0, 1)


def true_eval_clip(truth_dir: str | Path, aligned_file: str | Path, sample_id: str
                   ) -> tuple[np.ndarray, np.ndarray] | None:
    """True flow float32 [7, 2, 128, 128] and landmarks float32 [8, 68, 2] of a sample's first evaluation
    clip, in crop pixels; None when TRUTH_DIR has no ground truth for it (a real data set). The sample
    is a `mol synth` video ingested as CASME II: sample_id `casme2/<subject folder>/<video id>`."""
    subject_folder, video_id = sample_id.split("/")[-2:]
    if not ground_truth_path(truth_dir, subject_folder, video_id).is_file():
        return None
    truth = load_ground_truth(truth_dir, subject_folder, video_id)
    with np.load(aligned_file) as aligned:
        transforms, numbers = aligned["transforms"], aligned["frame_numbers"]  # [N, 2, 3], [N]
    if not np.isin(numbers, truth.frame_numbers).all():
        return None  # another video of the same name (a real CASME II beside a synthetic set)
    index = np.searchsorted(truth.frame_numbers, numbers)  # aligned frame -> ground-truth frame
    clip = clip_indices(len(numbers))[0]  # [8] aligned frames of evaluation clip 0
    landmarks = np.stack([transform_points(truth.landmarks[index[i]].astype(np.float64), transforms[i])
                          for i in clip]) - EVAL_OFFSET  # [8, 68, 2]
    flow = np.stack([true_aligned_flow(truth.motion, index[a], index[b], transforms[a], transforms[b])
                     for a, b in zip(clip[:-1], clip[1:])])  # [7, 2, 128, 128]
    return flow.astype(np.float32), landmarks.astype(np.float32)
