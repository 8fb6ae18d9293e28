"""FlowNetC correlation as one batched matrix product plus a gather.

For every position p of the first feature map and every displacement d of a (patch x patch) grid with
step `dilation`, corr[d, p] = <f1[:, p], f2[:, p + d]> (zero where p + d falls outside the map). This
is what the official code gets from `spatial_correlation_sample(kernel_size=1, patch_size=21,
dilation_patch=2)` on the CPU in a loop; here all position pairs come from one matmul
(P x P per sample, cheap at 16 x 16) and the displacements are picked out with a precomputed index.
"""
from __future__ import annotations

import functools

import torch
import torch.nn.functional as F


@functools.lru_cache(maxsize=8)
def displacement_index(height: int, width: int, patch: int, dilation: int, device: torch.device) -> torch.Tensor:
    """[P, D] long: for position p and displacement d (row-major over dy, then dx), the flat index
    p + d in the second map, or P (a zero column) where that falls outside. P = H*W, D = patch**2."""
    # Built outside inference mode whatever the caller's mode: the cached index is shared with later
    # training steps, and autograd refuses tensors created in inference mode.
    with torch.inference_mode(False):
        radius = (patch - 1) // 2
        steps = torch.arange(-radius, radius + 1) * dilation  # [patch]
        ys, xs = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
        ty = ys.reshape(-1, 1, 1) + steps.view(1, -1, 1)  # [P, patch, 1]
        tx = xs.reshape(-1, 1, 1) + steps.view(1, 1, -1)  # [P, 1, patch]
        inside = (ty >= 0) & (ty < height) & (tx >= 0) & (tx < width)
        target = torch.where(inside, ty * width + tx, height * width)
        return target.reshape(height * width, patch * patch).to(device)


def correlate(f1: torch.Tensor, f2: torch.Tensor, patch: int = 21, dilation: int = 2) -> torch.Tensor:
    """[N, C, H, W] x2 -> [N, patch*patch, H, W], divided by C, then LeakyReLU(0.1) as in FlowNetC."""
    n, c, h, w = f1.shape
    scores = f1.flatten(2).transpose(1, 2) @ f2.flatten(2)  # [N, P, P]: all position pairs
    scores = F.pad(scores, (0, 1))  # [N, P, P+1]: column P is the zero "outside" score
    index = displacement_index(h, w, patch, dilation, scores.device)
    picked = scores.gather(2, index.expand(n, -1, -1))  # [N, P, D]
    corr = picked.view(n, h, w, patch * patch).permute(0, 3, 1, 2)  # [N, D, H, W], channels_last strides
    return F.leaky_relu(corr.div_(c), 0.1, inplace=True)  # in place: `picked` is a fresh tensor
