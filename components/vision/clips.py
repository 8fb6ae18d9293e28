"""8-frame clips of an aligned video and their 128x128 crops: the one place that decides which frames
form a clip and where a crop lies, for labels, training, evaluation, predict and the pictures.

Clips as the official code: stride s = N // 8 and clip j (0 <= j < s) takes frames j, j+s, ..., j+7s.
Clip files keep the clips at the aligned 144x144 size; a crop is cut when a clip is used. Training takes a
random offset, uniform in 0..16 as the official, for the whole clip (frames, flow and landmarks alike);
evaluation and predict take the fixed centre crop at (8, 8) (the official code used random crops for
testing too).
"""
from __future__ import annotations

import zlib

import numpy as np
import torch

from components.vision.face import ALIGN_SIZE
from mol_model.clips import CLIP_LENGTH, FRAME_SIZE

CROP_SIZE = FRAME_SIZE  # 128: the model's input
MAX_OFFSET = ALIGN_SIZE - CROP_SIZE  # 16
EVAL_OFFSET = (MAX_OFFSET // 2,) * 2  # (8, 8): the fixed evaluation crop (x, y)
CLIP_ARRAYS = ("frames", "flow", "landmarks")  # a clip file's arrays (`mol labels`), per clip at 144x144


def clip_indices(n_frames: int, clip_length: int = CLIP_LENGTH) -> np.ndarray:
    """Frame indices of the clips, int [s, clip_length] with s = n_frames // clip_length:
    clip j takes j, j+s, ..., j+(clip_length-1)s. N=20 -> s=2: [0,2,...,14], [1,3,...,15]."""
    stride = n_frames // clip_length
    return np.arange(stride)[:, None] + stride * np.arange(clip_length)[None, :]


def random_offsets(key: list[int], count: int) -> np.ndarray:
    """`count` crop offsets (x, y), each uniform in 0..16, int64 [count, 2]; a pure function of `key`."""
    return np.random.default_rng(key).integers(0, MAX_OFFSET + 1, size=(count, 2))


def sample_key(sample_id: str) -> int:
    """A stable number for a sample, to seed what belongs to it whatever else is in the run."""
    return zlib.crc32(sample_id.encode())


def eval_offsets(count: int) -> np.ndarray:
    """The fixed evaluation crop's offset for `count` clips, int [count, 2]."""
    return np.tile(np.array(EVAL_OFFSET), (count, 1))


def crop_clips(frames, flows, landmarks, offsets: np.ndarray):
    """Crop clip k at `offsets[k]` (x, y). frames [K, T, 144, 144], flows [K, T-1, 2, 144, 144] (or None),
    landmarks [K, T, 68, 2] -> [K, T, 128, 128], [K, T-1, 2, 128, 128], landmarks moved into the crop.
    NumPy arrays or torch tensors on any device alike, so a GPU crops after the transfer."""
    def crop(array):
        stack = torch.stack if torch.is_tensor(array) else np.stack
        return stack([a[..., y:y + CROP_SIZE, x:x + CROP_SIZE] for a, (x, y) in zip(array, offsets.tolist())])

    shift = np.asarray(offsets, dtype=np.float32)[:, None, None, :]  # [K, 1, 1, 2]
    if torch.is_tensor(landmarks):
        shift = torch.from_numpy(shift).to(landmarks.device)
    return crop(frames), None if flows is None else crop(flows), landmarks - shift


def eval_crops(frames, flows, landmarks):
    """Every clip cut at the fixed evaluation crop (`crop_clips` with `eval_offsets`)."""
    return crop_clips(frames, flows, landmarks, eval_offsets(len(frames)))
