"""Model files: safetensors weights with the model's configuration in the file's metadata, so `mol
predict`, MLflow and tests rebuild the network from the file alone (class count and names, neighbours,
MER input, input normalisation), without pickle. And checkpoints of the official MOL code (`.pth` state
dicts), read with `weights_only=True`.

The MLflow pyfunc model imports this module: keep its imports to torch, safetensors, numpy and pandas.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, safe_open, save_file

from components.errors import UserError
from components.io import atomic_path
from mol_model import MOL, load_official_state_dict

CONFIG_KEY = "mol_config"
NORMALIZATION = "x/127.5-1"
# Class order of the official code's 3-class data (surprise, positive, negative folders in that order).
# Its 5-class order depends on the data set (CASME II vs SAMM), so 5-class files need class names given.
OFFICIAL_CLASS_NAMES = {3: ["surprise", "positive", "negative"]}


# ---- model files ----

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
    config = read_config(path)
    model = MOL(num_classes=int(config["num_classes"]), neighbors=int(config["neighbors"]),
                mer_input=config["mer_input"])
    model.load_state_dict(load_file(str(path)), strict=True)
    return model.to(device).eval(), config



def class_names(config: dict) -> list[str]:
    """A model file's class names (generic `class_<i>` where it has none)."""
    return list(config.get("class_names") or generic_class_names(int(config["num_classes"])))


def generic_class_names(count: int) -> list[str]:
    return [f"class_{i}" for i in range(count)]


def load_official_checkpoint(path: Path, classes: int) -> MOL:
    """A `.pth` state dict saved by the official code, in a `MOL` of `classes` classes (CPU, eval mode)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)  # weights only: no code is unpickled
    except Exception as e:  # torch raises pickle, zip and runtime errors alike for a bad file
        raise UserError(f"{path} is not a readable PyTorch state dict ({str(e).splitlines()[0]})") from None
    if not isinstance(state, dict):
        raise UserError(f"{path} holds a {type(state).__name__}, not a state dict of the official MOL code")
    network = MOL(num_classes=classes)
    try:
        load_official_state_dict(network, state)
    except ValueError as e:
        raise UserError(f"{path}: {e} (is --classes {classes} right?)") from None
    return network.eval()
