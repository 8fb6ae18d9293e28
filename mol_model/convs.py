"""Conv2d / ConvTranspose2d that run tiny feature maps as one matrix product on the CPU.

On maps of a few pixels (the flow decoder's 2x2 level: 1024 channels, 3x3 kernels) oneDNN's direct
convolution reaches only ~20% of the CPU's matrix-product rate, forward and backward, while the
unfolded input is tiny. There, im2col + one GEMM (and GEMM + col2im for the transposed convolution)
is 3-4x faster. Elsewhere, and on GPUs, the stock kernels are used. Parameters and state-dict keys are
those of the torch.nn classes.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

TINY_MAP = 4  # at most this many pixels on the small side of the convolution (2x2)


def _use_gemm(module: nn.modules.conv._ConvNd, x: torch.Tensor, small_side: int) -> bool:
    return (x.device.type == "cpu" and small_side <= TINY_MAP and module.bias is None and module.groups == 1
            and module.padding_mode == "zeros" and module.dilation == (1, 1))


class Conv2d(nn.Conv2d):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        oh, ow = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
        if not _use_gemm(self, x, oh * ow):
            return super().forward(x)
        cols = F.unfold(x, self.kernel_size, padding=self.padding, stride=self.stride)  # [N, Cin*kh*kw, oh*ow]
        cols = cols.transpose(1, 2).reshape(n * oh * ow, -1)
        out = cols @ self.weight.reshape(self.out_channels, -1).t()  # [N*oh*ow, Cout]
        return out.view(n, oh, ow, -1).permute(0, 3, 1, 2)  # channels-last strides, no copy


class ConvTranspose2d(nn.ConvTranspose2d):
    def forward(self, x: torch.Tensor, output_size=None) -> torch.Tensor:
        n, cin, h, w = x.shape
        if output_size is not None or self.output_padding != (0, 0) or not _use_gemm(self, x, h * w):
            return super().forward(x, output_size)
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        cols = x.permute(0, 2, 3, 1).reshape(n * h * w, cin) @ self.weight.reshape(cin, -1)  # [N*h*w, Cout*kh*kw]
        cols = cols.view(n, h * w, -1).transpose(1, 2)
        size = ((h - 1) * sh - 2 * ph + kh, (w - 1) * sw - 2 * pw + kw)
        out = F.fold(cols, size, self.kernel_size, padding=self.padding, stride=self.stride)  # [N, Cout, H, W]
        return out.contiguous(memory_format=torch.channels_last)
