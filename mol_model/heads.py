"""The landmark head (per second frame of each pair) and the MER head (over all 14 pair features)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class LandmarkHead(nn.Module):
    """F5C features [N, 128, 16, 16] -> 68 (x, y) landmarks as 136 interleaved values [N, 136]."""

    def __init__(self, channels: int = 128, points: int = 68):
        super().__init__()
        self.conv = nn.Conv2d(channels, 32, 3)
        self.fc1 = nn.Linear(32 * 14 * 14, 512)
        self.fc2 = nn.Linear(512, 2 * points)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv(x)).flatten(1)  # [N, 6272]
        return self.fc2(F.relu(self.fc1(x)))


class MERHead(nn.Module):
    """Stacked pair features [B, 128, 16, 16, 14] -> class logits [B, num_classes]."""

    def __init__(self, num_classes: int, channels: int = 128, dropout: float = 0.5):
        super().__init__()
        self.conv = nn.Conv3d(channels, 32, kernel_size=(2, 2, 5), stride=(2, 2, 1))
        self.pool = nn.MaxPool3d(2)
        self.dropout = nn.Dropout(dropout)
        self.fc1 = nn.Linear(32 * 4 * 4 * 5, 256)
        self.fc2 = nn.Linear(256, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.dropout(self.pool(self.conv(x))).flatten(1)  # [B, 32, 4, 4, 5] -> [B, 2560]
        return self.fc2(self.dropout(F.relu(self.fc1(x))))
