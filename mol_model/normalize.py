"""The one definition of model input normalisation: uint8 grey levels -> floats in [-1, 1].

The official code subtracts the data set's mean and divides by the maximum after that; for a mid-grey
mean (127.5) that is this same map. One fixed constant keeps training, evaluation and prediction
consistent and needs no statistics saved with the model.
"""
from __future__ import annotations

import numpy as np
import torch

CENTRE = 127.5


def normalize_video(video: torch.Tensor | np.ndarray, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """uint8 frames of any shape (e.g. clips [B, T, H, W]) -> (x - 127.5) / 127.5 as `dtype`, same shape.

    Add the channel axis yourself for the model: `normalize_video(clips)[:, None]` -> [B, 1, T, H, W].
    """
    video = torch.as_tensor(video)
    if video.dtype != torch.uint8:
        raise TypeError(f"normalize_video expects uint8 grey levels (0-255), got {video.dtype}; "
                        "pass the frames as stored, before any scaling")
    return (video.to(dtype) - CENTRE) / CENTRE
