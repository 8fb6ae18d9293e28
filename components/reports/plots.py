"""Pictures of training and evaluation: confusion matrices, per-fold bars, training curves.

Figures are built with `matplotlib.figure.Figure` (Agg canvas), never through pyplot, so no global
backend or window state is involved and the module works on headless machines and in threads.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from components.io import atomic_path


def _save(fig: Figure, path: str | Path) -> None:
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110)


def _matrix(ax, values: np.ndarray, class_names: list[str], title: str, fmt: str) -> None:
    image = ax.imshow(values, cmap="Blues", vmin=0, vmax=max(float(values.max()), 1e-9))
    ax.figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ticks = range(len(class_names))
    ax.set_xticks(ticks, class_names, rotation=45, ha="right")
    ax.set_yticks(ticks, class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    threshold = values.max() / 2
    for (i, j), v in np.ndenumerate(values):
        ax.text(j, i, format(v, fmt), ha="center", va="center", fontsize=8,
                color="white" if v > threshold else "black")


def confusion_matrix_figure(cm: np.ndarray, class_names: list[str], path: str | Path, title: str = "") -> None:
    """Counts and row-normalised (recall per true class) side by side. `cm` [C, C], rows = true."""
    cm = np.asarray(cm)
    rows = cm.sum(axis=1, keepdims=True)
    normalised = np.divide(cm, rows, out=np.zeros(cm.shape, dtype=float), where=rows > 0)
    size = 3 + 0.6 * len(class_names)
    fig = Figure(figsize=(2 * size + 1, size))
    left, right = fig.subplots(1, 2)
    _matrix(left, cm, class_names, "counts", "d")
    _matrix(right, normalised, class_names, "normalised by true class", ".2f")
    if title:
        fig.suptitle(title)
    _save(fig, path)


def per_fold_figure(folds: list[str], uf1: list[float], uar: list[float], path: str | Path,
                    title: str = "", baselines: dict[str, float] | None = None) -> None:
    """Grouped UF1/UAR bars, one group per fold (labelled by its test subject), and a dashed line per
    pooled trivial baseline (`{"chance UF1": 0.2, ...}`)."""
    x = np.arange(len(folds))
    fig = Figure(figsize=(max(6.0, 0.45 * len(folds) + 2), 4))
    ax = fig.subplots()
    ax.bar(x - 0.2, uf1, width=0.4, label="UF1")
    ax.bar(x + 0.2, uar, width=0.4, label="UAR")
    ax.set_xticks(x, folds, rotation=60, ha="right", fontsize=8)
    for (name, value), style in zip((baselines or {}).items(), ("--", ":", "-.")):
        ax.axhline(value, color="0.3", linestyle=style, linewidth=1, label=f"{name} {value:.2f}")
    ax.set_ylim(0, 1)
    ax.set_ylabel("score")
    ax.set_title(title or "per fold (test subject)")
    ax.legend()
    _save(fig, path)


def training_curves_figure(log: list[dict], path: str | Path,
                           terms: tuple[str, ...] = ("total", "mer", "flow", "landmark")) -> None:
    """Loss terms against step (log scale), one panel per term. `log` rows hold `step` and the terms."""
    steps = [row["step"] for row in log]
    fig = Figure(figsize=(3.2 * len(terms), 3))
    for ax, term in zip(fig.subplots(1, len(terms)), terms):
        values = [row[term] for row in log]
        ax.plot(steps, values, linewidth=1)
        if min(values) > 0 and max(values) > 10 * min(values):  # log only where it spans a decade
            ax.set_yscale("log")
        ax.set_title(term)
        ax.set_xlabel("step")
    _save(fig, path)
