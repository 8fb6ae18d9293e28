"""The evaluation's sample pictures: label vs prediction (vs the synthetic set's truth) for the flow and
the landmarks of the clips that `mol train` kept in a fold's samples.npz.

Colours: GREEN = labels (TV-L1 flow, dlib landmarks), RED = model predictions, BLUE = ground truth
(known only for synthetic data).
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from matplotlib.figure import Figure

from components.io import sample_file_stem
from components.reports.drawing import (BLUE, GREEN, RED, color_wheel, draw_landmarks, flow_magnitude, flow_scale,
                                        flow_to_color, save_figure, show)
from mol_model.metrics import flow_epe, landmark_nme


def flow_samples_figure(frames: np.ndarray, label_flow: np.ndarray, pred_flow: np.ndarray,
                        true_flow: np.ndarray | None = None, names: Sequence[str] | None = None,
                        path: str | Path | None = None) -> Figure:
    """One row per sample: the frame, then label (e.g. TV-L1), prediction and (if given) true flow as colours
    on one shared magnitude scale per row, with the prediction's end-point error against each.

    frames [N, H, W] uint8 (first frame of each pair); flows [N, 2, H, W] pixels. Saved as PNG to
    `path` when given; returns the figure either way."""
    columns = [("label", label_flow), ("prediction", pred_flow)]
    if true_flow is not None:
        columns.append(("truth", true_flow))
    n = len(frames)
    figure = Figure(figsize=(2.3 * (len(columns) + 2), 2.6 * n), layout="constrained")
    axes = figure.subplots(n, len(columns) + 2, squeeze=False)
    for i in range(n):
        largest = flow_scale(*(f[i] for _, f in columns))
        show(axes[i, 0], frames[i], names[i] if names else f"sample {i}")
        for j, (name, flows) in enumerate(columns, start=1):
            title = name
            if name == "prediction":
                title += f"\nEPE vs label {flow_epe(pred_flow[i], label_flow[i]):.3f} px"
                if true_flow is not None:
                    title += f"\nEPE vs truth {flow_epe(pred_flow[i], true_flow[i]):.3f} px"
            elif name == "truth":
                title += f"\nlabel's EPE {flow_epe(label_flow[i], true_flow[i]):.3f} px"
            show(axes[i, j], flow_to_color(flows[i], largest), title)
        show(axes[i, -1], color_wheel(), f"rim = {largest:.3f} px")
    if path is not None:
        save_figure(figure, path)
    return figure


def landmark_samples_figure(frames: np.ndarray, label_landmarks: np.ndarray, pred_landmarks: np.ndarray,
                            true_landmarks: np.ndarray | None = None, names: Sequence[str] | None = None,
                            columns: int = 4, zoom: int = 2, path: str | Path | None = None) -> Figure:
    """One panel per sample: the frame with label (green), predicted (red) and, if given, true (blue)
    landmarks, titled with the prediction's NME against the label (and the truth).

    frames [N, H, W] uint8; landmarks [N, 68, 2] pixels. Saved as PNG to `path` when given."""
    n = len(frames)
    columns = min(columns, n)
    rows = -(-n // columns)
    figure = Figure(figsize=(2.6 * columns, 2.9 * rows), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_axis_off()
    for i, ax in enumerate(axes.flat[:n]):
        sets, colors = [label_landmarks[i], pred_landmarks[i]], [GREEN, RED]
        name = names[i] if names else f"sample {i}"
        title = f"{name}\nNME {landmark_nme(pred_landmarks[i], label_landmarks[i]):.3f}"
        if true_landmarks is not None:
            sets.append(true_landmarks[i])
            colors.append(BLUE)
            title += f" (vs truth {landmark_nme(pred_landmarks[i], true_landmarks[i]):.3f})"
        show(ax, draw_landmarks(frames[i], np.stack(sets), colors, zoom=zoom), title)
    legend = "green = label, red = prediction" + (", blue = truth" if true_landmarks is not None else "")
    figure.suptitle(legend, fontsize=9)
    if path is not None:
        save_figure(figure, path)
    return figure



def sample_truth(sample_ids, aligned: str | Path, truth: str | Path) -> tuple[np.ndarray, np.ndarray] | None:
    """True flow [K,7,2,128,128] and landmarks [K,8,68,2] of the samples' first evaluation clips, when
    TRUTH (a `mol synth` folder) holds the ground truth of every one of them; else None (a real data set)."""
    from components.synthetic.truth import true_eval_clip  # the synthetic set's truth: never loaded for real data

    clips = []
    for sample_id in sample_ids:
        aligned_file = Path(aligned) / f"{sample_file_stem(str(sample_id))}.npz"
        clip = true_eval_clip(truth, aligned_file, str(sample_id)) if aligned_file.is_file() else None
        if clip is None:
            return None
        clips.append(clip)
    return np.stack([c[0] for c in clips]), np.stack([c[1] for c in clips])


def sample_figures(fold: dict, out: Path, aligned: str | Path | None = None, truth: str | Path | None = None) -> None:
    """OUT/flow_samples.png and OUT/landmark_samples.png from the fold's samples.npz: per sample, the frame
    pair with the most labelled motion (flow t -> t+1, landmarks of frame t+1, which the model predicts);
    with the synthetic ground truth too when ALIGNED and TRUTH hold it for every sample."""
    with np.load(Path(fold["path"]) / "samples.npz", allow_pickle=False) as samples:
        data = {k: samples[k] for k in samples.files}
    k = np.arange(len(data["sample_ids"]))  # [K]
    t = flow_magnitude(data["label_flow"].astype(np.float32)).mean(axis=(2, 3)).argmax(axis=1)  # [K] pair t -> t+1
    known = sample_truth(data["sample_ids"], aligned, truth) if aligned and truth else None
    true_flow, true_landmarks = (known[0][k, t], known[1][k, t + 1]) if known else (None, None)
    if aligned and truth and known is None:
        print(f"evaluate: no ground truth in {truth} for the sample clips (not the synthetic data set); "
              "sample pictures without truth")
    who = [f"fold {fold['fold']} {sid}" for sid in data["sample_ids"]]
    flow_samples_figure(data["frames"][k, t], data["label_flow"][k, t].astype(np.float32),
                        data["pred_flow"][k, t].astype(np.float32), true_flow, path=out / "flow_samples.png",
                        names=[f"{w}\nframes {i + 1}\u2192{i + 2}" for w, i in zip(who, t)])
    landmark_samples_figure(data["frames"][k, t + 1], data["label_landmarks"][k, t + 1], data["pred_landmarks"][k, t],
                            true_landmarks, names=[f"{w} frame {i + 2}" for w, i in zip(who, t)],
                            path=out / "landmark_samples.png")

