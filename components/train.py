"""`mol train`: joint MOL training (MER + optical flow + landmarks), one model per cross-validation fold.

Per fold, in `OUT/fold_KK/`:
  model.safetensors   the evaluated model (weights + config in the metadata; training/checkpoint.py)
  metrics.json        clip- and video-level confusion matrices and metrics, flow EPE, landmark NME,
                      losses, per-video predictions, the step the training accuracy passed 0.8;
                      written last, so its presence means "fold done"
  train_log.csv       step, loss terms, batch and running accuracy, lr (and selection scores when a
                      selection set is used)
  training_curves.png, confusion_matrix.png
  samples.npz         the first test clip of up to 2 test videos with labels and predictions (flow,
                      landmarks), for `mol evaluate`'s sample pictures
  resume/state.safetensors   while training: weights, optimizer and RNG state (JSON metadata, no pickle)

Protocol. By default the evaluated model is the one at the END of training: the test subject is used
once, for the final score. `--val-subjects N` keeps the best step on N held-out TRAINING subjects
(honest). `--select-on-test` reproduces the official protocol, keeping the step with the best test
score: that leaks test labels into model selection, and every output says so.

Determinism: the batch and learning rate of step t are pure functions of (seed, t), and the model
initialisation of the seed (and, with `init: baselines`, the fold's training clips), so a fold gives the same result alone (`--fold K`) or inside `--all`, and a killed run resumed
from its last checkpoint ends with the same weights as an uninterrupted one (on CPU).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from components.config import ExecutionSettings, MlflowSettings, TrainSettings, add_params_argument, params_from_args
from components.data.folds import datasets_of, fold_dir, members_digest, read_folds, write_fold_plan
from components.errors import UserError
from components.io import check_output, digest, output_lock, write_csv, write_json, write_npz, write_text
from components.reports.plots import confusion_matrix_figure, training_curves_figure
from components.tracking import runs as tracking
from components.training.checkpoint import NORMALIZATION, save_model
from components.training.data import (BatchSampler, ClipSet, check_clips_dir, class_weights, clip_identities, cropped,
                                      flow_backend, hold_out_validation, load_clips, sample_clips)
from components.training.devices import pick_device, precision_label
from components.training.loop import train_steps
from components.training.margin import PASS_ACCURACY, pass_step
from components.training.resume import FoldState, check_same_settings, load_resume, resume_made_from
from components.training.scoring import (chance_summary, collapse_message, collapse_remedies, majority_summary,
                                         probabilities, score, video_logits)
from components.training.trainer import LOSS_TERMS, Trainer
from mol_model.memory import keep_freed_memory

LEAK_WARNING = ("--select-on-test leaks test data: it keeps the step with the best score on the TEST subject, "
                "so the scores are optimistic and not comparable with an honest protocol")


def train(clips: str | Path, folds: str | Path, out: str | Path, fold: int | None = None,
          config: TrainSettings = TrainSettings(), execution: ExecutionSettings = ExecutionSettings(),
          track: bool = True, experiment: str = "mol", parent_run_id: str | None = None,
          artifact_location: str | None = None, stop_after: int | None = None) -> list[dict | None]:
    """Train fold `fold` of FOLDS.json (index into its list), or every fold when None. Finished folds
    are skipped, interrupted ones resumed. Returns the folds' metrics (None for a fold stopped by
    `stop_after`, the number of steps this process may run per fold)."""
    folds_path, out = Path(folds), check_output(out)
    folds_doc = read_folds(folds_path)
    specs = folds_doc["folds"]
    if fold is not None and not 0 <= fold < len(specs):
        raise UserError(f"--fold {fold} is out of range: {folds_path} has folds 0..{len(specs) - 1}")
    check_clips_dir(clips)
    chosen = specs if fold is None else [specs[fold]]
    clip_ids = clip_identities(clips, {sid for spec in chosen for sid in (*spec["train"], *spec["test"])})
    write_fold_plan(out, folds_doc)
    device = pick_device(execution.device)
    if execution.threads:
        torch.set_num_threads(execution.threads)
    keep_freed_memory()  # training reaches its peak memory every step: stop glibc returning it (~7% faster)
    if config.select_on_test:
        print(f"train: WARNING: {LEAK_WARNING}")
    else:
        print(f"train: protocol {config.protocol}: the test subject is used only for the final score")

    parent = tracking.Run()
    if tracking.tracking_enabled(track):
        parent = parent_run(out, folds_path, folds_doc, config, experiment, parent_run_id, artifact_location)
    results = []
    for spec in chosen:
        with output_lock(fold_dir(out, int(spec["fold"])), "train"):
            results.append(train_fold(clips, spec, folds_doc, out, config, execution, device, parent, stop_after,
                                      fold_made_from(spec, folds_doc, clip_ids)))
        if results[-1] is None:
            break
    parent.flush()
    return results


def parent_run(out: Path, folds_path: Path, folds_doc: dict, config: TrainSettings, experiment: str,
               given_id: str | None, artifact_location: str | None) -> tracking.Run:
    """The parent MLflow run: the given or recorded one (tracking.parent_run_id), else a new one, recorded
    in OUT/parent_run_id.txt for the other folds and `mol evaluate`."""
    run_id = tracking.parent_run_id(out, given_id)
    mode = folds_doc.get("mode", "loso")
    if run_id:
        parent = tracking.open_run(run_id, f"pass the right --parent-run-id, or delete {out / tracking.PARENT_RECORD} "
                                           "to start a new parent run")
        parent.set_tags({"protocol": config.protocol})
    else:
        parent = tracking.start_parent_run(
            experiment, f"{mode} {out.name}",
            {**config.as_dict(), "mode": mode, "folds": len(folds_doc["folds"]),
             "num_classes": folds_doc["num_classes"], "class_names": ",".join(folds_doc["class_names"])},
            {"protocol": config.protocol, "dataset": "+".join(datasets_of(folds_doc)),
             "folds_sha256": _sha256(folds_path),
             **({"manifest_sha256": folds_doc["manifest_sha256"]} if "manifest_sha256" in folds_doc else {})},
            artifact_location)
    write_text(out / tracking.PARENT_RECORD, parent.run_id + "\n")
    return parent


def fold_made_from(spec: dict, folds_doc: dict, clip_ids: dict[str, str]) -> dict:
    """What a fold's result is made from: its samples and classes, and its clip files' identities."""
    return {"samples": members_digest(spec, folds_doc),
            "clips": digest({sid: clip_ids[sid] for sid in sorted({*spec["train"], *spec["test"]})})}


def _finished(where: Path, config: TrainSettings, identity: dict) -> dict | None:
    """The fold's metrics when it is finished from these inputs; None when it must be (re)trained. A result
    made from other samples or clip files is removed first (the fold then reads as unfinished)."""
    metrics_path, resume_dir = where / "metrics.json", where / "resume"
    if (resume_dir / "state.safetensors").is_file() and \
            resume_made_from(resume_dir / "state.safetensors") != identity:
        print(f"train: the resume state in {resume_dir} was made from other inputs; the fold starts over")
        shutil.rmtree(resume_dir, ignore_errors=True)
    if not metrics_path.is_file():
        return None
    try:
        done = json.loads(metrics_path.read_text())
    except (ValueError, OSError):
        done = {}
    check_same_settings(done.get("config", {}), config, metrics_path)
    if done.get("made_from") == identity:
        print(f"train: fold {done['fold']} is finished ({metrics_path}); skipped")
        return done
    changed = [key for key in identity if (done.get("made_from") or {}).get(key) != identity[key]]
    why = {"samples": "samples (the folds file changed)", "clips": "clip files (labels were redone)"}
    print(f"train: {metrics_path} was made from other {' and '.join(why[key] for key in changed)}; "
          "training the fold again")
    metrics_path.unlink()
    return None


def train_fold(clips_dir: str | Path, spec: dict, folds_doc: dict, out: str | Path, config: TrainSettings,
               execution: ExecutionSettings, device: torch.device, parent: tracking.Run,
               stop_after: int | None = None, made_from: dict | None = None) -> dict | None:
    """Train and evaluate one fold of FOLDS.json (its output folder held by the caller). Returns its
    metrics, or None when it stopped after `stop_after` steps in this process (state saved: rerun to
    continue). `made_from` (`fold_made_from`) is recorded; a fold finished from other inputs is redone."""
    k = int(spec["fold"])
    where = fold_dir(out, k)
    metrics_path, resume_path = where / "metrics.json", where / "resume" / "state.safetensors"
    made_from = made_from or fold_made_from(spec, folds_doc, clip_identities(clips_dir, {*spec["train"], *spec["test"]}))
    done = _finished(where, config, made_from)
    if done is not None:
        return done

    num_classes = int(folds_doc["num_classes"])
    info = {"fold": k, "test_subject": spec["test_subject"],
            **({"test_subjects": spec["test_subjects"]} if "test_subjects" in spec else {})}
    train_set = load_clips(clips_dir, spec["train"], num_classes, desc=f"fold {k} train clips")
    test_set = load_clips(clips_dir, spec["test"], num_classes, desc=f"fold {k} test clips")
    for kind, clip_set in (("training", train_set), ("test", test_set)):
        if clip_set.missing:
            print(f"train: warning: {len(clip_set.missing)} {kind} samples have no clip file (rejected earlier?) "
                  f"and are skipped: {', '.join(clip_set.missing)}")
    missing = train_set.missing + test_set.missing
    if len(train_set) == 0 or len(test_set) == 0:
        reason = f"no {'training' if len(train_set) == 0 else 'test'} clip files"
        print(f"train: warning: fold {k} ({spec['test_subject']}) skipped: {reason}")
        skipped = {**info, "status": "skipped", "reason": reason, "missing_clip_files": missing,
                   "config": config.as_dict(), "made_from": made_from}
        write_json(metrics_path, skipped)
        return skipped

    val_set, val_subjects = None, []
    if config.val_subjects > 0:
        train_set, val_set, val_subjects = hold_out_validation(clips_dir, train_set, config.val_subjects,
                                                               config.seed, k, num_classes)

    weights = class_weights(train_set.clip_labels, num_classes) if config.balance == "loss" else None
    trainer = Trainer(config, num_classes, device, weights, execution.eval_batch_size, train_set.mean_shape())
    fold_state = FoldState(made_from=made_from)
    if resume_path.is_file():
        fold_state = load_resume(resume_path, trainer, config)
        print(f"train: fold {k} resumes at step {fold_state.step} of {config.steps}")

    made_by = provenance(folds_doc, clips_dir, spec, config, precision_label(trainer.amp))
    if fold_state.run_id and parent.active:
        run = tracking.open_run(fold_state.run_id)
        run.set_tags(made_by)  # a resumed fold may run on another device or code version
    else:
        run = tracking.start_child_run(
            parent, f"fold {k:02d} ({spec['test_subject']})",
            {**config.as_dict(), **info, "train_clips": len(train_set), "test_clips": len(test_set),
             "val_subjects_used": ",".join(val_subjects) or "-"},
            {**made_by, "fold": k, "test_subject": spec["test_subject"]})
        fold_state.run_id = run.run_id

    sampler = BatchSampler(train_set.clip_labels, config.batch_size, config.seed, config.balance == "sampler")
    selection_set = test_set if config.select_on_test else val_set
    try:
        with tracking.system_metrics(run):
            if not train_steps(trainer, sampler, train_set, selection_set, fold_state, resume_path, run,
                               f"fold {k} ({spec['test_subject']})", execution.checkpoint_every, stop_after):
                run.flush()
                print(f"train: fold {k} stopped at step {fold_state.step}; rerun the same command to continue")
                return None
            info |= {"val_subjects": val_subjects, "n_train_clips": len(train_set), "missing_clip_files": missing,
                     "provenance": made_by}
            metrics = finish_fold(trainer, train_set, test_set, folds_doc, info, fold_state, where, run)
    except BaseException as e:
        run.finish("KILLED" if isinstance(e, KeyboardInterrupt) else "FAILED")
        raise
    run.finish()
    if not execution.keep_resume:  # finished: the model file holds what is needed, at a third of the size
        shutil.rmtree(resume_path.parent, ignore_errors=True)
    return metrics


def provenance(folds_doc: dict, clips_dir: str | Path, spec: dict, config: TrainSettings, precision: str) -> dict:
    """What made a fold's model, as tags of its MLflow run and (via metrics.json) of its registered version."""
    return {"dataset": "+".join(datasets_of(folds_doc)),
            "manifest_sha256": folds_doc.get("manifest_sha256", "unknown"),
            "flow_backend": flow_backend(clips_dir, spec["train"] + spec["test"]),
            "class_names": ",".join(folds_doc["class_names"]), "code_version": tracking.code_version(),
            "precision": precision, "protocol": config.protocol}


def finish_fold(trainer: Trainer, train_set: ClipSet, test_set: ClipSet, folds_doc: dict, info: dict,
                fold_state: FoldState, where: Path, run: tracking.Run) -> dict:
    """Evaluate the chosen weights on the test subject beside the trivial baselines (no motion, the training
    clips' mean landmark shape, chance, the training set's majority class); write the model, metrics, log
    and plots."""
    config = trainer.config
    num_classes, class_names = int(folds_doc["num_classes"]), list(folds_doc["class_names"])
    picks = sample_clips(test_set)
    evaluation = trainer.evaluate(test_set, keep=picks, mean_shape=train_set.mean_shape())
    majority = int(np.bincount(train_set.labels, minlength=num_classes).argmax())  # by training videos
    logits = evaluation["logits"]  # [N clips, C]
    scores = score(test_set, logits, num_classes)
    video_probabilities = probabilities(video_logits(logits, test_set.clip_sample, len(test_set.sample_ids)))
    clip_pred = logits.argmax(1)
    predictions = [{"sample_id": sid, "subject": subject, "label": int(label), "pred": int(p.argmax()),
                    "probabilities": [round(float(x), 6) for x in p],
                    "clip_predictions": clip_pred[test_set.clip_sample == i].tolist()}
                   for i, (sid, subject, label, p) in enumerate(zip(test_set.sample_ids, test_set.subjects,
                                                                     test_set.labels, video_probabilities))]
    collapse = collapse_message(test_set.clip_labels, clip_pred, class_names)
    if collapse:
        print(f"train: WARNING: fold {info['fold']}: {collapse}; try {collapse_remedies(config)}")
    recent = fold_state.log[-10:]
    selected_step = fold_state.best["step"] if config.selecting else config.steps
    passed = pass_step([row["acc"] for row in fold_state.log])  # training margin: training/margin.py
    metrics = {
        **info, "status": "done", "selection": config.selection, "protocol": config.protocol,
        "selected_step": selected_step, "steps": config.steps,
        "num_classes": num_classes, "class_names": class_names,
        "clip": scores["clip"], "video": scores["video"],
        "flow_epe": evaluation["flow_epe"], "landmark_nme": evaluation["landmark_nme"],
        "flow_epe_zero": evaluation["flow_epe_zero"], "landmark_nme_mean_shape": evaluation["landmark_nme_mean_shape"],
        "majority_class": majority,
        "baselines": {"chance": chance_summary(test_set.labels, num_classes),
                      "majority": majority_summary(test_set.labels, majority, num_classes)},
        "test_losses": evaluation["losses"],
        "final_train_losses": {t: float(np.mean([r[t] for r in recent])) for t in LOSS_TERMS},
        "train_acc_final": recent[-1]["acc_running"], "train_acc_pass_step": passed,
        "collapsed": collapse is not None, "collapse_warning": collapse,
        "n_test_clips": len(test_set), "n_test_videos": len(test_set.sample_ids),
        "train_seconds": round(fold_state.seconds, 2),
        "train_clips_per_second": round(config.steps * config.batch_size / max(fold_state.seconds, 1e-9), 3),
        "device": str(trainer.device), "precision": precision_label(trainer.amp),
        "predictions": predictions, "config": config.as_dict(), "made_from": fold_state.made_from,
    }
    save_model(where / "model.safetensors", trainer.model, {
        "num_classes": num_classes, "neighbors": config.neighbors, "mer_input": config.mer_input,
        "class_names": class_names,
        "normalization": NORMALIZATION, "fold": info["fold"], "test_subject": info["test_subject"],
        "steps": config.steps, "selection": config.selection, "selected_step": selected_step, "seed": config.seed,
        "flow_weight": config.flow_weight, "landmark_weight": config.landmark_weight})
    write_csv(where / "train_log.csv", pd.DataFrame(fold_state.log))
    write_samples(where / "samples.npz", test_set, picks, evaluation)
    training_curves_figure(fold_state.log, where / "training_curves.png", (*LOSS_TERMS, "acc_running"))
    confusion_matrix_figure(np.array(scores["video"]["confusion_matrix"]), class_names,
                            where / "confusion_matrix.png",
                            f"fold {info['fold']} ({info['test_subject']}), video level")
    write_json(where / "metrics.json", metrics)

    run.log_metrics({f"{level}_{name}": scores[level][name] for level in ("clip", "video")
                     for name in ("acc", "uf1", "uar", "war", "wf1")}
                    | {k: metrics[k] for k in ("flow_epe", "landmark_nme", "flow_epe_zero", "landmark_nme_mean_shape")}
                    | {f"video_uf1_{b}": metrics["baselines"][b]["uf1"] for b in ("chance", "majority")}
                    | {f"test/{t}": v for t, v in evaluation["losses"].items()}
                    | ({} if passed is None else {"train_acc_pass_step": passed}), step=config.steps)
    run.set_tags({"selection": config.selection, "selected_step": selected_step, "collapsed": metrics["collapsed"],
                  "device": metrics["device"], "precision": metrics["precision"]})
    # The weights stay in OUT; MLflow gets them once, as the registered champion's model (`mol evaluate`).
    for name in ("metrics.json", "train_log.csv", "training_curves.png", "confusion_matrix.png"):
        run.log_artifact(where / name)
    print(f"train: fold {info['fold']} ({info['test_subject']}): video UF1 {scores['video']['uf1']:.3f} "
          f"UAR {scores['video']['uar']:.3f} (majority class {metrics['baselines']['majority']['uf1']:.3f}), clip UF1 "
          f"{scores['clip']['uf1']:.3f}; flow EPE {metrics['flow_epe']:.3f} px (zero flow "
          f"{metrics['flow_epe_zero']:.3f}), landmark NME {metrics['landmark_nme']:.4f} (mean shape "
          f"{metrics['landmark_nme_mean_shape']:.4f}); training accuracy "
          + (f"passed {PASS_ACCURACY} at step {passed} of {config.steps}" if passed else f"never passed {PASS_ACCURACY}")
          + f" -> {where}")
    return metrics


def write_samples(path: Path, clips: ClipSet, picks: np.ndarray, evaluation: dict) -> None:
    """The picked clips with their labels and the evaluation's predictions, small enough to keep per fold:
    frames uint8 [K,T,H,W], flows float16 [K,T-1,2,H,W], landmarks float32 ([K,T,68,2] label,
    [K,T-1,68,2] prediction for frames 1..T-1), sample_ids str [K]."""
    batch = cropped(clips.batch(picks))
    write_npz(path, compressed=True, frames=batch["video"], label_flow=batch["flow"].astype(np.float16),
              pred_flow=evaluation["kept_flow"].astype(np.float16),
              label_landmarks=batch["landmarks"].astype(np.float32),
              pred_landmarks=evaluation["kept_landmarks"].astype(np.float32),
              sample_ids=np.array([clips.sample_ids[s] for s in clips.clip_sample[picks]]))


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--clips", required=True, help="folder of clip files written by `mol labels`")
    parser.add_argument("--folds", required=True, help="FOLDS.json written by `mol split`")
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--fold", type=int, help="train only this fold (its index in FOLDS.json), e.g. one pod per fold")
    which.add_argument("--all", action="store_true", help="train every fold, one after the other")
    parser.add_argument("--out", required=True, help="output folder; fold K goes to OUT/fold_KK/")
    parser.add_argument("--stop-after", type=int, default=None,
                        help="run at most this many steps in this process, save and exit (time-limited jobs); "
                             "rerun the same command to continue")
    t = parser.add_argument_group("MLflow")
    t.add_argument("--no-mlflow", action="store_true", help=f"no tracking at all (also: {tracking.SWITCH_ENV}=off)")
    t.add_argument("--parent-run-id", default=None,
                   help=f"attach the fold runs to this parent run (also: {tracking.PARENT_ENV}); default: the id in "
                        f"OUT/{tracking.PARENT_RECORD}, else a new parent run")
    t.add_argument("--artifact-location", default=None,
                   help="artifact root of a NEW experiment, e.g. s3://bucket/mlflow (default: ./mlartifacts "
                        "with the local store, the server's choice otherwise)")
    add_params_argument(parser)
    TrainSettings.add_arguments(parser)
    ExecutionSettings.add_arguments(parser, only=("device", "threads", "checkpoint_every", "eval_batch_size",
                                                  "keep_resume"))
    MlflowSettings.add_arguments(parser)


def run(args: argparse.Namespace) -> int:
    params = params_from_args(args)
    results = train(args.clips, args.folds, args.out, fold=None if args.all else args.fold,
                    config=TrainSettings.from_args(args, params), execution=ExecutionSettings.from_args(args, params),
                    track=not args.no_mlflow, experiment=MlflowSettings.from_args(args, params).experiment,
                    parent_run_id=args.parent_run_id, artifact_location=args.artifact_location,
                    stop_after=args.stop_after)
    return 0 if all(r is not None for r in results) else 3
