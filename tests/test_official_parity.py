"""MOL equals the official computation.

`OfficialMOL` below is a naive re-statement of the official model (github.com/CYF-cuber/MOL) written from
its definition: the official module tree and key names, the per-pair Python loop with separate frame
encoder calls, the per-channel, per-neighbour edge function (with its x_j - 2 x_i quirk) and a
displacement-loop correlation with zero padding. Its random weights are loaded into `MOL` through
`load_official_state_dict` and both must give the same outputs in eval mode.

The whole-model comparison runs in float64: the graph step's top-k neighbour choice is discontinuous, and
in float32 two correct implementations that merely sum in a different order (batched vs per-pair calls,
channels-last vs contiguous, CPU vs GPU) pick a different 4th neighbour wherever two cosine similarities
tie to ~1e-7, which random weights produce a few times per clip. float64 rounding is far below those
gaps. The parts without top-k (the flow decoder, the correlation) are also compared in float32.
"""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mol_model import MOL, load_official_state_dict
from mol_model.ccc import CCC
from mol_model.correlation import correlate

# ----------------------------------------------------------------------------- naive official reference


def naive_correlation(f1, f2, patch=21, dilation=2):
    """One displacement at a time, second map zero-padded: [N, C, H, W] x2 -> [N, patch^2, H, W]."""
    n, c, h, w = f1.shape
    r = (patch - 1) // 2 * dilation
    padded = F.pad(f2, (r, r, r, r))
    maps = []
    for dy in range(-r, r + 1, dilation):
        for dx in range(-r, r + 1, dilation):
            shifted = padded[:, :, r + dy:r + dy + h, r + dx:r + dx + w]
            maps.append((f1 * shifted).sum(1))
    return F.leaky_relu(torch.stack(maps, 1) / c, 0.1)


def naive_neighbour_differences(x, k):
    """Official get_graph_feature: x [B, C, P] -> d [B, C, P, k], d[b,c,p,j] = x[b,c,nbr_j(p)] - x[b,c,p]."""
    unit = x / x.norm(dim=1, keepdim=True).clamp_min(1e-12)
    idx = (unit.transpose(1, 2) @ unit).topk(k, dim=-1).indices  # [B, P, k]
    out = torch.empty(*x.shape, k, dtype=x.dtype)
    for b in range(x.shape[0]):
        for j in range(k):
            out[b, :, :, j] = x[b][:, idx[b, :, j]] - x[b]
    return out


class OfficialEdgeFeature(nn.Module):
    def __init__(self, dim=256):
        super().__init__()
        self.conv1 = nn.Conv1d(1, dim, dim)
        self.conv2 = nn.Conv1d(1, dim, dim)

    def forward(self, x, d):  # x [B, C, P], d [B, C, P, k] -> [B, C, P]
        channels = []
        for c in range(x.shape[1]):
            x_i = x[:, c:c + 1, :]  # [B, 1, P]
            per_neighbour = []
            for j in range(d.shape[-1]):
                d_j = d[:, c:c + 1, :, j]
                per_neighbour.append(F.relu(self.conv1(x_i) + self.conv2(d_j - x_i)))  # [B, P, 1]
            channels.append(torch.cat(per_neighbour, -1).max(-1).values)
        return torch.stack(channels, 1)


class OfficialFCC(nn.Module):
    def __init__(self, dim=64, meta=32):
        super().__init__()
        self.dim = dim
        self.pre_Norm_1, self.pre_Norm_2 = nn.BatchNorm2d(dim), nn.BatchNorm2d(dim)
        for name, shape in [("1_H", (meta, 1)), ("1_W", (1, meta)), ("2_H", (meta, 1)), ("2_W", (1, meta))]:
            setattr(self, f"meta_kernel_{name}", nn.Conv2d(dim, dim, shape, groups=dim).weight)
            setattr(self, f"meta_{name}_bias", nn.Parameter(torch.randn(dim)))
            setattr(self, f"meta_pe_{name}", nn.Parameter(torch.randn(1, dim, *shape)))
        self.ffn = nn.Sequential(nn.BatchNorm2d(2 * dim), nn.Conv2d(2 * dim, 2, 1), nn.Hardswish(),
                                 nn.Dropout(0.0), nn.Conv2d(2, 2 * dim, 1), nn.Dropout(0.1))

    def forward(self, x):
        x1, x2 = torch.chunk(x, 2, 1)
        s = x1.shape[2]
        pe = {n: getattr(self, f"meta_pe_{n}")[:, :, :s, :s].expand(1, self.dim, s, s)
              for n in ("1_H", "1_W", "2_H", "2_W")}
        k = {n: getattr(self, f"meta_kernel_{n}")[:, :, :s, :s] for n in ("1_H", "1_W", "2_H", "2_W")}
        a, b = self.pre_Norm_1(x1 + pe["1_H"]), self.pre_Norm_2(x2 + pe["1_W"])
        a = F.conv2d(torch.cat((a, a[:, :, :-1, :]), 2), k["1_H"], self.meta_1_H_bias, groups=self.dim)
        b = F.conv2d(torch.cat((b, b[:, :, :, :-1]), 3), k["1_W"], self.meta_1_W_bias, groups=self.dim)
        a, b = a + pe["2_W"], b + pe["2_H"]
        a = F.conv2d(torch.cat((a, a[:, :, :, :-1]), 3), k["2_W"], self.meta_2_W_bias, groups=self.dim)
        b = F.conv2d(torch.cat((b, b[:, :, :-1, :]), 2), k["2_H"], self.meta_2_H_bias, groups=self.dim)
        return torch.cat((x1 + a, x2 + b), 1)


def official_conv(cin, cout, k=3, s=1):
    return nn.Sequential(nn.Conv2d(cin, cout, k, s, (k - 1) // 2, bias=False), nn.BatchNorm2d(cout),
                         nn.LeakyReLU(0.1))


class OfficialFlowNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.conv2, self.conv3 = official_conv(1, 64, 6, 2), official_conv(64, 128, 4, 2), \
            official_conv(128, 256, 2, 2)
        self.conv_redir = official_conv(256, 32, 1)
        self.conv3_1 = official_conv(729, 256)
        self.conv4, self.conv4_1 = official_conv(256, 512, s=2), official_conv(512, 512)
        self.conv5, self.conv5_1 = official_conv(512, 512, s=2), official_conv(512, 512)
        self.conv6, self.conv6_1 = official_conv(512, 1024, s=2), official_conv(1024, 1024)
        deconvs = {5: (1024, 512), 4: (1026, 256), 3: (770, 128), 2: (386, 128), 1: (258, 64), 0: (130, 32)}
        for lvl, (cin, cout) in deconvs.items():
            setattr(self, f"deconv{lvl}", nn.Sequential(nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=False),
                                                        nn.LeakyReLU(0.1)))
        for lvl, cin in {6: 1024, 5: 1026, 4: 770, 3: 386, 2: 258, 1: 130, 0: 35}.items():
            setattr(self, f"predict_flow{lvl}", nn.Conv2d(cin, 2, 3, 1, 1, bias=False))
        for lvl in range(6, 0, -1):
            setattr(self, f"upsampled_flow{lvl}_to_{lvl - 1}", nn.ConvTranspose2d(2, 2, 4, 2, 1, bias=False))

    def forward(self, frames, feat):
        x1, x2 = frames
        c1a = self.conv1(x1)
        c2a = self.conv2(c1a)
        c3a = self.conv3(c2a)
        c3b = self.conv3(self.conv2(self.conv1(x2)))
        x = self.conv3_1(torch.cat([self.conv_redir(c3a), naive_correlation(c3a, c3b), feat], 1))
        skips = {3: x}
        skips[4] = self.conv4_1(self.conv4(skips[3]))
        skips[5] = self.conv5_1(self.conv5(skips[4]))
        x = self.conv6_1(self.conv6(skips[5]))
        skips.update({2: c2a, 1: c1a, 0: x1})
        flow = self.predict_flow6(x)
        for lvl in range(5, -1, -1):
            up = getattr(self, f"upsampled_flow{lvl + 1}_to_{lvl}")(flow)
            x = torch.cat((skips[lvl], getattr(self, f"deconv{lvl}")(x), up), 1)
            flow = getattr(self, f"predict_flow{lvl}")(x)
        return flow


class OfficialConvStack(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv_stack = nn.Sequential(nn.Conv2d(1, 8, 4, 2), nn.Conv2d(8, 32, 3, 2), nn.Conv2d(32, 64, 2, 2, 1),
                                        nn.Conv2d(64, 128, 1))

    def forward(self, x):
        return self.conv_stack(x)


class OfficialLDM(nn.Module):
    def __init__(self):
        super().__init__()
        self.convldm, self.fc1, self.fc2 = nn.Conv2d(128, 32, 3), nn.Linear(6272, 512), nn.Linear(512, 136)

    def forward(self, x):
        return self.fc2(F.relu(self.fc1(F.relu(self.convldm(x)).flatten(1))))


class OfficialMER(nn.Module):
    def __init__(self, cls):
        super().__init__()
        self.conv3d = nn.Conv3d(128, 32, (2, 2, 5), (2, 2, 1))
        self.fc1, self.fc2 = nn.Linear(2560, 256), nn.Linear(256, cls)

    def forward(self, x):
        return self.fc2(F.relu(self.fc1(F.max_pool3d(self.conv3d(x), 2).flatten(1))))  # eval: no dropout


class OfficialMOL(nn.Module):
    def __init__(self, cls=5, k=4):
        super().__init__()
        self.k = k
        self.conv_stack = OfficialConvStack()
        self.FCC_1, self.FCC_2 = OfficialFCC(), OfficialFCC()
        self.CCC_1, self.CCC_2 = OfficialEdgeFeature(), OfficialEdgeFeature()
        self.flownet = OfficialFlowNet()
        self.mer_3dcnn = OfficialMER(cls)
        self.ldm_predictor = OfficialLDM()

    def f5c(self, frame, fcc, ccc):
        feat = fcc(self.conv_stack(frame))
        b, c, h, w = feat.shape
        flat = feat.reshape(b, c, h * w)
        return feat + ccc(flat, naive_neighbour_differences(flat, self.k)).reshape(b, c, h, w)

    def forward(self, video):  # [B, 1, T, H, W] -> logits, flow [B, 2, H, W, T-1], ldm [B, 136, T-1]
        video = video.permute(0, 1, 3, 4, 2)
        stacked, flows, ldms = [], [], []
        for t in range(video.shape[-1] - 1):
            x1, x2 = video[..., t], video[..., t + 1]
            f1, f2 = self.f5c(x1, self.FCC_1, self.CCC_1), self.f5c(x2, self.FCC_2, self.CCC_2)
            stacked += [f1, f2]
            ldms.append(self.ldm_predictor(f2))
            flows.append(self.flownet([x1, x2], torch.cat((f1, f2), 1)))
        return self.mer_3dcnn(torch.stack(stacked, -1)), torch.stack(flows, -1), torch.stack(ldms, -1)


def randomise(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial BatchNorm affine parameters and running statistics and non-zero biases everywhere."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.weight.copy_(0.5 + torch.rand(m.weight.shape, generator=g))
                m.bias.copy_(0.2 * torch.randn(m.bias.shape, generator=g))
                m.running_mean.copy_(0.2 * torch.randn(m.running_mean.shape, generator=g))
                m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=g))
                m.num_batches_tracked.fill_(int(torch.randint(1, 100, (1,), generator=g)))
            elif isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)) and m.bias is not None:
                m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=g))
    return model


def close(ours: torch.Tensor, ref: torch.Tensor, rel: float = 1e-4) -> bool:
    return (ours - ref).abs().max().item() <= rel * ref.abs().max().item() + 1e-6


# ----------------------------------------------------------------------------- tests


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """The naive loops run thousands of tiny ops; on a shared machine one thread is faster for them."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def official():
    torch.manual_seed(0)
    return randomise(OfficialMOL(cls=5)).eval()


def test_outputs_match_official_in_eval_mode(official):
    model = MOL(num_classes=5).eval()
    load_official_state_dict(model, official.state_dict())
    video = torch.randn(1, 1, 8, 128, 128, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    with torch.no_grad():
        ours = model.double()(video)
        logits, flow, ldm = copy.deepcopy(official).double()(video)
    assert close(ours.logits, logits, rel=1e-10)
    assert close(ours.flow, flow.permute(0, 4, 1, 2, 3), rel=1e-10)
    assert close(ours.landmarks, ldm.permute(0, 2, 1).reshape(1, 7, 68, 2), rel=1e-10)
    assert ours.flow.abs().max() > 0 and ours.landmarks.abs().max() > 0  # not trivially zero


def test_flow_decoder_matches_official_in_float32(official):
    model = MOL(num_classes=5).eval()
    load_official_state_dict(model, official.state_dict())
    g = torch.Generator().manual_seed(4)
    frames = torch.randn(8, 2, 1, 128, 128, generator=g)  # time-major: [T, B, ...]
    feats = torch.randn(8, 2, 128, 16, 16, generator=g)
    with torch.no_grad():
        ours = model.flow(frames.flatten(0, 1), 2, feats[:-1].flatten(0, 1), feats[1:].flatten(0, 1))
        ref = torch.cat([official.flownet([frames[t], frames[t + 1]], torch.cat((feats[t], feats[t + 1]), 1))
                         for t in range(7)])
    assert close(ours, ref, rel=1e-5)


def test_correlation_matches_displacement_loop():
    g = torch.Generator().manual_seed(2)
    f1, f2 = torch.randn(3, 16, 16, 16, generator=g), torch.randn(3, 16, 16, 16, generator=g)
    torch.testing.assert_close(correlate(f1, f2), naive_correlation(f1, f2), rtol=1e-5, atol=1e-5)
    # a different geometry: odd sizes, smaller patch, dilation 1
    f1, f2 = torch.randn(2, 4, 7, 9, generator=g), torch.randn(2, 4, 7, 9, generator=g)
    torch.testing.assert_close(correlate(f1, f2, 5, 1), naive_correlation(f1, f2, 5, 1), rtol=1e-5, atol=1e-5)


def test_graph_step_matches_official_loops():
    torch.manual_seed(3)
    ref = randomise(OfficialEdgeFeature(dim=64))
    ccc = CCC(positions=64, neighbors=4)
    ccc.self_proj.weight.data.copy_(ref.conv1.weight.squeeze(1))
    ccc.self_proj.bias.data.copy_(ref.conv1.bias)
    ccc.edge_proj.weight.data.copy_(ref.conv2.weight.squeeze(1))
    ccc.edge_proj.bias.data.copy_(ref.conv2.bias)
    x = torch.randn(2, 12, 8, 8)
    flat = x.reshape(2, 12, 64)
    expected = ref(flat, naive_neighbour_differences(flat, 4)).reshape(2, 12, 8, 8)
    torch.testing.assert_close(ccc(x), expected, rtol=1e-4, atol=1e-5)


def test_loader_accepts_wrapped_and_data_parallel_dicts(official):
    state = official.state_dict()
    model = MOL(num_classes=5)
    load_official_state_dict(model, {"state_dict": {f"module.{k}": v for k, v in state.items()}})
    torch.testing.assert_close(model.flow.refine["0"].deconv.weight, official.flownet.deconv0[0].weight)
    torch.testing.assert_close(model.f5c_second.ccc.edge_proj.weight, official.CCC_2.conv2.weight.squeeze(1))
    assert model.f5c_first.fcc.branch_wh.norm.num_batches_tracked == official.FCC_1.pre_Norm_2.num_batches_tracked


@pytest.mark.parametrize("change, message", [
    (lambda s: s.pop("FCC_1.meta_kernel_2_W"), r"missing keys \(1\): FCC_1.meta_kernel_2_W"),
    (lambda s: s.update({"flownet.conv9.0.weight": torch.zeros(1)}), r"unexpected keys \(1\): flownet.conv9"),
    (lambda s: s.update({"CCC_1.conv1.weight": torch.zeros(256, 256)}),
     r"shape mismatches \(1\): CCC_1.conv1.weight: checkpoint \(256, 256\), expected \(256, 1, 256\)"),
    (lambda s: s.pop("flownet.conv3_1.1.num_batches_tracked"), "missing keys"),
])
def test_loader_is_strict(official, change, message):
    state = dict(official.state_dict())
    change(state)
    model = MOL(num_classes=5)
    before = model.frame_encoder[0].weight.clone()
    with pytest.raises(ValueError, match=message):
        load_official_state_dict(model, state)
    assert torch.equal(model.frame_encoder[0].weight, before)  # nothing half-loaded


def test_loader_rejects_other_class_count(official):
    with pytest.raises(ValueError, match=r"mer_3dcnn.fc2.weight: checkpoint \(5, 256\), expected \(3, 256\)"):
        load_official_state_dict(MOL(num_classes=3), official.state_dict())
