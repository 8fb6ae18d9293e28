"""Clip layout: B clips of T frames; the model works on T-1 consecutive frame pairs per clip."""
from __future__ import annotations

import torch

CLIP_LENGTH = 8  # frames per clip (the MER head's 14 = 2 * 7 stacked features need exactly 8)
FRAME_SIZE = 128  # frame height and width (the landmark head's 6272 = 32 * 14 * 14 need exactly 128)


def split_pairs(x: torch.Tensor, clips: int) -> tuple[torch.Tensor, torch.Tensor]:
    """[B*T, ...] per-frame tensors -> ([B*(T-1), ...] first, [B*(T-1), ...] second frame of each pair).

    Indexing (rather than slicing a [B, T, ...] view and flattening it, which copies into the default
    layout) keeps channels-last tensors channels-last."""
    frames = torch.arange(x.shape[0], device=x.device).view(clips, -1)  # [B, T]
    return x[frames[:, :-1].flatten()], x[frames[:, 1:].flatten()]
