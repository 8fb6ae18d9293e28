"""MOL's contract: shapes, parameter counts, which frames feed which output, gradients, precisions."""
from __future__ import annotations

import platform
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from mol_model import MOL, MOLOutput
from mol_model.convs import Conv2d, ConvTranspose2d
from mol_model.model import motion_features


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return MOL(num_classes=5).eval()


@pytest.fixture(scope="module")
def video():
    return torch.randn(2, 1, 8, 128, 128, generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="module")
def output(model, video):
    with torch.no_grad():
        return model(video)


@pytest.mark.parametrize("classes, count", [(3, 44_104_865), (5, 44_105_379)])
def test_parameter_count_equals_official(classes, count):
    assert sum(p.numel() for p in MOL(num_classes=classes).parameters()) == count


def test_output_shapes(output):
    assert isinstance(output, MOLOutput)
    assert output.logits.shape == (2, 5)
    assert output.flow.shape == (2, 7, 2, 128, 128)
    assert output.landmarks.shape == (2, 7, 68, 2)
    assert all(torch.isfinite(t).all() for t in output)


def test_clips_in_a_batch_do_not_mix(model, video, output):
    with torch.no_grad():
        alone = model(video[1:])
    for ours, batched in zip(alone, output):
        torch.testing.assert_close(ours, batched[1:], rtol=1e-4, atol=1e-4)


def test_each_pair_sees_only_its_frames(model, video, output):
    changed = video.clone()
    changed[:, :, 5] += 1.0  # frame 5 belongs to pairs 4 (4, 5) and 5 (5, 6) only
    with torch.no_grad():
        out = model(changed)
    moved = lambda a, b: (a - b).flatten(2).abs().amax(-1).amax(0) > 1e-5  # noqa: E731  per pair
    assert moved(out.flow, output.flow).tolist() == [False] * 4 + [True, True, False]
    # landmarks t are those of frame t + 1 (the second frame of pair t)
    assert moved(out.landmarks, output.landmarks).tolist() == [False] * 4 + [True, False, False]
    assert not torch.allclose(out.logits, output.logits)


def test_motion_features_keep_only_how_a_clip_moves():
    stacked = torch.randn(3, 7, 4, 2, 2, 2, generator=torch.Generator().manual_seed(2))  # [B, T-1, C, H, W, 2]
    moving = motion_features(stacked)
    torch.testing.assert_close(moving.mean(dim=1), torch.zeros_like(moving[:, 0]), atol=1e-6, rtol=0)
    torch.testing.assert_close(moving.flatten(1).std(dim=1), torch.ones(3), atol=1e-5, rtol=0)
    # the face (constant over the clip) and the clip's feature scale do not reach the MER head
    face = torch.randn(3, 1, 4, 2, 2, 2, generator=torch.Generator().manual_seed(3))
    scale = torch.tensor([0.1, 1.0, 30.0]).view(3, 1, 1, 1, 1, 1)
    torch.testing.assert_close(motion_features(scale * stacked + face), moving, atol=1e-5, rtol=1e-5)


def test_motion_input_changes_only_the_logits(model, video, output):
    motion = MOL(num_classes=5, mer_input="motion").eval()
    motion.load_state_dict(model.state_dict())  # same weights: the option adds none
    with torch.no_grad():
        out = motion(video)
    torch.testing.assert_close(out.flow, output.flow)
    torch.testing.assert_close(out.landmarks, output.landmarks)
    assert not torch.allclose(out.logits, output.logits)
    with pytest.raises(ValueError, match="mer_input"):
        MOL(mer_input="flow")


def test_rejects_wrong_input_shape(model):
    with pytest.raises(ValueError, match=r"\[B, 1, 8, 128, 128\]"):
        model(torch.zeros(1, 8, 128, 128))
    with pytest.raises(ValueError, match="float"):
        model(torch.zeros(1, 1, 8, 128, 128, dtype=torch.uint8))


def test_training_step_reaches_every_used_parameter():
    torch.manual_seed(2)
    net = MOL(num_classes=3).train()
    out = net(torch.randn(1, 1, 8, 128, 128))
    (out.logits.square().sum() + out.flow.square().mean() + out.landmarks.square().mean()).backward()
    unused = {name for name, _ in net.named_parameters() if ".ffn." in name}  # the official dead FFN
    assert len(unused) == 2 * 2 * 3  # 2 blocks x (BN, conv, conv) x (weight + bias)
    for name, p in net.named_parameters():
        if name in unused:
            assert p.grad is None, name
        else:
            assert p.grad is not None and p.grad.abs().sum() > 0, name
    bn = net.flow.conv1.norm
    assert bn.num_batches_tracked == 1  # one BatchNorm call per step for all frames


def test_bfloat16_autocast_on_cpu(model, video, output):
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(video)
    assert out.flow.dtype == torch.bfloat16
    assert torch.isfinite(out.flow.float()).all()
    assert (out.flow.float() - output.flow).abs().max() < 0.1 * output.flow.abs().max() + 0.05
    # Only the flow decoder runs in bf16: the expression and landmark path is the float32 computation
    # (in bf16 its rounding noise is three times the frame-to-frame change the MER head reads).
    assert out.logits.dtype == out.landmarks.dtype == torch.float32
    torch.testing.assert_close(out.logits, output.logits)
    torch.testing.assert_close(out.landmarks, output.landmarks)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu(model, video, output):
    gpu = MOL(num_classes=5).eval().cuda()
    gpu.load_state_dict(model.state_dict())
    with torch.no_grad(), torch.backends.cudnn.flags(enabled=True, allow_tf32=False):
        out = gpu(video.cuda())
    for ours, ref in zip(out, output):
        torch.testing.assert_close(ours.cpu(), ref, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("cin, cout, kernel, stride, size", [(16, 24, 3, 1, 2), (16, 24, 3, 2, 4), (8, 4, 1, 1, 2)])
def test_tiny_map_conv_matches_torch(cin, cout, kernel, stride, size):
    torch.manual_seed(3)
    conv = Conv2d(cin, cout, kernel, stride, padding=(kernel - 1) // 2, bias=False)
    x = torch.randn(3, cin, size, size, requires_grad=True)
    ours = conv(x)
    ref = F.conv2d(x, conv.weight, stride=stride, padding=(kernel - 1) // 2)
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)
    grad = torch.randn_like(ref)
    ours_grads = torch.autograd.grad(ours, (x, conv.weight), grad)
    torch.testing.assert_close(ours_grads, torch.autograd.grad(ref, (x, conv.weight), grad), rtol=1e-5, atol=1e-5)


def test_tiny_map_conv_transpose_matches_torch():
    torch.manual_seed(4)
    deconv = ConvTranspose2d(16, 6, 4, 2, 1, bias=False)
    x = torch.randn(3, 16, 2, 2, requires_grad=True)
    ours = deconv(x)
    ref = F.conv_transpose2d(x, deconv.weight, stride=2, padding=1)
    assert ours.shape == (3, 6, 4, 4)
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)
    grad = torch.randn_like(ref)
    ours_grads = torch.autograd.grad(ours, (x, deconv.weight), grad)
    torch.testing.assert_close(ours_grads, torch.autograd.grad(ref, (x, deconv.weight), grad), rtol=1e-5, atol=1e-5)


def test_keep_freed_memory_on_glibc():
    # in a child process: the setting lasts for the life of the process
    code = "from mol_model.memory import keep_freed_memory; print(keep_freed_memory())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == str(platform.system() == "Linux" and platform.libc_ver()[0] == "glibc")


def quick_roof() -> None:
    import benchmarks.model

    benchmarks.model.ROOF_SIZE = 256  # a quick roof; its value is not checked


def test_benchmark_row_measures_speed_and_flops():
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from benchmarks.model import OURS, RowSpec, format_table, measure_row

    # a fresh process, as the benchmark runs rows: this one's peak memory (earlier tests) would hide the row's
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"), initializer=quick_roof) as pool:
        row = pool.submit(measure_row, RowSpec(OURS, "cpu", "fp32", "infer", batch=1, steps=1, warmup=0,
                                               threads=None, keep_memory=False)).result()
    assert row.seconds > 0 and row.memory_mib > 0
    assert 29 < row.gflop_per_clip < 31  # convolutions + matrix products of one forward pass
    assert row.roof_gflops > 0
    table = format_table([row], (1.0, 1.0))
    assert "MOL (this)" in table and "infer" in table and "roof (cpu fp32)" in table


def test_bench_cli_rejects_bad_batch_sizes(capsys):
    from components.cli import main

    assert main(["bench", "model", "--batch-sizes", "4,x"]) == 2
    assert "--batch-sizes" in capsys.readouterr().err


def test_inference_then_training_in_one_process():
    """Caches built during an inference-mode call must not break a later training step."""
    from mol_model.correlation import correlate, displacement_index

    displacement_index.cache_clear()
    f1, f2 = torch.randn(1, 4, 6, 6), torch.randn(1, 4, 6, 6)
    with torch.inference_mode():
        correlate(f1, f2, patch=3, dilation=1)
    f1.requires_grad_(True)
    correlate(f1, f2, patch=3, dilation=1).sum().backward()
    assert f1.grad is not None and f1.grad.abs().sum() > 0
