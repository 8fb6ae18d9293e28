"""`mol bench model`: MOL training-step and inference speed and memory, against this machine's matrix
product roof measured in the same run, and against the naive official-style computation.

A training step is forward + joint loss + backward + AdamW (fused) on random clips (B x 8 x 128 x 128);
inference is a forward pass in eval mode under `torch.inference_mode`. FLOPs are counted by
`torch.utils.flop_counter.FlopCounterMode` (convolutions and matrix products; elementwise work is not
counted), so "roof share" = counted FLOP/s / the GFLOP/s of one 4096^2 matrix product in the row's
precision, timed in each row's process right before and after its steps; the best of all those timings
in the run (per device and precision) is the roof (other work on a shared machine can only slow a
measurement down). Timings are the best of `--steps` repetitions after `--warmup`, for the same reason;
the load average is printed with the table.

Every row runs in a fresh process, so rows do not share allocator state. Memory: on CUDA, peak allocated
bytes above those allocated before the first step; on the CPU, the process's peak resident set size
(ru_maxrss) above its RSS before the first step (tracemalloc does not see PyTorch's allocations). Both
include what the first step creates and keeps: gradients and, for training, the AdamW moments (2 x 176 MB).

Precisions: float32 on the CPU, plus bfloat16 autocast where the CPU runs it natively (AVX512-BF16 or
AMX: what `mol train` then uses by default); bfloat16 autocast on CUDA.

On the CPU the rows call `mol_model.memory.keep_freed_memory()` first, as training should
(`--glibc-default-malloc` measures without it).
"""
from __future__ import annotations

import argparse
import importlib.util
import multiprocessing
import os
import resource
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from components.errors import UserError
from components.training.data import ClipSet
from components.training.devices import native_bf16
from components.training.trainer import to_device
from mol_model import MOL, MOLOutput
from mol_model.losses import mol_loss
from mol_model.memory import keep_freed_memory

CLIP = (1, 8, 128, 128)
ROOF_SIZE = 4096
REFERENCE = Path(__file__).resolve().parents[1] / "tests" / "test_official_parity.py"
OURS, NAIVE = "MOL (this)", "official-style (naive)"


@dataclass(frozen=True)
class RowSpec:
    model: str  # OURS or NAIVE
    device: str
    precision: str  # fp32 | bf16 (autocast)
    mode: str  # train | infer
    batch: int
    steps: int
    warmup: int
    threads: int | None
    keep_memory: bool


@dataclass
class Row:
    spec: RowSpec
    precision: str
    seconds: float  # per step (best)
    memory_mib: float
    gflop_per_clip: float
    roof_gflops: float  # matrix-product GFLOP/s measured around this row (best of before/after)
    batch_seconds: float | None  # training rows: making the batch (gather, move, crop, convert)

    @property
    def clips_per_s(self) -> float:
        return self.spec.batch / self.seconds

    @property
    def gflops(self) -> float:
        return self.gflop_per_clip * self.clips_per_s


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--batch-sizes", default="4,16", help="comma-separated batch sizes (default 4,16)")
    parser.add_argument("--steps", type=int, default=3, help="timed repetitions per row; the best counts (default 3)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed repetitions first (default 1)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                        help="auto (default): the CPU, plus CUDA with bf16 autocast when PyTorch sees a GPU")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for PyTorch (default: its own choice)")
    parser.add_argument("--baseline", action="store_true",
                        help="also time the naive official-style model of the parity test (CPU, batch 4, one "
                             "training step; minutes on 2 cores)")
    parser.add_argument("--glibc-default-malloc", action="store_true",
                        help="do not keep freed memory in the process (see mol_model/memory.py)")
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="also print the N most expensive operators of one training step (torch.profiler)")


def random_batch(batch: int, device: torch.device, num_classes: int = 5) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {
        "video": torch.randn(batch, *CLIP, generator=g).to(device),
        "label": torch.randint(0, num_classes, (batch,), generator=g).to(device),
        "flow": torch.randn(batch, 7, 2, 128, 128, generator=g).to(device),
        "landmarks": (torch.rand(batch, 8, 68, 2, generator=g) * 128).to(device),
    }


def batch_seconds(batch: int, device: torch.device, repeats: int = 5) -> float:
    """Seconds to make one training batch as `mol train` does, best of `repeats`: gather `batch` clips
    (uint8 frames, float16 flow at 144x144) with fresh crop offsets, move them, crop and convert there."""
    clips_per_sample, samples = 4, max(2, batch // 2)
    g = np.random.default_rng(0)
    clips = ClipSet([f"s/{i}" for i in range(samples)], np.zeros(samples, np.int64), ["s"] * samples,
                    [g.integers(0, 256, (clips_per_sample, 8, 144, 144), dtype=np.uint8) for _ in range(samples)],
                    [g.normal(size=(clips_per_sample, 7, 2, 144, 144)).astype(np.float16) for _ in range(samples)],
                    [g.uniform(20, 120, (clips_per_sample, 8, 68, 2)).astype(np.float32) for _ in range(samples)])
    best = float("inf")
    for step in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        index = g.choice(len(clips), batch)
        to_device(clips.batch(index, clips.training_offsets(index, 0, step, 0)), device)
        synchronize(device)
        best = min(best, time.perf_counter() - start)
    return best


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def precisions(device: torch.device) -> list[str]:
    """fp32 on the CPU (plus bf16 where native), bf16 on CUDA."""
    if device.type == "cuda":
        return ["bf16"]
    return ["fp32"] + (["bf16"] if native_bf16(device) else [])


def autocast_dtype(precision: str) -> torch.dtype | None:
    return torch.bfloat16 if precision == "bf16" else None


def matmul_roof(device: torch.device, dtype: torch.dtype, repeats: int = 5) -> float:
    """GFLOP/s of a ROOF_SIZE^2 matrix product (best of `repeats`, after one warm-up)."""
    a = torch.randn(ROOF_SIZE, ROOF_SIZE, device=device, dtype=dtype)
    b = torch.randn(ROOF_SIZE, ROOF_SIZE, device=device, dtype=dtype)
    best = float("inf")
    for i in range(repeats + 1):
        synchronize(device)
        start = time.perf_counter()
        a @ b
        synchronize(device)
        if i:
            best = min(best, time.perf_counter() - start)
    return 2 * ROOF_SIZE**3 / best / 1e9


def train_step_fn(model: torch.nn.Module, batch: dict, amp: torch.dtype | None):
    """A closure running one full training step of `model` (which returns a MOLOutput)."""
    # fused: one pass over the 44 M parameters (measured on 2 CPU cores: ~1.5x faster than foreach,
    # ~1.8x the default for-loop)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=1e-3, fused=True)
    device_type = batch["video"].device.type

    def step():
        with torch.autocast(device_type, dtype=amp or torch.bfloat16, enabled=amp is not None):
            out = model(batch["video"])
        loss = mol_loss(out, batch["label"], batch["flow"], batch["landmarks"])["total"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def infer_fn(model: torch.nn.Module, batch: dict, amp: torch.dtype | None):
    device_type = batch["video"].device.type

    @torch.inference_mode()
    def infer():
        with torch.autocast(device_type, dtype=amp or torch.bfloat16, enabled=amp is not None):
            model(batch["video"])

    return infer


class OfficialAdapter(torch.nn.Module):
    """The naive official reference with MOL's output layout, so the same step code drives both."""

    def __init__(self, reference: torch.nn.Module):
        super().__init__()
        self.reference = reference

    def forward(self, video):
        logits, flow, ldm = self.reference(video)  # flow [B, 2, H, W, T-1], ldm [B, 136, T-1]
        return MOLOutput(logits, flow.permute(0, 4, 1, 2, 3), ldm.transpose(1, 2).reshape(video.shape[0], -1, 68, 2))


def load_official_reference() -> torch.nn.Module:
    """The naive official-style model of the parity test (present in a source checkout only)."""
    spec = importlib.util.spec_from_file_location("mol_official_reference", REFERENCE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return OfficialAdapter(module.OfficialMOL(cls=5))


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def measure_row(spec: RowSpec) -> Row:
    """Time one row (run in a fresh process)."""
    if spec.threads:
        torch.set_num_threads(spec.threads)
    device = torch.device(spec.device)
    if spec.keep_memory and device.type == "cpu":
        keep_freed_memory()
    torch.manual_seed(0)
    model = (MOL(num_classes=5) if spec.model == OURS else load_official_reference()).to(device)
    model.train(spec.mode == "train")
    amp = autocast_dtype(spec.precision)
    roof = matmul_roof(device, amp or torch.float32)
    fn = (train_step_fn if spec.mode == "train" else infer_fn)(model, random_batch(spec.batch, device), amp)
    synchronize(device)
    start_memory = torch.cuda.memory_allocated(device) if device.type == "cuda" else rss_bytes()
    for _ in range(spec.warmup):
        fn()
    best = float("inf")
    for _ in range(spec.steps):
        synchronize(device)
        start = time.perf_counter()
        fn()
        synchronize(device)
        best = min(best, time.perf_counter() - start)
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device)
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kB on Linux
    roof = max(roof, matmul_roof(device, amp or torch.float32))
    with FlopCounterMode(display=False) as counter:
        fn()
    precision = "fp32" if amp is None else f"{str(amp).removeprefix('torch.')} autocast"
    flops = counter.get_total_flops() / spec.batch / 1e9
    making = batch_seconds(spec.batch, device) if spec.mode == "train" and spec.model == OURS else None
    return Row(spec, precision, best, (peak - start_memory) / 2**20, flops, roof, making)


def in_fresh_process(spec: RowSpec) -> Row:
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(measure_row, spec).result()


def devices(choice: str) -> list[torch.device]:
    if choice == "auto":
        return [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    if choice == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda was asked for but PyTorch sees no CUDA device; use --device cpu")
    return [torch.device(choice)]


def profile_table(device: torch.device, batch: int, rows: int) -> str:
    from torch.profiler import ProfilerActivity, profile

    model = MOL(num_classes=5).to(device).train()
    step = train_step_fn(model, random_batch(batch, device), autocast_dtype(precisions(device)[-1]))
    step()
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities, record_shapes=True) as prof:
        step()
        synchronize(device)
    key = "cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    return prof.key_averages(group_by_input_shape=True).table(sort_by=key, row_limit=rows,
                                                              max_name_column_width=36, max_shapes_column_width=80)


def run(batch_sizes=(4, 16), steps: int = 3, warmup: int = 1, device: str = "auto", threads: int | None = None,
        baseline: bool = False, keep_memory: bool = True, profile: int = 0) -> list[Row]:
    """Measure every row (each in a fresh process), print the table and return the rows."""
    if threads:
        torch.set_num_threads(threads)
    load_before = os.getloadavg()[0]
    rows = []
    for dev in devices(device):
        specs = [RowSpec(OURS, dev.type, precision, mode, batch, steps, warmup, threads, keep_memory)
                 for precision in precisions(dev) for batch in batch_sizes for mode in ("train", "infer")]
        if baseline and dev.type == "cpu":
            if REFERENCE.is_file():
                specs.append(RowSpec(NAIVE, "cpu", "fp32", "train", 4, 1, 0, threads, keep_memory))
            else:
                print("(the naive official reference lives in tests/; run from a source checkout for that row)")
        for spec in specs:
            rows.append(in_fresh_process(spec))
            print(f"  {spec.model} {spec.device} {spec.precision} {spec.mode} batch {spec.batch}: "
                  f"{rows[-1].clips_per_s:.2f} clips/s", flush=True)
        if profile:
            print(profile_table(dev, batch_sizes[0], profile))
    print(format_table(rows, (load_before, os.getloadavg()[0])))
    return rows


def format_table(rows: list[Row], load: tuple[float, float]) -> str:
    roofs: dict[tuple[str, str], float] = {}  # (device, precision) -> best roof seen in the run
    for r in rows:
        key = (r.spec.device, r.precision)
        roofs[key] = max(roofs.get(key, 0.0), r.roof_gflops)
    header = ("model", "device", "precision", "mode", "batch", "s/step", "clips/s", "peak MiB", "GFLOP/clip",
              "GFLOP/s", "roof share", "batch ms", "batch share")
    lines = [(r.spec.model, r.spec.device, r.precision, r.spec.mode, str(r.spec.batch), f"{r.seconds:.3f}",
              f"{r.clips_per_s:.2f}", f"{r.memory_mib:.0f}", f"{r.gflop_per_clip:.1f}", f"{r.gflops:.0f}",
              f"{r.gflops / roofs[r.spec.device, r.precision]:.2f}",
              "-" if r.batch_seconds is None else f"{1000 * r.batch_seconds:.1f}",
              "-" if r.batch_seconds is None else f"{r.batch_seconds / (r.batch_seconds + r.seconds):.3f}")
             for r in rows]
    widths = [max([len(h)] + [len(line[i]) for line in lines]) for i, h in enumerate(header)]
    fmt = "  ".join(f"{{:{'<' if i < 4 else '>'}{w}}}" for i, w in enumerate(widths))
    table = [fmt.format(*header), fmt.format(*("-" * w for w in widths))] + [fmt.format(*line) for line in lines]
    for (device, precision), roof in roofs.items():
        table.append(f"roof ({device} {precision}): {ROOF_SIZE}^2 matrix product, best of the run: {roof:.0f} GFLOP/s")
    table.append("batch ms: making a training batch as `mol train` does (gather clips stored at 144x144, move, "
                 "cut a fresh 128x128 crop, convert); batch share: of that plus the step")
    table.append(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads; "
                 f"1-min load average {load[0]:.1f} before, {load[1]:.1f} after")
    return "\n".join(table)
