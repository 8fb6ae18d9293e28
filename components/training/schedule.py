"""The learning rate of each training step (`train.lr`, `train.warmup_steps`, `train.lr_schedule`): a pure
function of the step, like the batches and crops, so a resumed fold follows the same schedule as an
uninterrupted one with nothing to restore.

    warm-up   step s < W:  lr * (s + 1) / W              (linear, reaching lr at step W - 1)
    constant  s >= W:      lr                            (the official schedule)
    cosine    s >= W:      lr * (1 + cos(pi * (s - W) / (steps - W))) / 2   (lr at W, towards 0 at the end)

Steps count from 0 here (step s makes update s + 1, the row `step = s + 1` of train_log.csv). A warm-up
longer than the schedule just ramps over the steps there are.
"""
from __future__ import annotations

import math

LR_SCHEDULES = ("constant", "cosine")


def learning_rate(step: int, lr: float, steps: int, warmup_steps: int = 0, schedule: str = "constant") -> float:
    """The learning rate of step `step` (0-based) of a `steps`-step schedule with peak `lr`."""
    if schedule not in LR_SCHEDULES:
        raise ValueError(f"schedule must be one of {LR_SCHEDULES}, got {schedule!r}")
    if step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    if schedule == "constant":
        return lr
    progress = (step - warmup_steps) / max(steps - warmup_steps, 1)
    return lr * 0.5 * (1.0 + math.cos(math.pi * progress))
