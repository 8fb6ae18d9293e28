"""The flow head: a FlowNetC-style encoder/decoder that also sees both frames' F5C features.

Per frame pair: a 3-layer conv encoder on each raw frame (128 -> 64 -> 32 -> 16), correlation of the
two 16x16 maps, concatenation with a 1x1 "redirect" of the first map and the two F5C feature maps,
a contracting path down to 2x2, then six refinement levels that each upsample the features and the
current flow estimate, concatenate the encoder map of that scale, and predict a finer flow, ending at
full resolution (level 0, 128x128).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mol_model.clips import split_pairs
from mol_model.convs import Conv2d, ConvTranspose2d
from mol_model.correlation import correlate

LEAK = 0.1
CORR_PATCH, CORR_DILATION = 21, 2


def cat_channels_last(maps: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """Concatenate [N, C_i, H, W] maps along channels into a channels-last result. (torch.cat falls back
    to a contiguous result when one input, like a 1-channel frame, has an ambiguous layout, which would
    cost a layout copy in the next convolution, forward and backward.)"""
    return torch.cat([m.permute(0, 2, 3, 1) for m in maps], dim=3).permute(0, 3, 1, 2)


class ConvBN(nn.Module):
    """Conv (no bias, 'same'-style padding (k-1)//2) + BatchNorm + LeakyReLU(0.1)."""

    def __init__(self, cin: int, cout: int, kernel: int = 3, stride: int = 1):
        super().__init__()
        self.conv = Conv2d(cin, cout, kernel, stride, padding=(kernel - 1) // 2, bias=False)
        self.norm = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(self.norm(self.conv(x)), LEAK, inplace=True)


class RefineLevel(nn.Module):
    """One decoder level: upsample (features, flow) x2, concatenate the skip map, predict flow."""

    def __init__(self, cin: int, cout: int, skip: int):
        super().__init__()
        self.upsample = ConvTranspose2d(2, 2, 4, 2, 1, bias=False)  # coarser flow -> this level
        self.deconv = ConvTranspose2d(cin, cout, 4, 2, 1, bias=False)
        self.predict = Conv2d(skip + cout + 2, 2, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor, flow: torch.Tensor, skip: torch.Tensor):
        up = F.leaky_relu(self.deconv(x), LEAK, inplace=True)
        x = cat_channels_last((skip, up, self.upsample(flow)))
        return x, self.predict(x)


class FlowDecoder(nn.Module):
    """Clips of frames + the F5C features of each consecutive pair -> flow of each pair."""

    def __init__(self, feature_channels: int = 128):
        super().__init__()
        self.conv1 = ConvBN(1, 64, kernel=6, stride=2)
        self.conv2 = ConvBN(64, 128, kernel=4, stride=2)
        self.conv3 = ConvBN(128, 256, kernel=2, stride=2)
        self.conv_redir = ConvBN(256, 32, kernel=1)
        fused = 32 + CORR_PATCH**2 + 2 * feature_channels  # 729
        self.conv3_1 = ConvBN(fused, 256)
        self.conv4 = ConvBN(256, 512, stride=2)
        self.conv4_1 = ConvBN(512, 512)
        self.conv5 = ConvBN(512, 512, stride=2)
        self.conv5_1 = ConvBN(512, 512)
        self.conv6 = ConvBN(512, 1024, stride=2)
        self.conv6_1 = ConvBN(1024, 1024)
        self.predict_flow6 = Conv2d(1024, 2, 3, padding=1, bias=False)
        # level -> (input channels, deconv channels, skip channels); input = previous level's concat
        self.refine = nn.ModuleDict({
            "5": RefineLevel(1024, 512, skip=512),
            "4": RefineLevel(1026, 256, skip=512),
            "3": RefineLevel(770, 128, skip=256),
            "2": RefineLevel(386, 128, skip=128),
            "1": RefineLevel(258, 64, skip=64),
            "0": RefineLevel(130, 32, skip=1),
        })
        for m in self.modules():  # the official FlowNet init
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.kaiming_normal_(m.weight, LEAK)

    def forward(self, frames: torch.Tensor, clips: int, feat_first: torch.Tensor,
                feat_second: torch.Tensor) -> torch.Tensor:
        """frames [T*B, 1, H, W] time-major (clips.py); feat_* [M, C, H/8, W/8] the F5C features of each
        pair's first and second frame, M = (T-1)*B pairs -> flow [M, 2, H, W]."""
        # The encoder runs once per frame, not twice per inner frame as in the official pair loop.
        c1 = self.conv1(frames)  # [T*B, 64, H/2, W/2]
        c2 = self.conv2(c1)  # [T*B, 128, H/4, W/4]
        a3, b3 = split_pairs(self.conv3(c2), clips)  # [M, 256, H/8, W/8] each
        x = cat_channels_last((self.conv_redir(a3), correlate(a3, b3, CORR_PATCH, CORR_DILATION),
                               feat_first, feat_second))  # [M, 729, H/8, W/8]
        c3_1 = self.conv3_1(x)
        c4 = self.conv4_1(self.conv4(c3_1))  # [M, 512, H/16, W/16]
        c5 = self.conv5_1(self.conv5(c4))  # [M, 512, H/32, W/32]
        x = self.conv6_1(self.conv6(c5))  # [M, 1024, H/64, W/64]
        flow = self.predict_flow6(x)
        skips = {"5": c5, "4": c4, "3": c3_1, "2": split_pairs(c2, clips)[0],
                 "1": split_pairs(c1, clips)[0], "0": split_pairs(frames, clips)[0]}
        for name, level in self.refine.items():
            x, flow = level(x, flow, skips[name])
        return flow  # [M, 2, H, W]
