"""Clip layout inside the model: frames stacked time-major.

The B clips' T frames are stacked as one batch in time-major order (index t * B + b), so the first
frames of all T-1 consecutive pairs are one slice of it and the second frames the next slice (no
copies), and per-pair results come out pair-major (index t * B + b for pair (t, t + 1)).
"""
from __future__ import annotations

import torch

CLIP_LENGTH = 8  # frames per clip (the MER head's 14 = 2 * 7 stacked features need exactly 8)
FRAME_SIZE = 128  # frame height and width (the landmark head's 6272 = 32 * 14 * 14 need exactly 128)


def time_major_frames(video: torch.Tensor) -> torch.Tensor:
    """[B, 1, T, H, W] -> [T*B, 1, H, W]."""
    return video.permute(2, 0, 1, 3, 4).flatten(0, 1)


def split_pairs(x: torch.Tensor, clips: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Time-major per-frame [T*B, ...] -> (first, second frame of each pair), each [(T-1)*B, ...] (views)."""
    return x[:-clips], x[clips:]


def clip_major(x: torch.Tensor, clips: int) -> torch.Tensor:
    """Pair-major [(T-1)*B, ...] -> [B, T-1, ...]."""
    return x.unflatten(0, (-1, clips)).transpose(0, 1)
