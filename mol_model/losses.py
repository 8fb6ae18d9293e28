"""The joint MOL training loss (official `train.py`, vectorised).

    total = CE(logits, labels) + flow_weight * MSE(flow) / (T-1)
            + landmark_weight * sum_{b, t} (sum |landmark error| over 136 values / inter-ocular distance) / (B * 68)

Landmarks are predicted for frames 1..T-1, so prediction t is compared with target frame t + 1; the
inter-ocular distance is the target frame's. The flow and landmark terms are computed in float32 even
when the model runs under autocast.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from mol_model.metrics import inter_ocular_distance


def mol_loss(out, labels: torch.Tensor, flow: torch.Tensor, landmarks: torch.Tensor,
             flow_weight: float = 10.0, landmark_weight: float = 0.1,
             class_weights: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """out: a MOLOutput; labels [B] long; flow [B, T-1, 2, H, W]; landmarks [B, T, 68, 2] (all frames).

    Returns {'total', 'mer', 'flow', 'landmark'} (scalar tensors; only 'total' needs backward)."""
    b, pairs = out.landmarks.shape[:2]
    if flow.shape != out.flow.shape:
        raise ValueError(f"target flow {list(flow.shape)} does not match predicted flow {list(out.flow.shape)}")
    if landmarks.shape[0] != b or landmarks.shape[1] != pairs + 1 or landmarks.shape[2:] != out.landmarks.shape[2:]:
        raise ValueError(f"target landmarks must be [B, T, 68, 2] = {[b, pairs + 1, *out.landmarks.shape[2:]]}, "
                         f"got {list(landmarks.shape)}")
    mer = F.cross_entropy(out.logits.float(), labels, weight=class_weights)
    flow_term = F.mse_loss(out.flow.float(), flow.float()) / pairs
    target = landmarks[:, 1:].float()  # frames 1..T-1
    per_frame = (out.landmarks.float() - target).abs().sum((-1, -2)) / inter_ocular_distance(target)  # [B, T-1]
    landmark_term = per_frame.sum() / (b * out.landmarks.shape[2])
    total = mer + flow_weight * flow_term + landmark_weight * landmark_term
    return {"total": total, "mer": mer, "flow": flow_term, "landmark": landmark_term}
