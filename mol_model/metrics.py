"""Evaluation metrics: MER scores from a confusion matrix, flow end-point error, landmark NME.

The MER scores follow the official `calculate_metrics` (and MEGC practice): per-class recall, precision
and F1 over all `num_classes` classes; a class with no samples, or never predicted, scores 0 where its
ratio is undefined (scikit-learn's `zero_division=0` with `labels=range(num_classes)`). UF1 and UAR
average over all classes; WF1 and WAR weight by class support (so WAR equals accuracy).
"""
from __future__ import annotations

import numpy as np
import torch

LEFT_EYE, RIGHT_EYE = slice(36, 42), slice(42, 48)  # 68-point (iBUG) landmark indices


def confusion_matrix(y_true, y_pred, num_classes: int) -> np.ndarray:
    """int64 [C, C] counts, rows = true class, columns = predicted class."""
    y_true = np.asarray(y_true, dtype=np.int64).ravel()
    y_pred = np.asarray(y_pred, dtype=np.int64).ravel()
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true and y_pred differ in length: {y_true.size} vs {y_pred.size}")
    for name, y in (("y_true", y_true), ("y_pred", y_pred)):
        if y.size and (y.min() < 0 or y.max() >= num_classes):
            raise ValueError(f"{name} holds class ids outside 0..{num_classes - 1}")
    counts = np.bincount(y_true * num_classes + y_pred, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    return np.divide(num, den, out=np.zeros(num.shape, dtype=np.float64), where=den != 0)


def classification_metrics(cm) -> dict[str, float]:
    """{acc, uf1, uar, war, wf1} from a confusion matrix (rows = true). All 0 for an empty matrix."""
    cm = np.asarray(cm, dtype=np.float64)
    total = cm.sum()
    hits = np.diag(cm)
    support, predicted = cm.sum(axis=1), cm.sum(axis=0)
    recall = _ratio(hits, support)
    f1 = _ratio(2 * hits, support + predicted)  # = 2PR / (P + R), 0 where undefined
    weights = _ratio(support, np.full_like(support, total))
    return {
        "acc": float(_ratio(hits.sum(), total)),
        "uf1": float(f1.mean()),
        "uar": float(recall.mean()),
        "war": float((recall * weights).sum()),
        "wf1": float((f1 * weights).sum()),
    }


def eye_centres(landmarks):
    """[..., 68, 2] (numpy or torch) -> the means of points 36-41 and 42-47, each [..., 2] (the subject's
    right and left eye: left and right in the image)."""
    return landmarks[..., LEFT_EYE, :].mean(-2), landmarks[..., RIGHT_EYE, :].mean(-2)


def inter_ocular_distance(landmarks: torch.Tensor, min_distance: float = 1.0) -> torch.Tensor:
    """[..., 68, 2] -> [...]: distance between the eye centres, as in the official `get_pupil_distance`;
    clamped to `min_distance` pixels so a degenerate target cannot divide by 0."""
    left, right = eye_centres(landmarks)
    return (right - left).norm(dim=-1).clamp_min(min_distance)


def flow_epe(pred, target) -> float:
    """Mean end-point error in pixels; flow arrays [..., 2, H, W] (channel 0 = x, 1 = y)."""
    pred, target = _as_float(pred), _as_float(target)
    _check_same_shape(pred, target)
    return float((pred - target).norm(dim=-3).mean())


def landmark_nme(pred, target) -> float:
    """Mean point-to-point error divided by the target's inter-ocular distance; arrays [..., 68, 2]."""
    pred, target = _as_float(pred), _as_float(target)
    _check_same_shape(pred, target)
    error = (pred - target).norm(dim=-1).mean(-1)  # [...]
    return float((error / inter_ocular_distance(target)).mean())


def _as_float(x) -> torch.Tensor:
    return torch.as_tensor(x).detach().to(device="cpu", dtype=torch.float64)


def _check_same_shape(pred: torch.Tensor, target: torch.Tensor) -> None:
    if pred.shape != target.shape:
        raise ValueError(f"prediction and target shapes differ: {list(pred.shape)} vs {list(target.shape)}")
