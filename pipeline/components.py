"""The Kubeflow steps: one lightweight Python component per stage, each a thin shell that calls the
stage function inside the project image.

Data passes on a shared volume, not as KFP artifacts: every step works in one run folder,
RUN_ROOT/RUN_NAME (RUN_NAME empty: the pipeline job's id), laid out exactly like a DVC checkout
(data/manifest.csv, data/aligned/, data/clips/, data/folds.json, runs/fold_KK/, reports/, and
mlflow.db when no tracking server is set), so a step runs its stage with dvc.yaml's relative paths
after entering the folder. The manifest stores frame folders relative to itself, which survives
this; KFP artifacts would give every step other paths.

Every step gets the folder's parts as pipeline parameters and finds it itself: kfp.local (2.17)
replaces any upstream task OUTPUT used inside a ParallelFor with the loop item, so the train steps
can take only pipeline parameters and the fold index. For the same reason the parent MLflow run
reaches the folds through runs/parent_run_id.txt, which `mol train` reads when given no id.

KFP ships each function's source alone into its pod, so every import sits inside the function; the
image has this package installed, nothing is pip-installed at run time. Parameters are flat and typed
(`int`, `float`, `bool`, `str`) because KFP's dict parameters turn every number into a float.
This module has no `from __future__ import annotations`: KFP reads the annotations as real types.
"""
from types import SimpleNamespace
from typing import List, NamedTuple

from kfp import dsl
from kfp.dsl import ClassificationMetrics, Metrics, Output


def enter_run_folder(run_root: str, run_name: str, job_id: str) -> str:
    """Create and enter the run folder RUN_ROOT/RUN_NAME (RUN_NAME empty: JOB_ID); return its path.
    The steps import it from the installed package."""
    import os

    path = os.path.abspath(os.path.join(run_root, run_name or job_id))
    os.makedirs(path, exist_ok=True)
    os.chdir(path)
    print(f"run folder: {path}")
    return path


def synth_op(run_root: str, run_name: str, job_id: str, subjects: int, videos_per_subject: int,
             frames_min: int, frames_max: int, difficulty: str, seed: int) -> dict:
    """`mol synth data/synthetic`: the embedded synthetic data set."""
    import dataclasses

    from components.synth import synth
    from pipeline.components import enter_run_folder

    enter_run_folder(run_root, run_name, job_id)
    summary = synth("data/synthetic", subjects, videos_per_subject, seed, difficulty, (frames_min, frames_max))
    return dataclasses.asdict(summary)


def ingest_op(run_root: str, run_name: str, job_id: str, dataset: str, root: str, annotations: str,
              classes: int) -> dict:
    """`mol ingest`: the data set as distributed -> data/manifest.csv + data/rejects.csv. A relative
    ROOT is taken from the run folder (data/synthetic/...), an absolute one from the mounted volume."""
    from components.ingest import ingest, print_summary
    from pipeline.components import enter_run_folder

    enter_run_folder(run_root, run_name, job_id)
    summary = ingest(dataset, root, "data/manifest.csv", annotations or None, classes)
    print_summary(summary)
    return {"samples": summary.n_samples, "rejects": summary.n_rejects, "per_label": summary.per_label,
            "subjects": len(summary.per_subject)}


def align_op(run_root: str, run_name: str, job_id: str, per_frame: bool, workers: int) -> dict:
    """`mol align`: data/manifest.csv -> data/aligned/ (one .npz per sample)."""
    from components.align import align
    from pipeline.components import enter_run_folder

    enter_run_folder(run_root, run_name, job_id)
    summary = align("data/manifest.csv", "data/aligned", per_frame=per_frame, workers=workers)
    return {k: summary[k] for k in ("videos", "aligned", "skipped_existing", "rejected", "frames_per_s")}


def labels_op(run_root: str, run_name: str, job_id: str, flow: str, train_crops: int, seed: int,
              workers: int) -> dict:
    """`mol labels`: data/aligned/ -> data/clips/ (clips, crops, flow and landmark labels)."""
    from components.labels import labels
    from pipeline.components import enter_run_folder

    enter_run_folder(run_root, run_name, job_id)
    summary = labels("data/manifest.csv", "data/aligned", "data/clips", flow=flow, train_crops=train_crops,
                     workers=workers, seed=seed)
    return {k: summary[k] for k in ("videos", "labelled", "skipped_existing", "rejected", "clips")}


def split_op(run_root: str, run_name: str, job_id: str, mode: str, k: int, seed: int, classes: int) -> List[int]:
    """`mol split`: data/folds.json. Returns the fold indices the train steps fan out over."""
    from components.split import split
    from pipeline.components import enter_run_folder

    enter_run_folder(run_root, run_name, job_id)
    document = split("data/manifest.csv", "data/folds.json", mode=mode, k=k, seed=seed, num_classes=classes)
    return [int(fold["fold"]) for fold in document["folds"]]


def parent_run_op(run_root: str, run_name: str, job_id: str, experiment: str, lr: float, weight_decay: float,
                  batch_size: int, steps: int, flow_weight: float, landmark_weight: float, mer_input: str,
                  mer_dropout: float, balance: str, seed: int, select_on_test: bool, val_subjects: int) -> str:
    """The parent MLflow run (the schedule as its params), made once before the fan-out and recorded in
    runs/parent_run_id.txt for the fold steps; returns its id ('' when MOL_TRACKING=off)."""
    from pathlib import Path

    from components import tracking
    from components.train import TrainConfig, parent_run, read_folds
    from pipeline.components import enter_run_folder

    enter_run_folder(run_root, run_name, job_id)
    if not tracking.tracking_enabled():
        return ""
    config = TrainConfig(lr=lr, weight_decay=weight_decay, batch_size=batch_size, steps=steps,
                         flow_weight=flow_weight, landmark_weight=landmark_weight, mer_input=mer_input,
                         mer_dropout=mer_dropout, balance=balance, seed=seed,
                         select_on_test=select_on_test, val_subjects=val_subjects)
    folds = Path("data/folds.json")
    parent = parent_run(Path("runs"), folds, read_folds(folds), config, experiment, None, None)
    print(f"MLflow parent run {parent.run_id} in {tracking.tracking_uri()}")
    return parent.run_id


def train_op(run_root: str, run_name: str, job_id: str, fold: int, experiment: str, lr: float,
             weight_decay: float, batch_size: int, steps: int, flow_weight: float, landmark_weight: float,
             mer_input: str, mer_dropout: float, balance: str, seed: int, select_on_test: bool,
             val_subjects: int, device: str, checkpoint_every: int) -> dict:
    """`mol train --fold K`: one fold -> runs/fold_KK/ (model.safetensors, metrics.json), as a child
    of the parent run in runs/parent_run_id.txt. A retried pod resumes from the fold's last checkpoint."""
    from components.train import TrainConfig, train
    from pipeline.components import enter_run_folder

    enter_run_folder(run_root, run_name, job_id)
    config = TrainConfig(lr=lr, weight_decay=weight_decay, batch_size=batch_size, steps=steps,
                         flow_weight=flow_weight, landmark_weight=landmark_weight, mer_input=mer_input,
                         mer_dropout=mer_dropout, balance=balance, seed=seed,
                         select_on_test=select_on_test, val_subjects=val_subjects, device=device,
                         checkpoint_every=checkpoint_every)
    [metrics] = train("data/clips", "data/folds.json", "runs", fold=fold, config=config, experiment=experiment)
    return {"fold": fold, "status": metrics.get("status"), "test_subject": metrics.get("test_subject"),
            "video_uf1": metrics.get("video", {}).get("uf1"), "device": metrics.get("device")}


def evaluate_op(run_root: str, run_name: str, job_id: str, trained: list, parent_run_id: str, experiment: str,
                register: bool, metrics: Output[Metrics], confusion: Output[ClassificationMetrics],
                ) -> NamedTuple("Scores", [("uf1", float), ("uar", float)]):
    """`mol evaluate`: pool runs/fold_*/ into reports/ and register the best fold's model. Also shows
    the pooled scores and confusion matrix in the Kubeflow UI."""
    from collections import namedtuple

    from components.evaluate import METRICS, evaluate
    from pipeline.components import enter_run_folder

    enter_run_folder(run_root, run_name, job_id)
    print(f"{len(trained)} folds trained: {trained}")
    result = evaluate("runs", "reports", register=register, manifest="data/manifest.csv",
                      parent_run_id=parent_run_id or None, experiment=experiment)
    for name in (*METRICS, "flow_epe", "landmark_nme"):
        metrics.log_metric(name, float(result[name]))
    confusion.log_confusion_matrix(result["class_names"], result["video"]["confusion_matrix"])
    return namedtuple("Scores", ["uf1", "uar"])(float(result["uf1"]), float(result["uar"]))


STEPS = (synth_op, ingest_op, align_op, labels_op, split_op, parent_run_op, train_op, evaluate_op)


def build(image: str) -> SimpleNamespace:
    """The steps as KFP components that run in `image` (attribute names as the functions above)."""
    return SimpleNamespace(**{step.__name__: dsl.component(step, base_image=image, install_kfp_package=False)
                              for step in STEPS})
