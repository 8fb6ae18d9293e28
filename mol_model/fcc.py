"""FCC: the "fully-connected convolution" half of an F5C block.

Half of the channels are mixed along H and then along W, the other half along W and then H, each time
by a depthwise convolution whose kernel is as long as the feature map and whose padding is circular,
so every output position sees the whole row or column. Learnt positional encodings are added before
each convolution and the result is added back to the input (residual).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

AXIS_DIM = {"h": 2, "w": 3}  # tensor dimension of each spatial axis in [N, C, H, W]


def circular_conv(x: torch.Tensor, kernel: torch.Tensor, bias: torch.Tensor, axis: str) -> torch.Tensor:
    """Depthwise 1-D cross-correlation along `axis` with wrap-around.

    x [N, C, H, W]; kernel [C, 1, S, 1] (axis 'h') or [C, 1, 1, S] (axis 'w') with S the size of that
    axis; out[..., i, ...] = sum_k kernel[k] * x[..., (i + k) mod S, ...] + bias.
    """
    dim = AXIS_DIM[axis]
    size = x.shape[dim]
    wrapped = torch.cat((x, x.narrow(dim, 0, size - 1)), dim=dim)  # [.., 2S-1, ..]: no padding needed
    return F.conv2d(wrapped, kernel, bias, groups=x.shape[1])


class AxialBranch(nn.Module):
    """One half of FCC: BatchNorm, then a circular conv along `first`, then along `second`.

    The meta kernels and positional encodings are `meta_size` long and cropped to the feature size,
    as in the official code (32 long, cropped to 16 for 128x128 frames).
    """

    def __init__(self, channels: int, first: str, meta_size: int = 32):
        super().__init__()
        self.first, self.second = first, "w" if first == "h" else "h"
        self.norm = nn.BatchNorm2d(channels)
        self.pe1 = nn.Parameter(torch.randn(_axis_shape(1, channels, meta_size, self.first)))
        self.kernel1 = nn.Parameter(torch.empty(_axis_shape(channels, 1, meta_size, self.first)))
        self.bias1 = nn.Parameter(torch.randn(channels))
        self.pe2 = nn.Parameter(torch.randn(_axis_shape(1, channels, meta_size, self.second)))
        self.kernel2 = nn.Parameter(torch.empty(_axis_shape(channels, 1, meta_size, self.second)))
        self.bias2 = nn.Parameter(torch.randn(channels))
        # Same init as the depthwise nn.Conv2d whose weight the official code borrows.
        for kernel in (self.kernel1, self.kernel2):
            nn.init.kaiming_uniform_(kernel, a=5**0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [N, C, S, S] -> [N, C, S, S]
        size = x.shape[-1]
        y = self.norm(x + _crop(self.pe1, self.first, size))
        y = circular_conv(y, _crop(self.kernel1, self.first, size), self.bias1, self.first)
        y = y + _crop(self.pe2, self.second, size)
        y = circular_conv(y, _crop(self.kernel2, self.second, size), self.bias2, self.second)
        return x + y


class FCC(nn.Module):
    """[N, 2*half, S, S] -> same shape. First half: H then W; second half: W then H."""

    def __init__(self, half: int = 64, meta_size: int = 32, ffn_hidden: int = 2):
        super().__init__()
        self.branch_hw = AxialBranch(half, "h", meta_size)
        self.branch_wh = AxialBranch(half, "w", meta_size)
        # Built but never called by the official forward; kept so the parameter count and the official
        # state dicts match (see docs/model.md). It receives no gradient.
        self.ffn = nn.Sequential(
            nn.BatchNorm2d(2 * half),
            nn.Conv2d(2 * half, ffn_hidden, 1),
            nn.Hardswish(),
            nn.Dropout(0.0),
            nn.Conv2d(ffn_hidden, 2 * half, 1),
            nn.Dropout(0.1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x_hw, x_wh = torch.chunk(x, 2, dim=1)
        return torch.cat((self.branch_hw(x_hw), self.branch_wh(x_wh)), dim=1)


def _axis_shape(lead: int, channels: int, length: int, axis: str) -> tuple[int, int, int, int]:
    return (lead, channels, length, 1) if axis == "h" else (lead, channels, 1, length)


def _crop(t: torch.Tensor, axis: str, size: int) -> torch.Tensor:
    return t.narrow(AXIS_DIM[axis], 0, size)
