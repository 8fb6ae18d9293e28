"""`mol evaluate`: pool the folds of a training run into one score, plot it, register the best model.

Scores come from the confusion matrices SUMMED over folds (as in the MER literature), at two levels:
- video (the headline): one decision per sample, the argmax of the mean of its clips' logits;
- clip: one decision per 8-frame clip.
Flow EPE and landmark NME are means over all test clips. With several data sets in the run (a
composite such as MEGC2019), every score is also given per data set.

Sample pictures: `flow_samples.png` and `landmark_samples.png` show label vs prediction on the clips
that `mol train` kept in the best fold's `samples.npz`, and the truth too on the synthetic data set
(given its folder and the aligned frames, `--truth` and `--aligned`).

Also the scoring helpers `mol train` uses per fold (`level_summary`, `video_logits`, `collapse_message`).
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from components import tracking
from components.errors import UserError
from components.fileio import sample_file_stem, write_csv, write_json
from components.plots import confusion_matrix_figure, per_fold_figure
from components.truth import true_eval_clip
from components.visualize import flow_magnitude, flow_samples_figure, landmark_samples_figure
from mol_model.metrics import classification_metrics, confusion_matrix

LEVELS = ("video", "clip")
METRICS = ("acc", "uf1", "uar", "war", "wf1")


# ---------------------------------------------------------------------------------------------- scoring

def level_summary(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> dict:
    """Confusion matrix (rows = true) and its acc, uf1, uar, war, wf1 for one set of decisions."""
    return summary_of(confusion_matrix(np.asarray(y_true), np.asarray(y_pred), num_classes))


def summary_of(cm: np.ndarray) -> dict:
    scores = classification_metrics(np.asarray(cm))
    return {"confusion_matrix": np.asarray(cm).tolist(), **{k: float(scores[k]) for k in METRICS},
            "n": int(np.sum(cm))}


def video_logits(clip_logits: np.ndarray, clip_sample: np.ndarray, n_samples: int) -> np.ndarray:
    """Mean clip logits per sample: [N, C] clips, sample index [N] -> [n_samples, C]."""
    sums = np.zeros((n_samples, clip_logits.shape[1]), dtype=np.float64)
    np.add.at(sums, clip_sample, clip_logits)
    counts = np.bincount(clip_sample, minlength=n_samples)[:, None]
    return (sums / np.maximum(counts, 1)).astype(np.float32)


def collapse_message(y_true, y_pred, class_names: list[str]) -> str | None:
    """A warning when every prediction is one class although the truth holds several, else None."""
    predicted, true = set(np.asarray(y_pred).tolist()), set(np.asarray(y_true).tolist())
    if len(predicted) == 1 and len(true) > 1:
        (only,) = predicted
        return (f"all {len(y_pred)} predictions are '{class_names[only]}' although the truth has "
                f"{len(true)} classes: the model collapsed to one class")
    return None


def collapse_remedies(schedule: dict) -> str:
    """What to change after a collapse, given the schedule the folds used (their metrics.json "config")."""
    remedies = ["--balance sampler"] if schedule.get("balance", "none") == "none" else []
    if schedule.get("mer_input", "official") == "official":
        remedies.append("--mer-input motion --mer-dropout 0 --lr 1e-3")
    return ", ".join(remedies + ["more --steps"]) + " (docs/training.md)"


# ---------------------------------------------------------------------------------------------- reading runs

def read_folds(runs: str | Path) -> tuple[list[dict], list[dict]]:
    """(finished folds, skipped folds) from RUNS/fold_*/metrics.json, by fold number."""
    paths = sorted(Path(runs).glob("fold_*/metrics.json"))
    if not paths:
        raise UserError(f"{runs} holds no fold_*/metrics.json; train folds first with `mol train --out {runs}`")
    folds = []
    for path in paths:
        try:
            folds.append({**json.loads(path.read_text()), "path": str(path.parent)})
        except json.JSONDecodeError as e:
            raise UserError(f"{path} is not JSON ({e}); delete it and rerun `mol train` for that fold") from None
    folds.sort(key=lambda f: f["fold"])
    done = [f for f in folds if f.get("status", "done") == "done"]
    skipped = [f for f in folds if f.get("status", "done") != "done"]
    if not done:
        raise UserError(f"every fold in {runs} was skipped ({skipped[0].get('reason')}); check the clip files")
    shapes = {(f["num_classes"], tuple(f["class_names"])) for f in done}
    if len(shapes) > 1:
        raise UserError(f"the folds in {runs} disagree on the classes {sorted(shapes)}; train them from one FOLDS.json")
    return done, skipped


def dataset_of(manifest: str | Path | None):
    """sample_id -> data set: the manifest's column when given, else the sample_id's first path part."""
    if manifest is None:
        return lambda sample_id: sample_id.split("/", 1)[0]
    from components.datasets import read_manifest

    table = read_manifest(manifest)
    lookup = dict(zip(table["sample_id"], table["dataset"]))
    return lambda sample_id: lookup.get(sample_id, sample_id.split("/", 1)[0])


def prediction_table(folds: list[dict], class_names: list[str], dataset) -> pd.DataFrame:
    rows = [{"sample_id": p["sample_id"], "dataset": dataset(p["sample_id"]), "subject": p["subject"],
             "fold": f["fold"], "actual": class_names[p["label"]], "predicted": class_names[p["pred"]],
             "label": p["label"], "pred": p["pred"], "clip_predictions": p["clip_predictions"]}
            for f in folds for p in f["predictions"]]
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------- pooling

def pool(folds: list[dict], predictions: pd.DataFrame, num_classes: int) -> dict:
    """Summed confusion matrices per level, mean flow/landmark errors over clips, per-data-set scores."""
    pooled = {level: summary_of(np.sum([np.array(f[level]["confusion_matrix"]) for f in folds], axis=0))
              for level in LEVELS}
    clips = np.array([f["n_test_clips"] for f in folds], dtype=float)
    for key in ("flow_epe", "landmark_nme"):
        pooled[key] = float(np.sum(clips * [f[key] for f in folds]) / clips.sum())
    datasets = sorted(predictions["dataset"].unique())
    if len(datasets) > 1:
        pooled["per_dataset"] = {}
        for name in datasets:
            part = predictions[predictions["dataset"] == name]
            clip_true = np.repeat(part["label"].to_numpy(), part["clip_predictions"].map(len).to_numpy())
            clip_pred = np.concatenate(part["clip_predictions"].to_list())
            pooled["per_dataset"][name] = {"video": level_summary(part["label"], part["pred"], num_classes),
                                           "clip": level_summary(clip_true, clip_pred, num_classes)}
    return pooled


def best_fold(folds: list[dict]) -> dict:
    """The fold with the best video UF1, ties broken by UAR, then by the lower fold number."""
    return max(folds, key=lambda f: (f["video"]["uf1"], f["video"]["uar"], -f["fold"]))


def fold_table(folds: list[dict]) -> pd.DataFrame:
    return pd.DataFrame([{"fold": f["fold"], "test_subject": f["test_subject"], "videos": f["n_test_videos"],
                          "clips": f["n_test_clips"], "video_uf1": f["video"]["uf1"], "video_uar": f["video"]["uar"],
                          "clip_uf1": f["clip"]["uf1"], "clip_uar": f["clip"]["uar"], "flow_epe": f["flow_epe"],
                          "landmark_nme": f["landmark_nme"], "selection": f["selection"],
                          "collapsed": f["collapsed"]} for f in folds])


# ---------------------------------------------------------------------------------------------- sample pictures

def samples_fold(folds: list[dict], champion: dict) -> dict | None:
    """The champion if it has a samples.npz, else the first fold that has one (older runs: None)."""
    return next((f for f in [champion, *folds] if (Path(f["path"]) / "samples.npz").is_file()), None)


def sample_truth(sample_ids, aligned: str | Path, truth: str | Path) -> tuple[np.ndarray, np.ndarray] | None:
    """True flow [K,7,2,128,128] and landmarks [K,8,68,2] of the samples' first evaluation clips, when
    TRUTH (a `mol synth` folder) holds the ground truth of every one of them; else None (a real data set)."""
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


# ---------------------------------------------------------------------------------------------- stage

def evaluate(runs: str | Path, out: str | Path, register: bool = True, manifest: str | Path | None = None,
             track: bool = True, parent_run_id: str | None = None, experiment: str = "mol",
             model_name: str = "mol-mer", alias: str = "champion", aligned: str | Path | None = None,
             truth: str | Path | None = None) -> dict:
    """Pool RUNS/fold_*/metrics.json into OUT/metrics.json (+ plots and CSVs), log them to the training
    run's MLflow parent run and register the best fold's model as `model_name`@`alias`. With ALIGNED
    (`mol align` output) and TRUTH (`mol synth` output) the sample pictures show the true flow and landmarks."""
    if (aligned is None) != (truth is None):
        raise UserError("--aligned and --truth go together (the truth is mapped into the aligned frames); "
                        "give both, or neither")
    runs, out = Path(runs), Path(out)
    folds, skipped = read_folds(runs)
    class_names, num_classes = list(folds[0]["class_names"]), int(folds[0]["num_classes"])
    for f in skipped:
        print(f"evaluate: fold {f['fold']} ({f['test_subject']}) was skipped in training ({f.get('reason')}); "
              "it is not in the pooled score")
    selections = sorted({f["selection"] for f in folds})
    if "leaky-best-on-test" in selections:
        print("evaluate: WARNING: folds trained with --select-on-test chose their step on the test subject; "
              "these scores leak test data and are optimistic")

    predictions = prediction_table(folds, class_names, dataset_of(manifest))
    pooled = pool(folds, predictions, num_classes)
    collapse = collapse_message(predictions["label"], predictions["pred"], class_names)
    if collapse:
        print(f"evaluate: WARNING: pooled over all folds, {collapse}; retrain with "
              f"{collapse_remedies(folds[0].get('config', {}))}")
    champion = best_fold(folds)
    headline = pooled["video"]
    metrics = {**{k: headline[k] for k in METRICS}, "flow_epe": pooled["flow_epe"],
               "landmark_nme": pooled["landmark_nme"], "level": "video",
               "video": pooled["video"], "clip": pooled["clip"],
               **({"per_dataset": pooled["per_dataset"]} if "per_dataset" in pooled else {}),
               "num_classes": num_classes, "class_names": class_names, "folds": len(folds),
               "skipped_folds": [f["fold"] for f in skipped], "selection": selections,
               "collapsed": collapse is not None, "collapse_warning": collapse,
               "collapsed_folds": [f["fold"] for f in folds if f["collapsed"]],
               "best_fold": {"fold": champion["fold"], "test_subject": champion["test_subject"],
                             "video_uf1": champion["video"]["uf1"], "video_uar": champion["video"]["uar"]}}

    write_csv(out / "predictions.csv", predictions[["sample_id", "dataset", "subject", "fold", "actual", "predicted"]])
    table = fold_table(folds)
    pooled_folds = f"{len(folds)} folds pooled" if len(folds) > 1 else "1 fold"
    write_csv(out / "per_fold.csv", table)
    confusion_matrix_figure(np.array(pooled["video"]["confusion_matrix"]), class_names, out / "confusion_matrix.png",
                            f"{pooled_folds}, video level (UF1 {headline['uf1']:.3f}, UAR {headline['uar']:.3f})")
    confusion_matrix_figure(np.array(pooled["clip"]["confusion_matrix"]), class_names,
                            out / "confusion_matrix_clip.png", f"{pooled_folds}, clip level")
    per_fold_figure(table["test_subject"].tolist(), table["video_uf1"].tolist(), table["video_uar"].tolist(),
                    out / "per_fold.png", "video-level UF1 / UAR per fold (test subject)")
    pictured = samples_fold(folds, champion)
    if pictured is None:
        print(f"evaluate: no fold in {runs} has samples.npz (trained by an older `mol train`?); "
              "no flow or landmark sample pictures")
    else:
        sample_figures(pictured, out, aligned, truth)
    write_json(out / "metrics.json", metrics)
    print(f"evaluate: {pooled_folds}, {headline['n']} videos: UF1 {headline['uf1']:.3f}, UAR {headline['uar']:.3f}, "
          f"acc {headline['acc']:.3f} (clip level UF1 {pooled['clip']['uf1']:.3f}); flow EPE {pooled['flow_epe']:.3f} px, "
          f"landmark NME {pooled['landmark_nme']:.4f} -> {out / 'metrics.json'}")

    if tracking.tracking_enabled(track):
        metrics["registered"] = _track(runs, out, metrics, champion, register, parent_run_id, experiment,
                                       model_name, alias)
        write_json(out / "metrics.json", metrics)
    elif register:
        print("evaluate: MLflow tracking is off, so no model is registered")
    return metrics


def _track(runs: Path, out: Path, metrics: dict, champion: dict, register: bool, parent_run_id: str | None,
           experiment: str, model_name: str, alias: str) -> dict | None:
    """Log the pooled results to the training's parent run (or a new run) and register the champion."""
    record = runs / "parent_run_id.txt"
    run_id = parent_run_id or os.environ.get(tracking.PARENT_ENV) or (
        record.read_text().strip() if record.is_file() else None)
    if run_id:
        parent = tracking.open_run(run_id, "pass --parent-run-id, or --no-mlflow to skip tracking")
    else:
        print("evaluate: no parent run recorded for these folds (trained with --no-mlflow?); starting a new run")
        parent = tracking.start_parent_run(experiment, f"evaluate {runs.name}", {"runs": str(runs)},
                                           {"protocol": ",".join(metrics["selection"])})
    flat = {k: metrics[k] for k in (*METRICS, "flow_epe", "landmark_nme")}
    flat |= {f"clip_{k}": metrics["clip"][k] for k in METRICS}
    for name, scores in metrics.get("per_dataset", {}).items():
        flat |= {f"{name}_{k}": scores["video"][k] for k in ("uf1", "uar")}
    parent.log_metrics(flat)
    parent.set_tags({"collapsed": metrics["collapsed"], "best_fold": champion["fold"]})
    for name in ("metrics.json", "predictions.csv", "per_fold.csv", "confusion_matrix.png",
                 "confusion_matrix_clip.png", "per_fold.png", "flow_samples.png", "landmark_samples.png"):
        if (out / name).is_file():  # no sample pictures for runs without samples.npz
            parent.log_artifact(out / name, "evaluation")
    registered = None
    if register:
        version = tracking.log_and_register_model(
            parent, Path(champion["path"]) / "model.safetensors", model_name, alias,
            tags={"fold": champion["fold"], "test_subject": champion["test_subject"],
                  "video_uf1": champion["video"]["uf1"], "selection": champion["selection"]})
        registered = {"name": model_name, "version": version, "alias": alias, "fold": champion["fold"]}
        print(f"evaluate: registered fold {champion['fold']} ({champion['test_subject']}) as "
              f"{model_name} version {version}, alias @{alias}")
    parent.finish()
    return registered


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runs", required=True, help="output folder of `mol train` (holds fold_KK/metrics.json)")
    parser.add_argument("--out", required=True, help="folder for metrics.json, plots and CSVs")
    parser.add_argument("--manifest", default=None,
                        help="manifest CSV, to name each sample's data set (default: the sample_id's first part)")
    parser.add_argument("--register", action=argparse.BooleanOptionalAction, default=True,
                        help="register the best fold's model in the MLflow registry (default: --register)")
    parser.add_argument("--model-name", default="mol-mer", help="registered model name (default mol-mer)")
    parser.add_argument("--alias", default="champion", help="alias set on the new version (default champion)")
    parser.add_argument("--no-mlflow", action="store_true", help=f"no tracking at all (also: {tracking.SWITCH_ENV}=off)")
    parser.add_argument("--experiment", default="mol",
                        help="MLflow experiment for a new run when the folds have no parent run (default mol)")
    parser.add_argument("--parent-run-id", default=None,
                        help=f"log to this run (also: {tracking.PARENT_ENV}); default: RUNS/parent_run_id.txt")
    parser.add_argument("--aligned", default=None,
                        help="`mol align` output folder; with --truth, the sample pictures also show the truth")
    parser.add_argument("--truth", default=None,
                        help="`mol synth` output folder (holds ground_truth/): draw the true flow and landmarks "
                             "in the sample pictures; a folder without ground truth (a real data set) draws none")


def run(args: argparse.Namespace) -> int:
    evaluate(args.runs, args.out, register=args.register, manifest=args.manifest, track=not args.no_mlflow,
             parent_run_id=args.parent_run_id, experiment=args.experiment, model_name=args.model_name,
             alias=args.alias, aligned=args.aligned, truth=args.truth)
    return 0
