"""The resume state of a fold in progress, one safetensors file: weights, optimizer tensors, RNG and the
best weights so far, with every non-tensor part (step, log, optimizer hyper-parameters and step counts,
the schedule) as JSON in its metadata. No pickle."""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, safe_open, save_file

from components.config import TrainSettings
from components.errors import UserError
from components.io import atomic_path
from components.training.trainer import Trainer


@dataclass
class FoldState:
    """Everything of a fold in progress besides the model and optimizer; saved with them at checkpoints."""
    step: int = 0
    log: list[dict] = dataclasses.field(default_factory=list)  # one row per step
    best: dict | None = None  # selection: {"step", "key": [uf1, uar]} of the best step so far
    best_weights: dict[str, torch.Tensor] | None = None
    run_id: str | None = None  # the fold's MLflow run, reopened on resume
    seconds: float = 0.0  # training time over all processes
    made_from: dict | None = None  # the fold's inputs (samples, clip files): a resume with other inputs restarts


def save_resume(path: Path, trainer: Trainer, fold_state: FoldState, config: TrainSettings) -> None:
    """Weights, optimizer tensors, RNG and best weights in one safetensors file; everything that is not a
    tensor (step, optimizer hyper-parameters and step counts, log, ...) as JSON in its metadata."""
    optim = trainer.optimizer.state_dict()
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in trainer.model.state_dict().items()}
    scalars: dict[str, dict] = {}
    for index, slots in optim["state"].items():
        for key, value in slots.items():
            if torch.is_tensor(value):
                tensors[f"optim.{index}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(index), {})[key] = value
    tensors["rng.cpu"] = torch.get_rng_state()
    if trainer.device.type == "cuda":
        tensors["rng.cuda"] = torch.cuda.get_rng_state(trainer.device)
    for k, v in (fold_state.best_weights or {}).items():
        tensors[f"best.{k}"] = v
    meta = {"config": config.as_dict(), "param_groups": optim["param_groups"], "optim_scalars": scalars,
            **{f.name: getattr(fold_state, f.name) for f in dataclasses.fields(FoldState) if f.name != "best_weights"}}
    with atomic_path(path, suffix=".safetensors") as tmp:
        save_file(tensors, str(tmp), metadata={"resume": json.dumps(meta)})


def resume_made_from(path: Path) -> dict | None:
    """What the fold in a resume state was made from (None for a damaged or older file)."""
    try:
        with safe_open(str(path), framework="pt") as f:
            return json.loads(f.metadata()["resume"]).get("made_from")
    except Exception:  # damaged: safetensors raises its own error types; the caller starts over
        return None


def load_resume(path: Path, trainer: Trainer, config: TrainSettings) -> FoldState:
    """Restore `trainer` (weights, optimizer, RNG) from `save_resume`'s file and return the fold state."""
    mend = f"delete {path.parent} to restart the fold"
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = json.loads(f.metadata()["resume"])
        tensors = load_file(str(path))
    except Exception as e:  # a damaged file: safetensors raises its own error types
        raise UserError(f"resume state {path} is unreadable ({e}); {mend}") from None
    check_same_settings(meta.get("config", {}), config, path)
    try:  # a tensor missing or reshaped, a field absent: torch and Python raise these alike
        trainer.model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        slots: dict[int, dict] = {int(i): dict(v) for i, v in meta["optim_scalars"].items()}
        for key, value in tensors.items():
            if key.startswith("optim."):
                _, index, name = key.split(".", 2)
                slots.setdefault(int(index), {})[name] = value
        trainer.optimizer.load_state_dict({"state": slots, "param_groups": meta["param_groups"]})
        torch.set_rng_state(tensors["rng.cpu"])
        if "rng.cuda" in tensors and trainer.device.type == "cuda":
            torch.cuda.set_rng_state(tensors["rng.cuda"], trainer.device)
        best_weights = {k[5:]: v for k, v in tensors.items() if k.startswith("best.")} or None
        return FoldState(step=int(meta["step"]), log=list(meta["log"]), best=meta["best"], best_weights=best_weights,
                         run_id=meta["run_id"], seconds=float(meta["seconds"]), made_from=meta.get("made_from"))
    except (RuntimeError, ValueError, KeyError, TypeError, IndexError) as e:
        first = next((line.strip() for line in str(e).splitlines() if line.strip()), type(e).__name__)
        raise UserError(f"resume state {path} does not fit this fold's model ({first[:200]}); {mend}") from None


def check_same_settings(found: dict, config: TrainSettings, where: Path) -> None:
    # A key the record lacks is a setting added after it was made, with the behaviour of its default then.
    defaults = type(config)().as_dict()
    recorded = {k: found.get(k, default) for k, default in defaults.items()}
    changed = {k: (recorded[k], v) for k, v in config.as_dict().items() if recorded[k] != v}
    if changed:
        detail = ", ".join(f"{k} {old} -> {new}" for k, (old, new) in changed.items())
        raise UserError(f"{where} was made with other settings ({detail}); pass another --out or delete it")

