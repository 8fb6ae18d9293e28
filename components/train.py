"""`mol train`: joint MOL training (MER + optical flow + landmarks), one model per cross-validation fold.

Per fold, in `OUT/fold_KK/`:
  model.safetensors   the evaluated model (weights + config in the metadata; `components.checkpoint`)
  metrics.json        clip- and video-level confusion matrices and metrics, flow EPE, landmark NME,
                      losses, per-video predictions; written last, so its presence means "fold done"
  train_log.csv       step, loss terms, lr (and selection scores when a selection set is used)
  training_curves.png, confusion_matrix.png
  samples.npz         the first test clip of up to 2 test videos with labels and predictions (flow,
                      landmarks), for `mol evaluate`'s sample pictures
  resume/state.safetensors   while training: weights, optimizer and RNG state (JSON metadata, no pickle)

Protocol. By default the evaluated model is the one at the END of training: the test subject is used
once, for the final score. `--val-subjects N` keeps the best step on N held-out TRAINING subjects
(honest). `--select-on-test` reproduces the official protocol, keeping the step with the best test
score: that leaks test labels into model selection, and every output says so.

Determinism: the batch of step t is a pure function of (seed, t), and the model initialisation of
(seed), so a fold gives the same result alone (`--fold K`) or inside `--all`, and a killed run resumed
from its last checkpoint ends with the same weights as an uninterrupted one (on CPU).
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from safetensors.torch import load_file, safe_open, save_file
from tqdm import tqdm

from components import tracking
from components.checkpoint import save_model
from components.clips import ClipSet, check_clips_dir, load_clips
from components.devices import bf16_autocast, native_bf16, pick_device, precision_label
from components.errors import UserError
from components.evaluate import collapse_message, collapse_remedies, level_summary, video_logits
from components.fileio import atomic_path, write_csv, write_json, write_npz, write_text
from components.plots import confusion_matrix_figure, training_curves_figure
from mol_model import MOL, MOLOutput
from mol_model.model import MER_INPUTS
from mol_model.losses import mol_loss
from mol_model.memory import keep_freed_memory
from mol_model.metrics import flow_epe, landmark_nme
from mol_model.normalize import normalize_video

BALANCE = ("none", "sampler", "loss")
LOSS_TERMS = ("total", "mer", "flow", "landmark")
NORMALIZATION = "x/127.5-1"
SAMPLE_VIDEOS = 2  # test videos whose first clip is kept in samples.npz for `mol evaluate`'s pictures
LEAK_WARNING = ("--select-on-test leaks test data: it keeps the step with the best score on the TEST subject, "
                "so the scores are optimistic and not comparable with an honest protocol")


@dataclass
class TrainConfig:
    """The training schedule. Fields up to `val_subjects` decide the result; the rest only how it runs."""
    lr: float = 1e-4
    weight_decay: float = 1e-3
    batch_size: int = 32
    steps: int = 1000
    flow_weight: float = 10.0
    landmark_weight: float = 0.1
    mer_weight: float = 1.0
    neighbors: int = 4
    mer_input: str = "official"  # official | motion (mol_model.model.motion_features)
    mer_dropout: float = 0.5  # the official MER head's; training only
    seed: int = 0
    balance: str = "none"  # none | sampler (class-balanced batches) | loss (class-weighted cross-entropy)
    select_on_test: bool = False  # official, leaky protocol
    val_subjects: int = 0  # >0: select the step on this many held-out training subjects
    eval_every: int = 100  # steps between selection evaluations (with a selection set only)
    device: str = "auto"
    amp: bool | None = None  # None: bf16 autocast where the device runs it natively (devices.native_bf16)
    checkpoint_every: int = 100
    eval_batch_size: int = 16
    threads: int | None = None

    def result_fields(self) -> dict:
        """The settings a finished or half-finished fold must share with this run to be reused."""
        fields = dataclasses.asdict(self)
        keep = list(fields)[: list(fields).index("val_subjects") + 1]
        result = {k: fields[k] for k in keep}
        if self.selecting:
            result["eval_every"] = self.eval_every
        return result

    @property
    def selecting(self) -> bool:
        return self.select_on_test or self.val_subjects > 0

    @property
    def protocol(self) -> str:  # MLflow tag
        if self.select_on_test:
            return "leaky-select-on-test"
        return "select-on-validation" if self.val_subjects > 0 else "final"

    @property
    def selection(self) -> str:  # metrics.json
        if self.select_on_test:
            return "leaky-best-on-test"
        return "best-on-validation" if self.val_subjects > 0 else "final"

    def validate(self) -> None:
        if self.mer_input not in MER_INPUTS:
            raise UserError(f"--mer-input {self.mer_input} is unknown; choose one of {', '.join(MER_INPUTS)}")
        if self.balance not in BALANCE:
            raise UserError(f"--balance {self.balance} is unknown; choose one of {', '.join(BALANCE)}")
        if self.select_on_test and self.val_subjects > 0:
            raise UserError("--select-on-test and --val-subjects exclude each other; choose one selection set")
        for name in ("steps", "batch_size", "eval_every", "checkpoint_every", "eval_batch_size"):
            if getattr(self, name) < 1:
                raise UserError(f"--{name.replace('_', '-')} must be at least 1")
        if not 0 <= self.mer_dropout < 1:
            raise UserError(f"--mer-dropout {self.mer_dropout} must be in [0, 1)")
        if min(self.flow_weight, self.landmark_weight, self.mer_weight, self.lr, self.weight_decay) < 0:
            raise UserError("loss weights, --lr and --weight-decay must not be negative")


# ---------------------------------------------------------------------------------------------- data

class BatchSampler:
    """Indices of the clips of step t, a pure function of (seed, t): resuming needs only the step.

    `none`: epochs of shuffled clips laid end to end, cut into batches (every clip once per epoch).
    `sampler`: each batch drawn with replacement, clip weights 1/(clips of its class): balanced classes.
    """

    def __init__(self, clip_labels: np.ndarray, batch_size: int, seed: int, balanced: bool):
        self.n, self.batch_size, self.seed, self.balanced = len(clip_labels), batch_size, seed, balanced
        counts = np.bincount(clip_labels)
        self.weights = 1.0 / counts[clip_labels]
        self.weights /= self.weights.sum()
        self._epoch, self._order = -1, np.zeros(0, int)

    def _permutation(self, epoch: int) -> np.ndarray:
        if epoch != self._epoch:
            self._epoch, self._order = epoch, np.random.default_rng([self.seed, epoch]).permutation(self.n)
        return self._order

    def batch(self, step: int) -> np.ndarray:  # [B]
        if self.balanced:
            return np.random.default_rng([self.seed, step]).choice(self.n, self.batch_size, p=self.weights)
        positions = range(step * self.batch_size, (step + 1) * self.batch_size)
        return np.array([self._permutation(p // self.n)[p % self.n] for p in positions])


def class_weights(clip_labels: np.ndarray, num_classes: int) -> torch.Tensor:
    """Cross-entropy weights n / (classes present * n_c): every present class weighs the same in the loss."""
    counts = np.bincount(clip_labels, minlength=num_classes).astype(np.float64)
    weights = np.where(counts > 0, counts.sum() / (np.count_nonzero(counts) * np.maximum(counts, 1)), 1.0)
    return torch.tensor(weights, dtype=torch.float32)


def to_device(batch: dict[str, np.ndarray], device: torch.device) -> dict[str, torch.Tensor]:
    """Moved as stored (uint8 video, float16 flow: fewer bytes), converted on the device: video to the
    normalised model input [B,1,T,H,W] (the one input normalisation), flow and landmarks to float32."""
    moved = {k: torch.from_numpy(v).to(device, non_blocking=True) for k, v in batch.items()}
    moved["video"] = normalize_video(moved["video"]).unsqueeze(1)  # [B,T,H,W] -> [B,1,T,H,W]
    moved["flow"], moved["landmarks"] = moved["flow"].float(), moved["landmarks"].float()
    return moved


# ---------------------------------------------------------------------------------------------- model steps

class Trainer:
    """The model, its optimizer and the loss of one fold; `step` and `evaluate` are the two modes."""

    def __init__(self, config: TrainConfig, num_classes: int, device: torch.device,
                 weights: torch.Tensor | None):
        self.config, self.device = config, device
        self.amp = native_bf16(device) if config.amp is None else config.amp
        torch.manual_seed(config.seed)  # same initial weights for every fold and every process
        self.model = MOL(num_classes=num_classes, neighbors=config.neighbors, mer_input=config.mer_input,
                         mer_dropout=config.mer_dropout).to(device)
        # fused: one kernel for all parameters, ~5x faster than the per-tensor loop on the CPU too.
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=config.lr, weight_decay=config.weight_decay,
                                           fused=True)
        self.class_weights = None if weights is None else weights.to(device)

    def _autocast(self):
        return bf16_autocast(self.device, self.amp)

    def losses(self, batch: dict[str, torch.Tensor], out: MOLOutput) -> dict[str, torch.Tensor]:
        c = self.config
        terms = mol_loss(out, batch["label"], batch["flow"], batch["landmarks"], flow_weight=c.flow_weight,
                         landmark_weight=c.landmark_weight, class_weights=self.class_weights)
        terms["total"] = c.mer_weight * terms["mer"] + c.flow_weight * terms["flow"] \
            + c.landmark_weight * terms["landmark"]
        return terms

    def step(self, batch: dict[str, np.ndarray]) -> dict[str, float]:
        self.model.train()
        batch = to_device(batch, self.device)
        with self._autocast():
            out = self.model(batch["video"])
        terms = self.losses(batch, out)
        self.optimizer.zero_grad(set_to_none=True)
        terms["total"].backward()
        self.optimizer.step()
        return {k: float(v.detach()) for k, v in terms.items()}

    @torch.inference_mode()
    def evaluate(self, clips: ClipSet, keep: np.ndarray | None = None) -> dict:
        """Clip logits [N, C] and the mean flow EPE, landmark NME and loss terms over the clips; with `keep`
        (sorted clip indices [K]) also those clips' predicted flow [K,T-1,2,H,W] and landmarks [K,T-1,68,2]."""
        self.model.eval()
        logits, sums = [], dict.fromkeys(("flow_epe", "landmark_nme", *LOSS_TERMS), 0.0)
        kept_flow, kept_landmarks = [], []
        for start in range(0, len(clips), self.config.eval_batch_size):
            index = np.arange(start, min(start + self.config.eval_batch_size, len(clips)))
            batch = to_device(clips.batch(index), self.device)
            with self._autocast():
                out = self.model(batch["video"])
            logits.append(out.logits.float().cpu().numpy())
            if keep is not None:
                rows = torch.from_numpy(np.isin(index, keep)).to(self.device)
                kept_flow.append(out.flow[rows].float().cpu().numpy())
                kept_landmarks.append(out.landmarks[rows].float().cpu().numpy())
            n = len(index)
            sums["flow_epe"] += n * flow_epe(out.flow, batch["flow"])
            sums["landmark_nme"] += n * landmark_nme(out.landmarks, batch["landmarks"][:, 1:])  # frames 1..T-1
            for k, v in self.losses(batch, out).items():
                sums[k] += n * float(v)
        means = {k: v / len(clips) for k, v in sums.items()}
        result = {"logits": np.concatenate(logits), "flow_epe": means["flow_epe"],
                  "landmark_nme": means["landmark_nme"], "losses": {k: means[k] for k in LOSS_TERMS}}
        if keep is not None:
            result["kept_flow"], result["kept_landmarks"] = np.concatenate(kept_flow), np.concatenate(kept_landmarks)
        return result


def score(clips: ClipSet, logits: np.ndarray, num_classes: int) -> dict:
    """Clip-level and video-level (mean clip logits per video) summaries of one evaluation."""
    per_video = video_logits(logits, clips.clip_sample, len(clips.sample_ids))
    return {"clip": level_summary(clips.clip_labels, logits.argmax(1), num_classes),
            "video": level_summary(clips.labels, per_video.argmax(1), num_classes)}


def selection_key(scores: dict) -> tuple[float, float]:
    return scores["video"]["uf1"], scores["video"]["uar"]


def sample_clips(clips: ClipSet, videos: int = SAMPLE_VIDEOS) -> np.ndarray:
    """Indices [K] of the first clip of the first `videos` samples: the clips kept for pictures."""
    return np.flatnonzero(clips.clip_offset == 0)[:videos]


def write_samples(path: Path, clips: ClipSet, picks: np.ndarray, evaluation: dict) -> None:
    """The picked clips with their labels and the evaluation's predictions, small enough to keep per fold:
    frames uint8 [K,T,H,W], flows float16 [K,T-1,2,H,W], landmarks float32 ([K,T,68,2] label,
    [K,T-1,68,2] prediction for frames 1..T-1), sample_ids str [K]."""
    batch = clips.batch(picks)
    write_npz(path, compressed=True, frames=batch["video"], label_flow=batch["flow"].astype(np.float16),
              pred_flow=evaluation["kept_flow"].astype(np.float16),
              label_landmarks=batch["landmarks"].astype(np.float32),
              pred_landmarks=evaluation["kept_landmarks"].astype(np.float32),
              sample_ids=np.array([clips.sample_ids[s] for s in clips.clip_sample[picks]]))


# ---------------------------------------------------------------------------------------------- fold state

@dataclass
class FoldState:
    """Everything of a fold in progress besides the model and optimizer; saved with them at checkpoints."""
    step: int = 0
    log: list[dict] = dataclasses.field(default_factory=list)  # one row per step
    best: dict | None = None  # selection: {"step", "key": [uf1, uar]} of the best step so far
    best_weights: dict[str, torch.Tensor] | None = None
    run_id: str | None = None  # the fold's MLflow run, reopened on resume
    seconds: float = 0.0  # training time over all processes


def save_resume(path: Path, trainer: Trainer, fold_state: FoldState, config: TrainConfig) -> None:
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
    meta = {"config": config.result_fields(), "param_groups": optim["param_groups"], "optim_scalars": scalars,
            **{f.name: getattr(fold_state, f.name) for f in dataclasses.fields(FoldState) if f.name != "best_weights"}}
    with atomic_path(path, suffix=".safetensors") as tmp:
        save_file(tensors, str(tmp), metadata={"resume": json.dumps(meta)})


def load_resume(path: Path, trainer: Trainer, config: TrainConfig) -> FoldState:
    """Restore `trainer` (weights, optimizer, RNG) from `save_resume`'s file and return the fold state."""
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = json.loads(f.metadata()["resume"])
        tensors = load_file(str(path))
    except Exception as e:  # a damaged file: safetensors raises its own error types
        raise UserError(f"resume state {path} is unreadable ({e}); delete it to restart the fold") from None
    _check_same_settings(meta["config"], config, path)
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
    return FoldState(step=meta["step"], log=meta["log"], best=meta["best"], best_weights=best_weights,
                     run_id=meta["run_id"], seconds=meta["seconds"])


def _check_same_settings(found: dict, config: TrainConfig, where: Path) -> None:
    changed = {k: (found.get(k), v) for k, v in config.result_fields().items() if found.get(k) != v}
    if changed:
        detail = ", ".join(f"{k} {old} -> {new}" for k, (old, new) in changed.items())
        raise UserError(f"{where} was made with other settings ({detail}); pass another --out or delete it")


# ---------------------------------------------------------------------------------------------- one fold

def fold_dir(out: str | Path, fold: int) -> Path:
    return Path(out) / f"fold_{fold:02d}"


def _warn_missing(kind: str, missing: list[str]) -> None:
    if missing:
        print(f"train: warning: {len(missing)} {kind} samples have no clip file (rejected earlier?) and are "
              f"skipped: {', '.join(missing)}")


def hold_out_validation(clips_dir: str | Path, train_set: ClipSet, count: int, seed: int, fold: int,
                        num_classes: int) -> tuple[ClipSet, ClipSet, list[str]]:
    """Move `count` whole training subjects (chosen by seed and fold) into a validation set, which is read
    in its evaluation view. Returns (remaining training set, validation set, validation subjects)."""
    subjects = sorted(set(train_set.subjects))
    if count >= len(subjects):
        raise UserError(f"--val-subjects {count} leaves no training subject (fold {fold} has {len(subjects)})")
    chosen = sorted(subjects[i] for i in np.random.default_rng([seed, fold]).choice(len(subjects), count,
                                                                                    replace=False))
    held = [s in chosen for s in train_set.subjects]
    val_ids = [sid for sid, h in zip(train_set.sample_ids, held) if h]
    val_set = load_clips(clips_dir, val_ids, "eval", num_classes, desc=f"fold {fold} validation clips")
    return train_set.subset([i for i, h in enumerate(held) if not h]), val_set, chosen


def train_fold(clips_dir: str | Path, spec: dict, folds_doc: dict, out: str | Path, config: TrainConfig,
               device: torch.device, parent: tracking.Run, stop_after: int | None = None) -> dict | None:
    """Train and evaluate one fold of FOLDS.json. Returns its metrics, or None when it stopped after
    `stop_after` steps in this process (state saved: rerun to continue)."""
    k = int(spec["fold"])
    where = fold_dir(out, k)
    metrics_path, resume_path = where / "metrics.json", where / "resume" / "state.safetensors"
    if metrics_path.is_file():
        done = json.loads(metrics_path.read_text())
        _check_same_settings(done.get("config", {}), config, metrics_path)
        print(f"train: fold {k} is finished ({metrics_path}); skipped")
        return done

    num_classes = int(folds_doc["num_classes"])
    info = {"fold": k, "test_subject": spec["test_subject"],
            **({"test_subjects": spec["test_subjects"]} if "test_subjects" in spec else {})}
    train_set = load_clips(clips_dir, spec["train"], "train", num_classes, desc=f"fold {k} train clips")
    test_set = load_clips(clips_dir, spec["test"], "eval", num_classes, desc=f"fold {k} test clips")
    _warn_missing("training", train_set.missing)
    _warn_missing("test", test_set.missing)
    missing = train_set.missing + test_set.missing
    if len(train_set) == 0 or len(test_set) == 0:
        reason = f"no {'training' if len(train_set) == 0 else 'test'} clip files"
        print(f"train: warning: fold {k} ({spec['test_subject']}) skipped: {reason}")
        skipped = {**info, "status": "skipped", "reason": reason, "missing_clip_files": missing,
                   "config": config.result_fields()}
        write_json(metrics_path, skipped)
        return skipped

    val_set, val_subjects = None, []
    if config.val_subjects > 0:
        train_set, val_set, val_subjects = hold_out_validation(clips_dir, train_set, config.val_subjects,
                                                               config.seed, k, num_classes)

    weights = class_weights(train_set.clip_labels, num_classes) if config.balance == "loss" else None
    trainer = Trainer(config, num_classes, device, weights)
    fold_state = FoldState()
    if resume_path.is_file():
        fold_state = load_resume(resume_path, trainer, config)
        print(f"train: fold {k} resumes at step {fold_state.step} of {config.steps}")

    if fold_state.run_id and parent.active:
        run = tracking.open_run(fold_state.run_id)
    else:
        run = tracking.start_child_run(
            parent, f"fold {k:02d} ({spec['test_subject']})",
            {**config.result_fields(), **info, "train_clips": len(train_set), "test_clips": len(test_set),
             "val_subjects_used": ",".join(val_subjects) or "-"},
            {"protocol": config.protocol, "fold": k, "test_subject": spec["test_subject"]})
        fold_state.run_id = run.run_id

    sampler = BatchSampler(train_set.clip_labels, config.batch_size, config.seed, config.balance == "sampler")
    selection_set = test_set if config.select_on_test else val_set
    try:
        if not _train_steps(trainer, sampler, train_set, selection_set, config, fold_state, resume_path, run,
                            f"fold {k} ({spec['test_subject']})", stop_after):
            run.flush()
            print(f"train: fold {k} stopped at step {fold_state.step}; rerun the same command to continue")
            return None
        info |= {"val_subjects": val_subjects, "n_train_clips": len(train_set), "missing_clip_files": missing}
        metrics = _finish_fold(trainer, test_set, folds_doc, info, config, fold_state, where, run)
    except BaseException as e:
        run.finish("KILLED" if isinstance(e, KeyboardInterrupt) else "FAILED")
        raise
    run.finish()
    shutil.rmtree(resume_path.parent, ignore_errors=True)  # finished: the resume state is no longer needed
    return metrics


def _train_steps(trainer: Trainer, sampler: BatchSampler, train_set: ClipSet, selection_set: ClipSet | None,
                 config: TrainConfig, fold_state: FoldState, resume_path: Path, run: tracking.Run, desc: str,
                 stop_after: int | None) -> bool:
    """Run the steps from `fold_state.step` to `config.steps`, checkpointing on the way; with a selection
    set, end with its best step's weights loaded. False when it stopped early (after `stop_after` steps)."""
    num_classes = trainer.model.num_classes
    start, began = fold_state.step, time.perf_counter()
    bar = tqdm(total=config.steps, initial=start, desc=desc, unit="step", dynamic_ncols=True)
    for step in range(start, config.steps):
        losses = trainer.step(train_set.batch(sampler.batch(step)))
        done = fold_state.step = step + 1
        if not all(math.isfinite(v) for v in losses.values()):
            raise UserError(f"{desc}: the loss became {losses['total']} at step {done}; lower --lr or the loss weights")
        row = {"step": done, **losses, "lr": trainer.optimizer.param_groups[0]["lr"]}
        if selection_set is not None and (done % config.eval_every == 0 or done == config.steps):
            scores = score(selection_set, trainer.evaluate(selection_set)["logits"], num_classes)
            row.update(select_uf1=scores["video"]["uf1"], select_uar=scores["video"]["uar"])
            if fold_state.best is None or selection_key(scores) > tuple(fold_state.best["key"]):
                fold_state.best = {"step": done, "key": list(selection_key(scores))}
                fold_state.best_weights = {n: t.detach().cpu().clone(memory_format=torch.contiguous_format)
                                           for n, t in trainer.model.state_dict().items()}
        fold_state.log.append(row)
        run.log_metrics({("train/" + n if n in LOSS_TERMS else n): v for n, v in row.items() if n != "step"},
                        step=done)
        bar.update(1)
        bar.set_postfix({t: f"{losses[t]:.3g}" for t in LOSS_TERMS})
        stopping = stop_after is not None and done - start >= stop_after
        if done < config.steps and (done % config.checkpoint_every == 0 or stopping):
            fold_state.seconds += time.perf_counter() - began
            began = time.perf_counter()
            save_resume(resume_path, trainer, fold_state, config)
            run.flush()
            if stopping:
                bar.close()
                return False
    bar.close()
    fold_state.seconds += time.perf_counter() - began
    if selection_set is not None:
        trainer.model.load_state_dict(fold_state.best_weights)
    return True


def _finish_fold(trainer: Trainer, test_set: ClipSet, folds_doc: dict, info: dict, config: TrainConfig,
                 fold_state: FoldState, where: Path, run: tracking.Run) -> dict:
    """Evaluate the chosen weights on the test subject; write the model, metrics, log and plots."""
    num_classes, class_names = int(folds_doc["num_classes"]), list(folds_doc["class_names"])
    picks = sample_clips(test_set)
    evaluation = trainer.evaluate(test_set, keep=picks)
    logits = evaluation["logits"]  # [N clips, C]
    scores = score(test_set, logits, num_classes)
    per_video = video_logits(logits, test_set.clip_sample, len(test_set.sample_ids))  # [V, C]
    probabilities = torch.softmax(torch.from_numpy(per_video), dim=1).numpy()
    clip_pred = logits.argmax(1)
    predictions = [{"sample_id": sid, "subject": subject, "label": int(label), "pred": int(p.argmax()),
                    "probabilities": [round(float(x), 6) for x in p],
                    "clip_predictions": clip_pred[test_set.clip_sample == i].tolist()}
                   for i, (sid, subject, label, p) in enumerate(zip(test_set.sample_ids, test_set.subjects,
                                                                     test_set.labels, probabilities))]
    collapse = collapse_message(test_set.clip_labels, clip_pred, class_names)
    if collapse:
        print(f"train: WARNING: fold {info['fold']}: {collapse}; try {collapse_remedies(config.result_fields())}")
    recent = fold_state.log[-10:]
    selected_step = fold_state.best["step"] if config.selecting else config.steps
    metrics = {
        **info, "status": "done", "selection": config.selection, "protocol": config.protocol,
        "selected_step": selected_step, "steps": config.steps,
        "num_classes": num_classes, "class_names": class_names,
        "clip": scores["clip"], "video": scores["video"],
        "flow_epe": evaluation["flow_epe"], "landmark_nme": evaluation["landmark_nme"],
        "test_losses": evaluation["losses"],
        "final_train_losses": {t: float(np.mean([r[t] for r in recent])) for t in LOSS_TERMS},
        "collapsed": collapse is not None, "collapse_warning": collapse,
        "n_test_clips": len(test_set), "n_test_videos": len(test_set.sample_ids),
        "train_seconds": round(fold_state.seconds, 2),
        "train_clips_per_second": round(config.steps * config.batch_size / max(fold_state.seconds, 1e-9), 3),
        "device": str(trainer.device), "precision": precision_label(trainer.amp),
        "predictions": predictions, "config": config.result_fields(),
    }
    save_model(where / "model.safetensors", trainer.model, {
        "num_classes": num_classes, "neighbors": config.neighbors, "mer_input": config.mer_input,
        "class_names": class_names,
        "normalization": NORMALIZATION, "fold": info["fold"], "test_subject": info["test_subject"],
        "steps": config.steps, "selection": config.selection, "selected_step": selected_step, "seed": config.seed,
        "flow_weight": config.flow_weight, "landmark_weight": config.landmark_weight})
    write_csv(where / "train_log.csv", pd.DataFrame(fold_state.log))
    write_samples(where / "samples.npz", test_set, picks, evaluation)
    training_curves_figure(fold_state.log, where / "training_curves.png")
    confusion_matrix_figure(np.array(scores["video"]["confusion_matrix"]), class_names,
                            where / "confusion_matrix.png",
                            f"fold {info['fold']} ({info['test_subject']}), video level")
    write_json(where / "metrics.json", metrics)

    run.log_metrics({f"{level}_{name}": scores[level][name] for level in ("clip", "video")
                     for name in ("acc", "uf1", "uar", "war", "wf1")}
                    | {"flow_epe": metrics["flow_epe"], "landmark_nme": metrics["landmark_nme"]}
                    | {f"test/{t}": v for t, v in evaluation["losses"].items()}, step=config.steps)
    run.set_tags({"selection": config.selection, "selected_step": selected_step, "collapsed": metrics["collapsed"],
                  "device": metrics["device"], "precision": metrics["precision"]})
    for name in ("metrics.json", "train_log.csv", "training_curves.png", "confusion_matrix.png", "model.safetensors"):
        run.log_artifact(where / name)
    print(f"train: fold {info['fold']} ({info['test_subject']}): video UF1 {scores['video']['uf1']:.3f} "
          f"UAR {scores['video']['uar']:.3f}, clip UF1 {scores['clip']['uf1']:.3f}; flow EPE "
          f"{metrics['flow_epe']:.3f} px, landmark NME {metrics['landmark_nme']:.4f} -> {where}")
    return metrics


# ---------------------------------------------------------------------------------------------- stage

def read_folds(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"folds file {path} does not exist; create it with `mol split --out {path}`")
    try:
        document = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"folds file {path} is not JSON ({e}); recreate it with `mol split`") from None
    missing = [k for k in ("folds", "num_classes", "class_names") if k not in document]
    if missing or not document["folds"]:
        raise UserError(f"folds file {path} lacks {missing or 'folds'}; recreate it with `mol split`")
    return document


def parent_run(out: Path, folds_path: Path, folds_doc: dict, config: TrainConfig, experiment: str,
               parent_run_id: str | None, artifact_location: str | None) -> tracking.Run:
    """The parent MLflow run: the given id, else the one recorded in OUT/parent_run_id.txt by an
    earlier process, else a new one (recorded there for the other folds and `mol evaluate`)."""
    record = out / "parent_run_id.txt"
    recorded = record.read_text().strip() if record.is_file() else None
    if parent_run_id or recorded:
        mend = "pass the right --parent-run-id" if parent_run_id else f"delete {record} to start a new parent run"
        parent = tracking.open_run(parent_run_id or recorded, mend)
        parent.set_tags({"protocol": config.protocol})
    else:
        parent = tracking.start_parent_run(
            experiment, f"{folds_doc.get('mode', 'loso')} {out.name}",
            {**config.result_fields(), "mode": folds_doc.get("mode", "loso"), "folds": len(folds_doc["folds"]),
             "num_classes": folds_doc["num_classes"], "class_names": ",".join(folds_doc["class_names"])},
            {"protocol": config.protocol, "folds_sha256": hashlib.sha256(folds_path.read_bytes()).hexdigest(),
             **({"manifest_sha256": folds_doc["manifest_sha256"]} if "manifest_sha256" in folds_doc else {})},
            artifact_location)
    write_text(record, parent.run_id + "\n")
    return parent


def train(clips: str | Path, folds: str | Path, out: str | Path, fold: int | None = None,
          config: TrainConfig | None = None, track: bool = True, experiment: str = "mol",
          parent_run_id: str | None = None, artifact_location: str | None = None,
          stop_after: int | None = None) -> list[dict | None]:
    """Train fold `fold` of FOLDS.json (index into its list), or every fold when None. Finished folds
    are skipped, interrupted ones resumed. Returns the folds' metrics (None for a fold stopped by
    `stop_after`, the number of steps this process may run per fold)."""
    config = config or TrainConfig()
    config.validate()
    folds_path, out = Path(folds), Path(out)
    folds_doc = read_folds(folds_path)
    specs = folds_doc["folds"]
    if fold is not None and not 0 <= fold < len(specs):
        raise UserError(f"--fold {fold} is out of range: {folds_path} has folds 0..{len(specs) - 1}")
    check_clips_dir(clips)
    device = pick_device(config.device)
    if config.threads:
        torch.set_num_threads(config.threads)
    keep_freed_memory()  # training reaches its peak memory every step: stop glibc returning it (~7% faster)
    if config.select_on_test:
        print(f"train: WARNING: {LEAK_WARNING}")
    else:
        print(f"train: protocol {config.protocol}: the test subject is used only for the final score")

    parent = tracking.Run()
    if tracking.tracking_enabled(track):
        parent = parent_run(out, folds_path, folds_doc, config, experiment,
                            parent_run_id or os.environ.get(tracking.PARENT_ENV), artifact_location)
    chosen = specs if fold is None else [specs[fold]]
    results = []
    for spec in chosen:
        results.append(train_fold(clips, spec, folds_doc, out, config, device, parent, stop_after))
        if results[-1] is None:
            break
    parent.flush()
    return results


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--clips", required=True, help="folder of clip files written by `mol labels`")
    parser.add_argument("--folds", required=True, help="FOLDS.json written by `mol split`")
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--fold", type=int, help="train only this fold (its index in FOLDS.json), e.g. one pod per fold")
    which.add_argument("--all", action="store_true", help="train every fold, one after the other")
    parser.add_argument("--out", required=True, help="output folder; fold K goes to OUT/fold_KK/")
    execution = add_config_arguments(parser, TrainConfig())
    execution.add_argument("--stop-after", type=int, default=None,
                           help="run at most this many steps in this process, save and exit (time-limited jobs); "
                                "rerun the same command to continue")
    t = parser.add_argument_group("MLflow")
    t.add_argument("--no-mlflow", action="store_true", help=f"no tracking at all (also: {tracking.SWITCH_ENV}=off)")
    t.add_argument("--experiment", default="mol", help="MLflow experiment name (default mol)")
    t.add_argument("--parent-run-id", default=None,
                   help=f"attach the fold runs to this parent run (also: {tracking.PARENT_ENV}); default: the id in "
                        "OUT/parent_run_id.txt, else a new parent run")
    t.add_argument("--artifact-location", default=None,
                   help="artifact root of a NEW experiment, e.g. s3://bucket/mlflow (default: ./mlartifacts "
                        "with the local store, the server's choice otherwise)")


def add_config_arguments(parser: argparse.ArgumentParser, d: TrainConfig,
                         exclude: tuple[str, ...] = ()) -> argparse._ArgumentGroup:
    """Every TrainConfig field as an option with `d`'s value as default, except the fields in `exclude`;
    `config_from_args` turns the parsed options back into a TrainConfig. Returns the execution group."""
    def add(group, flag: str, **kwargs) -> None:
        if flag.removeprefix("--").replace("-", "_") not in exclude:
            group.add_argument(flag, **kwargs)

    g = parser.add_argument_group("schedule (decides the result)")
    add(g, "--lr", type=float, default=d.lr, help=f"AdamW learning rate (default {d.lr})")
    add(g, "--weight-decay", type=float, default=d.weight_decay, help=f"AdamW weight decay (default {d.weight_decay})")
    add(g, "--batch-size", type=int, default=d.batch_size, help=f"clips per step (default {d.batch_size})")
    add(g, "--steps", type=int, default=d.steps, help=f"optimizer steps per fold (default {d.steps})")
    add(g, "--flow-weight", type=float, default=d.flow_weight,
           help=f"weight of the optical-flow loss; 0 = no flow supervision (default {d.flow_weight})")
    add(g, "--landmark-weight", type=float, default=d.landmark_weight,
           help=f"weight of the landmark loss; 0 = no landmark supervision (default {d.landmark_weight})")
    add(g, "--mer-weight", type=float, default=d.mer_weight,
           help=f"weight of the expression cross-entropy (default {d.mer_weight})")
    add(g, "--neighbors", type=int, default=d.neighbors, help=f"graph neighbours k in CCC (default {d.neighbors})")
    add(g, "--mer-input", choices=MER_INPUTS, default=d.mer_input,
           help="what the expression head reads: 'official' (the paper's stacked features) or 'motion' (the same "
                "minus each clip's mean over its frames, scaled per clip; parameter-free) (default "
                f"{d.mer_input})")
    add(g, "--mer-dropout", type=float, default=d.mer_dropout,
           help=f"dropout of the expression head, training only (default {d.mer_dropout}, the official)")
    add(g, "--seed", type=int, default=d.seed, help=f"seed of initial weights, batches and dropout (default {d.seed})")
    add(g, "--balance", choices=BALANCE, default=d.balance,
           help="against collapse to one class: 'sampler' draws class-balanced batches, 'loss' weights "
                f"the cross-entropy by inverse class frequency (default {d.balance})")
    add(g, "--val-subjects", type=int, default=d.val_subjects,
           help="hold out this many TRAINING subjects per fold and keep the step scoring best on them "
                "(honest model selection; default 0 = keep the final step)")
    add(g, "--select-on-test", action="store_true",
           help="LEAKS TEST DATA: keep the step with the best score on the test subject, as the official "
                "code does; only to reproduce published numbers, never to report a result")
    add(g, "--eval-every", type=int, default=d.eval_every,
           help=f"steps between selection evaluations with --val-subjects/--select-on-test (default {d.eval_every})")
    r = parser.add_argument_group("execution (how it runs, not the schedule)")
    add(r, "--device", default=d.device, help="auto (CUDA when present, else CPU), cpu, cuda or cuda:N")
    add(r, "--amp", action=argparse.BooleanOptionalAction, default=None,
           help="bfloat16 autocast of the flow decoder; the expression path stays float32 (default: on "
                "where the device runs bf16 natively: CUDA, and CPUs with AVX512-BF16 or AMX, 1.6-1.9x "
                "faster there; off elsewhere)")
    add(r, "--checkpoint-every", type=int, default=d.checkpoint_every,
           help=f"steps between resume checkpoints (default {d.checkpoint_every})")
    add(r, "--eval-batch-size", type=int, default=d.eval_batch_size,
           help=f"clips per evaluation batch (default {d.eval_batch_size})")
    add(r, "--threads", type=int, default=d.threads, help="torch CPU threads (default: torch's choice)")
    return r


def config_from_args(args: argparse.Namespace, **overrides) -> TrainConfig:
    names = [f.name for f in dataclasses.fields(TrainConfig)]
    return TrainConfig(**({n: getattr(args, n) for n in names if hasattr(args, n)} | overrides))


def run(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    results = train(args.clips, args.folds, args.out, fold=None if args.all else args.fold, config=config,
                    track=not args.no_mlflow, experiment=args.experiment, parent_run_id=args.parent_run_id,
                    artifact_location=args.artifact_location, stop_after=args.stop_after)
    return 0 if all(r is not None for r in results) else 3
