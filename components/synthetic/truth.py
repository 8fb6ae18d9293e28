"""The synthetic data set's ground truth: the file written beside every clip (true landmarks and the
warp behind the flow), and that truth carried into the aligned, cropped frames that the labels and the
model see: true flow and true landmarks in evaluation-crop pixels.

Used by `mol synth` (writing), the label-quality benchmark (`benchmarks/preprocess.py --quality`) and
`mol evaluate`'s sample pictures (label vs prediction vs truth). Needs the motion maths only, not the
face generator.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from components.errors import UserError
from components.io import write_npz
from components.synthetic.motion import Bumps, ClipMotion, pixel_grid
from components.vision.clips import CROP_SIZE, EVAL_OFFSET, clip_indices
from components.vision.face import transform_points

GROUND_TRUTH_FOLDER = "ground_truth"
GROUND_TRUTH_FORMAT = 1


def ground_truth_path(out_dir: str | Path, subject_folder: str, video_id: str) -> Path:
    return Path(out_dir) / GROUND_TRUTH_FOLDER / f"{subject_folder}__{video_id}.npz"


def write_ground_truth(path: Path, frame_numbers: np.ndarray, landmarks: np.ndarray, emotion: str,
                       action_units: str, frame_size: tuple[int, int], motion: ClipMotion) -> None:
    """One clip's truth: landmarks [N, 68, 2] in the written frames, and the warp (a few kB) from which
    `GroundTruth.flow` computes the exact flow between any two frames."""
    write_npz(path, compressed=True, format=np.int64(GROUND_TRUTH_FORMAT),
              frame_numbers=np.asarray(frame_numbers, dtype=np.int64), landmarks=landmarks.astype(np.float32),
              emotion=np.str_(emotion), action_units=np.str_(action_units), frame_size=np.array(frame_size),
              bump_centres=motion.bumps.centres, bump_vectors=motion.bumps.vectors,
              bump_sigmas=motion.bumps.sigmas, bump_channel=motion.bumps.channel,
              amplitude=motion.amplitude, pose=motion.pose, pose_centre=motion.centre)


@dataclass
class GroundTruth:
    frame_numbers: np.ndarray  # int64 [N]
    landmarks: np.ndarray      # float32 [N, 68, 2] true positions in the written frames (x, y pixels)
    emotion: str
    action_units: str          # e.g. "6+12"
    motion: ClipMotion         # the warp; flow is computed from it on request
    frame_size: tuple[int, int]  # (H, W)

    def flow(self, start: int, end: int) -> np.ndarray:
        """float32 [2, H, W]: true flow from frame index `start` to `end` (pixels, channel 0 = x), so
        that frame_start(p) shows what frame_end shows at p + flow(p). About 0.1 s per pair."""
        grid = pixel_grid(*self.frame_size)
        return self.motion.flow(start, end, grid).transpose(2, 0, 1).astype(np.float32)

    def consecutive_flow(self) -> np.ndarray:
        """float32 [N-1, 2, H, W]: flow from each frame to the next."""
        return np.stack([self.flow(t, t + 1) for t in range(len(self.frame_numbers) - 1)])


def load_ground_truth(out_dir: str | Path, subject_folder: str, video_id: str) -> GroundTruth:
    """The truth behind one synthetic clip (`sub01`, `EP01_01f`). Flow is not stored (about 10 MB
    per clip as dense float16) but computed exactly from the stored warp (a few kB)."""
    path = ground_truth_path(out_dir, subject_folder, video_id)
    if not path.is_file():
        raise UserError(f"no ground truth {path}; is {out_dir} a `mol synth` output folder?")
    with np.load(path) as f:
        if int(f["format"]) != GROUND_TRUTH_FORMAT:
            raise UserError(f"{path} is ground truth of format {int(f['format'])}; rerun `mol synth` into a new folder")
        motion = ClipMotion(Bumps(f["bump_centres"], f["bump_vectors"], f["bump_sigmas"], f["bump_channel"]),
                            f["amplitude"], f["pose"], f["pose_centre"])
        return GroundTruth(f["frame_numbers"], f["landmarks"], str(f["emotion"]), str(f["action_units"]), motion,
                           tuple(int(v) for v in f["frame_size"]))



# ---- the truth in the aligned evaluation crop ----


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
