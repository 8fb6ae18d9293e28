"""The step loop of one fold: train from the current step to the last at the schedule's learning rate,
checkpoint on the way, and (with a selection set) keep the weights of the step that scores best on it."""
from __future__ import annotations

import math
import time
from pathlib import Path

import torch

from components.errors import UserError
from components.io import progress_bar
from components.tracking.runs import Run
from components.training.data import BatchSampler, ClipSet
from components.training.margin import WINDOW, running_accuracy
from components.training.resume import FoldState, save_resume
from components.training.schedule import learning_rate
from components.training.scoring import score, selection_key
from components.training.trainer import LOSS_TERMS, Trainer

TRAIN_MEASURES = (*LOSS_TERMS, "acc", "acc_running")  # of the training batches: MLflow's train/<name>


def train_steps(trainer: Trainer, sampler: BatchSampler, train_set: ClipSet, selection_set: ClipSet | None,
                fold_state: FoldState, resume_path: Path, run: Run, desc: str, checkpoint_every: int,
                stop_after: int | None) -> bool:
    """Run the steps from `fold_state.step` to `config.steps`, checkpointing on the way; with a selection
    set, end with its best step's weights loaded. False when it stopped early (after `stop_after` steps)."""
    config, num_classes = trainer.config, trainer.model.num_classes
    start, began = fold_state.step, time.perf_counter()
    bar = progress_bar(total=config.steps, initial=start, desc=desc, unit="step", dynamic_ncols=True)
    for step in range(start, config.steps):
        clips = sampler.batch(step)
        trainer.set_learning_rate(learning_rate(step, config.lr, config.steps, config.warmup_steps, config.lr_schedule))
        losses = trainer.step(train_set.batch(clips, train_set.training_offsets(clips, config.seed, step, config.crops)))
        done = fold_state.step = step + 1
        if not all(math.isfinite(v) for v in losses.values()):
            raise UserError(f"{desc}: the loss became {losses['total']} at step {done}; lower --lr or the loss weights")
        recent = [r["acc"] for r in fold_state.log[-(WINDOW - 1):]] + [losses["acc"]]
        row = {"step": done, **losses, "acc_running": running_accuracy(recent),
               "lr": trainer.optimizer.param_groups[0]["lr"]}
        if selection_set is not None and (done % config.eval_every == 0 or done == config.steps):
            scores = score(selection_set, trainer.evaluate(selection_set)["logits"], num_classes)
            row.update(select_uf1=scores["video"]["uf1"], select_uar=scores["video"]["uar"])
            if fold_state.best is None or selection_key(scores) > tuple(fold_state.best["key"]):
                fold_state.best = {"step": done, "key": list(selection_key(scores))}
                fold_state.best_weights = {n: t.detach().cpu().clone(memory_format=torch.contiguous_format)
                                           for n, t in trainer.model.state_dict().items()}
        fold_state.log.append(row)
        run.log_metrics({("train/" + n if n in TRAIN_MEASURES else n): v for n, v in row.items() if n != "step"},
                        step=done)
        bar.update(1)
        bar.set_postfix({t: f"{losses[t]:.3g}" for t in LOSS_TERMS})
        stopping = stop_after is not None and done - start >= stop_after
        if done < config.steps and (done % checkpoint_every == 0 or stopping):
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

