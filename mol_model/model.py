"""MOL: joint micro-expression recognition, optical flow and facial landmarks from an 8-frame clip.

Shapes for the default clip (B clips, T = 8 frames of 128 x 128, M = B * (T - 1) frame pairs):

    video [B, 1, T, 128, 128]
    -> frame encoder (4 convs, shared by all frames)        [T*B, 128, 16, 16] (time-major, clips.py)
    -> F5C block 1 on each pair's first frame,
       F5C block 2 on each pair's second frame              [M, 128, 16, 16] each
    -> flow decoder (raw frames + both F5C maps)            flow      [B, T-1, 2, 128, 128]
    -> landmark head (second frame of each pair)            landmarks [B, T-1, 68, 2]
    -> MER head (the 2*(T-1) maps stacked in pair order;    logits    [B, num_classes]
       mer_input='motion': centred over the clip first)

All frames and pairs go through each layer in one batched call; the official code loops over pairs.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from mol_model.ccc import CCC
from mol_model.clips import CLIP_LENGTH, FRAME_SIZE, clip_major, split_pairs, time_major_frames
from mol_model.fcc import FCC
from mol_model.flownet import FlowDecoder
from mol_model.heads import LandmarkHead, MERHead

FEATURES = 128  # channels of the per-frame feature map
FEATURE_SIZE = FRAME_SIZE // 8  # its height and width (16)
LANDMARKS = 68
MER_INPUTS = ("official", "motion")  # what the MER head reads: see motion_features


class MOLOutput(NamedTuple):
    logits: torch.Tensor  # [B, num_classes]
    flow: torch.Tensor  # [B, T-1, 2, H, W] pixels, channel 0 = x, 1 = y
    landmarks: torch.Tensor  # [B, T-1, 68, 2] (x, y) pixels, for frames 1..T-1


class F5C(nn.Module):
    """FCC (global axial mixing) followed by CCC (graph step over positions), CCC added to FCC."""

    def __init__(self, neighbors: int):
        super().__init__()
        self.fcc = FCC(half=FEATURES // 2, meta_size=2 * FEATURE_SIZE)
        self.ccc = CCC(positions=FEATURE_SIZE**2, neighbors=neighbors)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [N, 128, 16, 16] -> same
        x = self.fcc(x)
        return x + self.ccc(x)


def frame_encoder() -> nn.Sequential:
    """[N, 1, 128, 128] -> [N, 128, 16, 16]; plain convs without activations, as in the official code."""
    return nn.Sequential(
        nn.Conv2d(1, 8, 4, stride=2),  # 63
        nn.Conv2d(8, 32, 3, stride=2),  # 31
        nn.Conv2d(32, 64, 2, stride=2, padding=1),  # 16
        nn.Conv2d(64, FEATURES, 1),
    )


def motion_features(stacked: torch.Tensor) -> torch.Tensor:
    """[B, T-1, 128, 16, 16, 2] pair features -> same, minus each clip's mean over its pairs and scaled to
    unit variance per clip. The official MER input is mostly the subject's face, the same in every frame
    (from clip to clip it varies by ~4% of its size at initialisation); what is left here is how the
    features move, the expression. Parameter-free, so official weights load either way."""
    moving = stacked - stacked.mean(dim=1, keepdim=True)
    return moving / (moving.flatten(1).std(dim=1).view(-1, 1, 1, 1, 1, 1) + 1e-6)


class MOL(nn.Module):
    def __init__(self, num_classes: int = 5, neighbors: int = 4, mer_input: str = "official",
                 mer_dropout: float = 0.5):
        super().__init__()
        if mer_input not in MER_INPUTS:
            raise ValueError(f"mer_input must be one of {MER_INPUTS}, got {mer_input!r}")
        self.num_classes, self.neighbors, self.mer_input = num_classes, neighbors, mer_input
        self.frame_encoder = frame_encoder()
        self.f5c_first = F5C(neighbors)
        self.f5c_second = F5C(neighbors)
        self.flow = FlowDecoder(FEATURES)
        self.landmark_head = LandmarkHead(FEATURES, LANDMARKS)
        self.mer_head = MERHead(num_classes, FEATURES, dropout=mer_dropout)
        # Run every 4-D activation channels-last (faster convolutions on the CPU with oneDNN, and the layout
        # tensor cores want). Frames have one channel, so their layout is ambiguous; channels-last weights
        # in the two convolutions that read them make their outputs channels-last, and each later layer
        # follows its input.
        for conv in (self.frame_encoder[0], self.flow.conv1.conv):
            conv.to(memory_format=torch.channels_last)

    def forward(self, video: torch.Tensor) -> MOLOutput:
        check_video(video)
        b = video.shape[0]
        frames = time_major_frames(video)  # [T*B, 1, H, W]
        # Everything but the flow decoder stays float32 under a bf16 autocast. What tells expressions apart
        # is how a frame's features change over the clip, about 1.5% of their size; bf16 keeps 0.4%, and its
        # rounding flips the graph step's nearest neighbours from frame to frame, a noise 3x that signal.
        # The flow decoder is 94% of the FLOPs, so bf16 keeps nearly all its speed-up.
        with torch.autocast(video.device.type, enabled=False):
            feats = self.frame_encoder(frames)  # [T*B, 128, 16, 16]
            first, second = split_pairs(feats, b)  # [M, 128, 16, 16] each, M = (T-1)*B pairs
            first, second = self.f5c_first(first), self.f5c_second(second)
            landmarks = self.landmark_head(second)  # [M, 136]
            # MER input: the 2(T-1) maps of a clip on a last axis, in the official order
            # (pair 0 first, pair 0 second, pair 1 first, ...).
            stacked = clip_major(torch.stack((first, second), dim=-1), b)  # [B, T-1, 128, 16, 16, 2]
            if self.mer_input == "motion":
                stacked = motion_features(stacked)
            stacked = stacked.permute(0, 2, 3, 4, 1, 5).flatten(4)  # [B, 128, 16, 16, 2(T-1)]
            logits = self.mer_head(stacked)
        flow = self.flow(frames, b, first, second)  # [M, 2, H, W]
        return MOLOutput(
            logits=logits,
            flow=clip_major(flow, b).contiguous(),  # [B, T-1, 2, H, W]
            landmarks=clip_major(landmarks, b).reshape(b, -1, LANDMARKS, 2),
        )


def check_video(video: torch.Tensor) -> None:
    expected = (1, CLIP_LENGTH, FRAME_SIZE, FRAME_SIZE)
    if video.dim() != 5 or tuple(video.shape[1:]) != expected or not video.is_floating_point():
        raise ValueError(
            f"MOL expects a float tensor [B, {', '.join(map(str, expected))}] (clips of {CLIP_LENGTH} grayscale "
            f"{FRAME_SIZE}x{FRAME_SIZE} frames, see mol_model.normalize), got {video.dtype} {list(video.shape)}"
        )
