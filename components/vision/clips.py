"""8-frame clips of an aligned video and their 128x128 crops: the one place that decides which frames
form a clip and where a crop lies, for labels, training, evaluation, predict and the pictures.

Clips as the official code: stride s = N // 8 and clip j (0 <= j < s) takes frames j, j+s, ..., j+7s.
Crops: training crops at random offsets, uniform in 0..16 as the official; evaluation and predict take
the fixed centre crop at (8, 8) (the official code used random crops for testing too).
"""
from __future__ import annotations

import zlib

import numpy as np

from components.vision.face import ALIGN_SIZE
from mol_model.clips import CLIP_LENGTH, FRAME_SIZE

CROP_SIZE = FRAME_SIZE  # 128: the model's input
EVAL_OFFSET = ((ALIGN_SIZE - CROP_SIZE) // 2,) * 2  # (8, 8): the fixed evaluation crop (x, y)


def clip_indices(n_frames: int, clip_length: int = CLIP_LENGTH) -> np.ndarray:
    """Frame indices of the clips, int [s, clip_length] with s = n_frames // clip_length:
    clip j takes j, j+s, ..., j+(clip_length-1)s. N=20 -> s=2: [0,2,...,14], [1,3,...,15]."""
    stride = n_frames // clip_length
    return np.arange(stride)[:, None] + stride * np.arange(clip_length)[None, :]


def random_offsets(sample_id: str, seed: int, count: int) -> np.ndarray:
    """`count` crop offsets (x, y), each uniform in 0..16 as the official, int64 [count, 2]; the same
    for the same sample and seed, whatever else is in the run."""
    rng = np.random.default_rng([seed, zlib.crc32(sample_id.encode())])
    return rng.integers(0, ALIGN_SIZE - CROP_SIZE + 1, size=(count, 2))


def crop_clips(frames: np.ndarray, flows: np.ndarray | None, landmarks: np.ndarray, clip_index: np.ndarray,
               offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """Crop clip `clip_index[k]` at `offsets[k]` (x, y) for every k. frames [C, 8, 144, 144],
    flows [C, 7, 2, 144, 144] (or None), landmarks [C, 8, 68, 2] -> [K, 8, 128, 128], [K, 7, 2, 128, 128],
    [K, 8, 68, 2] with the landmarks moved into the crop."""
    window = [(np.s_[..., y:y + CROP_SIZE, x:x + CROP_SIZE]) for x, y in offsets]
    video = np.stack([frames[c][w] for c, w in zip(clip_index, window)])
    flow = None if flows is None else np.stack([flows[c][w] for c, w in zip(clip_index, window)])
    points = landmarks[clip_index] - offsets[:, None, None, :].astype(np.float32)
    return video, flow, points


def eval_offsets(count: int) -> np.ndarray:
    """The fixed evaluation crop's offset for `count` clips, int [count, 2]."""
    return np.tile(np.array(EVAL_OFFSET), (count, 1))
