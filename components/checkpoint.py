"""Model files: safetensors weights with the model's configuration in the file's metadata.

A model file is self-describing (class count, class names, neighbours, input normalisation), so
`mol predict`, MLflow and tests can rebuild the network from the file alone, without pickle.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, safe_open, save_file

from components.errors import UserError
from components.fileio import atomic_path

CONFIG_KEY = "mol_config"


def save_model(path: str | Path, model: torch.nn.Module, config: dict) -> None:
    """Write `model`'s weights and `config` (JSON-able: num_classes, neighbors, class_names, ...)."""
    tensors = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    with atomic_path(path, suffix=".safetensors") as tmp:
        save_file(tensors, str(tmp), metadata={CONFIG_KEY: json.dumps(config)})


def read_config(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"model file {path} does not exist; train one with `mol train` or pass --model")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception as e:  # safetensors raises its own error types for a damaged header
        raise UserError(f"{path} is not a readable safetensors model file ({e})") from None
    if CONFIG_KEY not in meta:
        raise UserError(f"{path} has no '{CONFIG_KEY}' metadata; was it written by `mol train`?")
    return json.loads(meta[CONFIG_KEY])


def load_model(path: str | Path, device: str | torch.device = "cpu"):
    """Rebuild the MOL network from a model file. Returns (model in eval mode, config)."""
    from mol_model import MOL

    config = read_config(path)
    model = MOL(num_classes=int(config["num_classes"]), neighbors=int(config.get("neighbors", 4)),
                mer_input=config.get("mer_input", "official"))
    model.load_state_dict(load_file(str(path)), strict=True)
    return model.to(device).eval(), config
