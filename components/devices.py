"""Choosing the torch device from a user's `--device` value."""
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
