"""`mol evaluate`: pool the folds of a training run into one score, plot it, register the best model.

Scores come from the confusion matrices SUMMED over folds (as in the MER literature), at two levels:
- video (the headline): one decision per sample, the argmax of the mean of its clips' logits;
- clip: one decision per 8-frame clip.
Flow EPE and landmark NME are means over all test clips. With several data sets in the run (a
composite such as MEGC2019), every score is also given per data set.

Two files: `headline.json`, the few numbers `dvc metrics show` and `dvc exp show` list (video-level UF1,
UAR, accuracy; flow EPE; landmark NME; the trivial baselines where present), and `metrics.json` with
everything (both levels, confusion matrices, per data set, folds, the registered model).

Sample pictures: `flow_samples.png` and `landmark_samples.png` show label vs prediction on the clips
that `mol train` kept in the best fold's `samples.npz`, and the truth too on the synthetic data set
(given its folder and the aligned frames, `--truth` and `--aligned`).
"""
from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

from components.config import EvaluateSettings, MlflowSettings, TrainSettings, add_params_argument, params_from_args
from components.data import read_manifest
from components.data.folds import fold_dirs, read_fold_plan
from components.errors import UserError
from components.io import check_output, write_csv, write_json
from components.reports.plots import confusion_matrix_figure, per_fold_figure
from components.reports.samples import sample_figures
from components.tracking import runs as tracking
from components.training.scoring import (LEVELS, METRICS, chance_summary, collapse_message, collapse_remedies,
                                         level_summary, majority_summary, summary_of)

HEADLINE = ("uf1", "uar", "acc", "flow_epe", "landmark_nme")  # video level, as in metrics.json's top level
BASELINES = ("uf1_chance", "uf1_majority", "flow_epe_zero", "landmark_nme_mean_shape")  # the same, trivially
CLIP_MEANS = ("flow_epe", "landmark_nme", "flow_epe_zero", "landmark_nme_mean_shape")  # pooled over test clips


# ---------------------------------------------------------------------------------------------- reading runs

def read_fold_results(runs: str | Path) -> tuple[list[dict], list[dict], list[dict]]:
    """(finished folds, skipped folds, unfinished folds) of a run, by fold number. Unfinished: folds the
    run's fold_plan.json lists that have no result yet, and results made from other samples than it lists
    (`{"fold", "test_subject", "reason"}`); they are left out of the pooled score and named."""
    paths = [d / "metrics.json" for d in fold_dirs(runs) if (d / "metrics.json").is_file()]
    if not paths:
        raise UserError(f"{runs} holds no fold_*/metrics.json; train folds first with `mol train --out {runs}`")
    folds = []
    for path in paths:
        try:
            folds.append({**json.loads(path.read_text()), "path": str(path.parent)})
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise UserError(f"{path} is not JSON ({e}); delete it and rerun `mol train` for that fold") from None
        if not isinstance(folds[-1].get("fold"), int) or folds[-1].get("status") not in ("done", "skipped"):
            raise UserError(f"{path} is not a fold result of `mol train`; delete it and rerun `mol train` for that fold")
    folds, unfinished = _unfinished_folds(runs, sorted(folds, key=lambda f: f["fold"]))
    done = [f for f in folds if f["status"] == "done"]
    skipped = [f for f in folds if f["status"] != "done"]
    if not done:
        reason = skipped[0].get("reason") if skipped else unfinished[0]["reason"]
        raise UserError(f"no fold of {runs} is finished ({reason}); finish training with `mol train --out {runs}`")
    shapes = {(f["num_classes"], tuple(f["class_names"])) for f in done}
    if len(shapes) > 1:
        raise UserError(f"the folds in {runs} disagree on the classes {sorted(shapes)}; train them from one FOLDS.json")
    return done, skipped, unfinished


def _unfinished_folds(runs: str | Path, folds: list[dict]) -> tuple[list[dict], list[dict]]:
    """(the results that belong to the run, the folds it lacks). The run's folds are those of its
    fold_plan.json (`mol train` writes it), else every fold folder present (a run from before the plan)."""
    plan = read_fold_plan(runs)
    by_number = {f["fold"]: f for f in folds}
    folders = {int(m[1]): d for d in fold_dirs(runs) if (m := re.fullmatch(r"fold_(\d+)", d.name))}
    expected = sorted(plan) if plan is not None else sorted(set(folders) | set(by_number))
    kept, unfinished = [], []
    for k in expected:
        result, subject = by_number.get(k), (plan[k]["test_subject"] if plan else None)
        if result is None:
            state = folders[k] / "resume" / "state.safetensors" if k in folders else None
            reason = "training is unfinished" if state is not None and state.is_file() else "not trained yet"
        elif plan is not None and (result.get("made_from") or {}).get("samples") != plan[k]["samples"]:
            reason = "its result was trained on other samples than the run's folds file lists; train it again"
        else:
            kept.append(result)
            continue
        unfinished.append({"fold": k, "test_subject": subject or (result or {}).get("test_subject", "?"),
                           "reason": reason})
    unfinished += [{"fold": k, "test_subject": f["test_subject"], "reason": "not a fold of the run's folds file"}
                   for k, f in by_number.items() if k not in expected]
    return kept, sorted(unfinished, key=lambda f: f["fold"])


def dataset_of(manifest: str | Path | None):
    """sample_id -> data set: the manifest's column when given, else the sample_id's first path part."""
    if manifest is None:
        return lambda sample_id: sample_id.split("/", 1)[0]
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
    for key in CLIP_MEANS:
        if all(key in f for f in folds):
            pooled[key] = float(np.sum(clips * [f[key] for f in folds]) / clips.sum())
    if all("majority_class" in f for f in folds):  # each test video against its fold's majority class
        labels = predictions["label"].to_numpy()
        majority = predictions["fold"].map({f["fold"]: f["majority_class"] for f in folds}).to_numpy()
        pooled["baselines"] = {"chance": chance_summary(labels, num_classes),
                               "majority": majority_summary(labels, majority, num_classes)}
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



# ---------------------------------------------------------------------------------------------- stage

def evaluate(runs: str | Path, out: str | Path, settings: EvaluateSettings = EvaluateSettings(),
             manifest: str | Path | None = None, track: bool = True, parent_run_id: str | None = None,
             experiment: str = "mol", aligned: str | Path | None = None, truth: str | Path | None = None) -> dict:
    """Pool RUNS/fold_*/metrics.json into OUT/metrics.json (+ plots and CSVs), log them to the training
    run's MLflow parent run and (settings.register) register the best fold's model as model_name@alias. With
    ALIGNED (`mol align` output) and TRUTH (`mol synth` output) the sample pictures show the true flow and
    landmarks."""
    if (aligned is None) != (truth is None):
        raise UserError("--aligned and --truth go together (the truth is mapped into the aligned frames); "
                        "give both, or neither")
    runs, out = Path(runs), check_output(out)
    folds, skipped, unfinished = read_fold_results(runs)
    class_names, num_classes = list(folds[0]["class_names"]), int(folds[0]["num_classes"])
    for f in skipped:
        print(f"evaluate: fold {f['fold']} ({f['test_subject']}) was skipped in training ({f.get('reason')}); "
              "it is not in the pooled score")
    for f in unfinished:
        print(f"evaluate: WARNING: fold {f['fold']} ({f['test_subject']}) is not in the pooled score: {f['reason']}")
    selections = sorted({f["selection"] for f in folds})
    if "leaky-best-on-test" in selections:
        print("evaluate: WARNING: folds trained with --select-on-test chose their step on the test subject; "
              "these scores leak test data and are optimistic")

    predictions = prediction_table(folds, class_names, dataset_of(manifest))
    pooled = pool(folds, predictions, num_classes)
    collapse = collapse_message(predictions["label"], predictions["pred"], class_names)
    if collapse:
        print(f"evaluate: WARNING: pooled over all folds, {collapse}; retrain with "
              f"{collapse_remedies(TrainSettings.from_mapping(folds[0]['config'], str(runs)))}")
    champion = best_fold(folds)
    headline = pooled["video"]
    baselines = pooled.get("baselines", {})
    metrics = {**{k: headline[k] for k in METRICS}, **{k: pooled[k] for k in CLIP_MEANS if k in pooled},
               **{f"uf1_{name}": b["uf1"] for name, b in baselines.items()},
               **({"baselines": baselines} if baselines else {}), "level": "video",
               "video": pooled["video"], "clip": pooled["clip"],
               **({"per_dataset": pooled["per_dataset"]} if "per_dataset" in pooled else {}),
               "num_classes": num_classes, "class_names": class_names, "folds": len(folds),
               "skipped_folds": [f["fold"] for f in skipped], "unfinished_folds": [f["fold"] for f in unfinished],
               "complete": not unfinished, "selection": selections,
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
                    out / "per_fold.png", "video-level UF1 / UAR per fold (test subject)",
                    {f"{name} UF1": b["uf1"] for name, b in baselines.items()})
    if (Path(champion["path"]) / "samples.npz").is_file():
        sample_figures(champion, out, aligned, truth)
    else:
        print(f"evaluate: {champion['path']} has no samples.npz (deleted?); no sample pictures")
    write_json(out / "metrics.json", metrics)
    write_json(out / "headline.json", headline_of(metrics))
    print(f"evaluate: {pooled_folds}, {headline['n']} videos: UF1 {headline['uf1']:.3f}, UAR {headline['uar']:.3f}, "
          f"acc {headline['acc']:.3f} (clip level UF1 {pooled['clip']['uf1']:.3f}); flow EPE {pooled['flow_epe']:.3f} px, "
          f"landmark NME {pooled['landmark_nme']:.4f} -> {out / 'metrics.json'}")
    if baselines and "flow_epe_zero" in pooled and "landmark_nme_mean_shape" in pooled:
        print(f"evaluate: trivial baselines: UF1 {baselines['chance']['uf1']:.3f} by chance, "
              f"{baselines['majority']['uf1']:.3f} for the majority class; flow EPE {pooled['flow_epe_zero']:.3f} px "
              f"predicting no motion; landmark NME {pooled['landmark_nme_mean_shape']:.4f} for the mean shape")

    if tracking.tracking_enabled(track):
        register = settings.register and (not unfinished or settings.allow_incomplete)
        metrics["registered"] = _track(runs, out, metrics, champion, settings, parent_run_id, experiment, register)
        write_json(out / "metrics.json", metrics)
        if settings.register and not register:
            raise UserError(f"the run in {runs} is incomplete (fold {', '.join(str(f['fold']) for f in unfinished)} "
                            f"not in the pooled score, see above); the scores are in {out}, but no model was "
                            f"registered: finish training (`mol train ... --out {runs}`) or pass --allow-incomplete")
    elif settings.register:
        print("evaluate: MLflow tracking is off, so no model is registered")
    return metrics


def headline_of(metrics: dict) -> dict:
    """The compact scores for `dvc metrics show`: HEADLINE, then whichever BASELINES metrics holds."""
    return {key: metrics[key] for key in (*HEADLINE, *BASELINES) if key in metrics}


def _track(runs: Path, out: Path, metrics: dict, champion: dict, settings: EvaluateSettings,
           parent_run_id: str | None, experiment: str, register: bool) -> dict | None:
    """Log the pooled results to the training's parent run (or a new run) and register the champion."""
    run_id = tracking.parent_run_id(runs, parent_run_id)
    if run_id:
        parent = tracking.open_run(run_id, "pass --parent-run-id, or --no-mlflow to skip tracking")
    else:
        print("evaluate: no parent run recorded for these folds (trained with --no-mlflow?); starting a new run")
        parent = tracking.start_parent_run(experiment, f"evaluate {runs.name}", {"runs": str(runs)},
                                           {"protocol": ",".join(metrics["selection"])})
    flat = {k: metrics[k] for k in (*METRICS, *CLIP_MEANS, "uf1_chance", "uf1_majority") if k in metrics}
    flat |= {f"clip_{k}": metrics["clip"][k] for k in METRICS}
    for name, scores in metrics.get("per_dataset", {}).items():
        flat |= {f"{name}_{k}": scores["video"][k] for k in ("uf1", "uar")}
    parent.log_metrics(flat)
    parent.set_tags({"collapsed": metrics["collapsed"], "best_fold": champion["fold"]})
    for name in ("metrics.json", "predictions.csv", "per_fold.csv", "confusion_matrix.png",
                 "confusion_matrix_clip.png", "per_fold.png", "flow_samples.png", "landmark_samples.png"):
        if (out / name).is_file():
            parent.log_artifact(out / name, "evaluation")
    registered = None
    if register:
        model_name, alias = settings.model_name, settings.alias
        version = tracking.log_and_register_model(
            parent, Path(champion["path"]) / "model.safetensors", model_name, alias,
            tags={"fold": champion["fold"], "test_subject": champion["test_subject"],
                  "video_uf1": champion["video"]["uf1"], "selection": champion["selection"],
                  **champion.get("provenance", {})})
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
    parser.add_argument("--no-mlflow", action="store_true", help=f"no tracking at all (also: {tracking.SWITCH_ENV}=off)")
    parser.add_argument("--parent-run-id", default=None,
                        help=f"log to this run (also: {tracking.PARENT_ENV}); default: RUNS/{tracking.PARENT_RECORD}, "
                             "else a new run in the experiment")
    parser.add_argument("--aligned", default=None,
                        help="`mol align` output folder; with --truth, the sample pictures also show the truth")
    parser.add_argument("--truth", default=None,
                        help="`mol synth` output folder (holds ground_truth/): draw the true flow and landmarks "
                             "in the sample pictures; a folder without ground truth (a real data set) draws none")
    add_params_argument(parser)
    EvaluateSettings.add_arguments(parser)
    MlflowSettings.add_arguments(parser)


def run(args: argparse.Namespace) -> int:
    params = params_from_args(args)
    evaluate(args.runs, args.out, EvaluateSettings.from_args(args, params), manifest=args.manifest,
             track=not args.no_mlflow, parent_run_id=args.parent_run_id,
             experiment=MlflowSettings.from_args(args, params).experiment, aligned=args.aligned, truth=args.truth)
    return 0
