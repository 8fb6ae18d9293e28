"""Choosing the torch device from a user's `--device` value, and where bf16 autocast runs."""
from __future__ import annotations

import torch

from components.errors import UserError


def pick_device(name: str) -> torch.device:
    """`auto` -> CUDA when PyTorch sees a GPU, else CPU; otherwise the named device, checked."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"--device {name} is not a device name; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {name} asks for CUDA but no GPU is usable here; pass --device cpu")
    return device


def native_bf16(device: torch.device) -> bool:
    """Whether bfloat16 autocast runs natively here (and so faster than float32): CUDA GPUs that support
    it, and CPUs with AVX512-BF16 or AMX (1.6-1.9x per training step measured on an AVX512-BF16 CPU).
    Elsewhere bf16 would be emulated, slower than float32."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":  # torch.cpu's probes are private: treat a missing one as "no"
        probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
        return any(getattr(torch.cpu, probe, lambda: False)() for probe in probes)
    return False


def bf16_autocast(device: torch.device, enabled: bool | None = None) -> torch.autocast:
    """bfloat16 autocast on `device`, by default on exactly where bf16 is native. Inside it MOL runs only
    its flow decoder in bf16 (94% of the FLOPs); logits and landmarks are the float32 ones."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=native_bf16(device) if enabled is None else enabled)


def uses_bf16(precision: str, device: torch.device) -> bool:
    """Whether a `precision` setting (auto, bf16, fp32) runs bf16 autocast on `device`."""
    return native_bf16(device) if precision == "auto" else precision == "bf16"


def precision_label(bf16: bool) -> str:
    """How a run's numbers were computed, as metrics.json and prediction.json record it."""
    return "bf16 autocast (flow decoder)" if bf16 else "fp32"
