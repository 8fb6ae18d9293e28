"""Scores of one set of decisions: the confusion matrix and its MER metrics, clip logits pooled per video,
class probabilities, and the warning for a model that collapsed to one class. Shared by `mol train` (per
fold), `mol evaluate` (pooled over folds) and `mol predict`."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from mol_model.metrics import classification_metrics, confusion_matrix

if TYPE_CHECKING:  # the pyfunc model imports this module: no imports beyond numpy and mol_model at run time
    from components.config import TrainSettings
    from components.training.data import ClipSet

LEVELS = ("video", "clip")
METRICS = ("acc", "uf1", "uar", "war", "wf1")


def level_summary(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> dict:
    """Confusion matrix (rows = true) and its acc, uf1, uar, war, wf1 for one set of decisions."""
    return summary_of(confusion_matrix(np.asarray(y_true), np.asarray(y_pred), num_classes))


def summary_of(cm: np.ndarray) -> dict:
    scores = classification_metrics(np.asarray(cm))
    return {"confusion_matrix": np.asarray(cm).tolist(), **{k: float(scores[k]) for k in METRICS},
            "n": int(round(float(np.sum(cm))))}


def chance_summary(y_true: np.ndarray, num_classes: int) -> dict:
    """The scores of guessing every class with equal probability, from its expected confusion matrix: the
    n_i items of class i spread evenly over the classes (UAR = acc = 1 / classes)."""
    support = np.bincount(np.asarray(y_true, dtype=np.int64), minlength=num_classes)
    return summary_of(np.outer(support, np.full(num_classes, 1 / num_classes)))


def majority_summary(y_true: np.ndarray, majority: np.ndarray | int, num_classes: int) -> dict:
    """The scores of predicting the training set's most frequent class (per item, or one for all)."""
    y_true = np.asarray(y_true)
    return level_summary(y_true, np.broadcast_to(np.asarray(majority), y_true.shape), num_classes)


def video_logits(clip_logits: np.ndarray, clip_sample: np.ndarray, n_samples: int) -> np.ndarray:
    """Mean clip logits per sample: [N, C] clips, sample index [N] -> [n_samples, C]."""
    sums = np.zeros((n_samples, clip_logits.shape[1]), dtype=np.float64)
    np.add.at(sums, clip_sample, clip_logits)
    counts = np.bincount(clip_sample, minlength=n_samples)[:, None]
    return (sums / np.maximum(counts, 1)).astype(np.float32)


def probabilities(logits: np.ndarray) -> np.ndarray:
    """Softmax over the last axis: logits [..., C] -> class probabilities [..., C] (float64)."""
    shifted = np.exp(logits - np.max(logits, axis=-1, keepdims=True), dtype=np.float64)
    return shifted / shifted.sum(axis=-1, keepdims=True)


def score(clips: ClipSet, logits: np.ndarray, num_classes: int) -> dict:
    """Clip-level and video-level (mean clip logits per video) summaries of one evaluation of `clips`
    (clip logits [N, C])."""
    per_video = video_logits(logits, clips.clip_sample, len(clips.sample_ids))
    return {"clip": level_summary(clips.clip_labels, logits.argmax(1), num_classes),
            "video": level_summary(clips.labels, per_video.argmax(1), num_classes)}


def selection_key(scores: dict) -> tuple[float, float]:
    """What model selection maximises: video UF1, then video UAR."""
    return scores["video"]["uf1"], scores["video"]["uar"]


def collapse_message(y_true, y_pred, class_names: list[str]) -> str | None:
    """A warning when every prediction is one class although the truth holds several, else None."""
    predicted, true = set(np.asarray(y_pred).tolist()), set(np.asarray(y_true).tolist())
    if len(predicted) == 1 and len(true) > 1:
        (only,) = predicted
        return (f"all {len(y_pred)} predictions are '{class_names[only]}' although the truth has "
                f"{len(true)} classes: the model collapsed to one class")
    return None



def collapse_remedies(schedule: TrainSettings) -> str:
    """What to change after a collapse, given the schedule the folds used."""
    remedies = ["--balance sampler"] if schedule.balance == "none" else []
    if schedule.mer_input == "official":
        remedies.append("--mer-input motion --mer-dropout 0 --lr 1e-3")
    return ", ".join(remedies + ["more --steps"]) + " (docs/training.md)"
