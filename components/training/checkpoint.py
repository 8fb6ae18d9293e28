"""Model files: safetensors weights with the model's configuration in the file's metadata, so `mol
predict`, MLflow and tests rebuild the network from the file alone (class count and names, neighbours,
MER input, input normalisation), without pickle. And checkpoints of the official MOL code (`.pth` state
dicts), read with `weights_only=True`.

The MLflow pyfunc model imports this module: keep its imports to torch, safetensors, numpy and pandas.
"""
from __future__ import annotations

import json
import pickle
import re
from pathlib import Path

import torch
from safetensors.torch import load_file, safe_open, save_file

from components.errors import UserError
from components.io import atomic_path
from mol_model import MOL, load_official_state_dict
from mol_model.model import FEATURE_SIZE, MER_INPUTS

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
    """A model file's configuration, checked: every value the network is rebuilt from is present, of
    its type and in range, so a damaged or hand-edited file is one clear error, not a traceback."""
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
    try:
        config = json.loads(meta[CONFIG_KEY])
    except json.JSONDecodeError as e:
        raise UserError(f"{path}: its '{CONFIG_KEY}' metadata is not JSON ({e}); retrain or re-export the model") \
            from None
    return _checked_config(config, path)


def _checked_config(config: object, path: Path) -> dict:
    def bad(what: str) -> UserError:
        return UserError(f"{path}: '{CONFIG_KEY}' {what}; the file was damaged or edited: use the file "
                         "`mol train` wrote")

    if not isinstance(config, dict):
        raise bad(f"is a {type(config).__name__}, not a mapping")
    config = {"mer_input": MER_INPUTS[0], **config}  # files from before mer_input existed: the official head
    for key, low, high in (("num_classes", 1, 10_000), ("neighbors", 1, FEATURE_SIZE ** 2)):
        value = config.get(key)
        whole = (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, float) and value.is_integer())
        if not whole or not low <= value <= high:
            raise bad(f"has {key} {value!r}, not a whole number in {low}..{high}")
        config[key] = int(value)
    if config["mer_input"] not in MER_INPUTS:
        raise bad(f"has mer_input {config['mer_input']!r}, not one of {', '.join(MER_INPUTS)}")
    names = config.get("class_names")
    if names is not None and (not isinstance(names, list) or len(names) != config["num_classes"]
                              or not all(isinstance(n, str) and n for n in names)):
        raise bad(f"has class_names {names!r}, not {config['num_classes']} names")
    return config


def load_model(path: str | Path, device: str | torch.device = "cpu"):
    """Rebuild the MOL network from a model file. Returns (model in eval mode, config)."""
    config = read_config(path)
    model = MOL(num_classes=config["num_classes"], neighbors=config["neighbors"], mer_input=config["mer_input"])
    try:
        model.load_state_dict(load_file(str(path)), strict=True)
    except Exception as e:  # missing, extra or reshaped tensors (RuntimeError), a damaged body (SafetensorError)
        raise UserError(f"{path} does not hold the weights of MOL(num_classes={config['num_classes']}): "
                        f"{_first_problem(e)}; use the file `mol train` wrote") from None
    return model.to(device).eval(), config


def _first_problem(error: Exception) -> str:
    """The first line of torch's load_state_dict complaint (it lists every key, often hundreds)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    detail = lines[1] if len(lines) > 1 and lines[0].startswith("Error(s) in loading") else (lines[0] if lines else "")
    return detail[:300].rstrip(".") or type(error).__name__



def class_names(config: dict) -> list[str]:
    """A model file's class names (generic `class_<i>` where it has none)."""
    return list(config.get("class_names") or generic_class_names(int(config["num_classes"])))


def generic_class_names(count: int) -> list[str]:
    return [f"class_{i}" for i in range(count)]


def load_official_checkpoint(path: Path, classes: int) -> MOL:
    """A `.pth` state dict saved by the official code, in a `MOL` of `classes` classes (CPU, eval mode)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)  # weights only: no code is unpickled
    except pickle.UnpicklingError as e:
        # torch's message advises weights_only=False, which would run the file's code: never repeat it
        text = str(e)
        needs_code = re.search(r"Unsupported global: GLOBAL (\S+)", text)
        if needs_code:
            raise UserError(f"{path} is refused: loading it would unpickle code ({needs_code[1]}), which could run "
                            "anything; save a plain state dict of tensors (torch.save(model.state_dict(), path)) "
                            "from a trusted copy") from None
        detail = re.search(r"WeightsUnpickler error:\s*(\S[^\n]*)", text)
        raise UserError(f"{path} is not a readable PyTorch state dict (damaged, or not a PyTorch file: "
                        f"{detail[1].strip() if detail else text.splitlines()[0][:80]})") from None
    except Exception as e:  # torch raises zip and runtime errors alike for a damaged file
        raise UserError(f"{path} is not a readable PyTorch state dict ({str(e).splitlines()[0]})") from None
    if not isinstance(state, dict):
        raise UserError(f"{path} holds a {type(state).__name__}, not a state dict of the official MOL code")
    network = MOL(num_classes=classes)
    try:
        load_official_state_dict(network, state)
    except ValueError as e:
        raise UserError(f"{path}: {e} (is --classes {classes} right?)") from None
    return network.eval()
