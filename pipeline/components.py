"""The Kubeflow steps: one lightweight Python component per stage, each a thin shell that calls the
stage function inside the project image.

Settings arrive as one `dict` parameter per params.yaml section (`train`, `execution`, ...), and each step
turns its sections back into the typed settings of components/config.py (`from_mapping`), which checks
every key and value and restores whole numbers (KFP hands every number of a dict over as a float).
So no setting is spelt out here: components/config.py is their one definition.

Data passes on a shared volume: every step works in one run folder, RUN_ROOT/RUN_NAME (RUN_NAME
empty: the pipeline job's id), laid out exactly like a DVC checkout (data/manifest.csv, data/aligned/,
data/clips/, data/folds.json, runs/fold_KK/, reports/, and mlflow.db when no tracking server is set),
so a step runs its stage with dvc.yaml's relative paths after entering the folder. The manifest stores
frame folders relative to itself, which survives this; KFP artifacts would give every step other paths.

For lineage in the Kubeflow UI the steps ALSO publish typed artifacts, copies of what they made: the
manifest and the folds (`Dataset`), each fold's model with its fold, test subjects and scores
(`Model`), and the pooled scores and confusion matrix (`Metrics`, `ClassificationMetrics`). The heavy
intermediate data (frames, aligned faces, clips: GBs for a real data set) stays on the volume only.

Every step gets the folder's parts as pipeline parameters and finds it itself: kfp.local (2.17)
replaces any upstream task OUTPUT used inside a ParallelFor with the loop item, so the train steps
can take only pipeline parameters and the fold index. For the same reason the parent MLflow run
reaches the folds through runs/parent_run_id.txt, which `mol train` reads when given no id.

KFP ships each function's source alone into its pod, so every import sits inside the function; the
image has this package installed, nothing is pip-installed at run time.
This module has no `from __future__ import annotations`: KFP reads the annotations as real types.
"""
from types import SimpleNamespace
from typing import List, NamedTuple

from kfp import dsl
from kfp.dsl import ClassificationMetrics, Dataset, Metrics, Model, Output


def enter_run_folder(run_root: str, run_name: str, job_id: str) -> str:
    """Create and enter the run folder RUN_ROOT/RUN_NAME (RUN_NAME empty: JOB_ID); return its path.
    The steps import it from the installed package."""
    import os

    path = os.path.abspath(os.path.join(run_root, run_name or job_id))
    os.makedirs(path, exist_ok=True)
    os.chdir(path)
    print(f"run folder: {path}")
    return path


def publish(source: str, artifact) -> None:
    """Make the file `source` the content of a KFP output artifact: a hard link where the artifact's
    local path is on the same file system (kfp.local), else a copy (a pod's staging folder, uploaded
    by the KFP launcher)."""
    import os
    import shutil

    os.makedirs(os.path.dirname(artifact.path) or ".", exist_ok=True)
    if os.path.exists(artifact.path):
        os.remove(artifact.path)
    try:
        os.link(source, artifact.path)
    except OSError:
        shutil.copyfile(source, artifact.path)


def file_sha256(path: str) -> str:
    """sha256 of a small file (the manifest, the folds)."""
    import hashlib
    from pathlib import Path

    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def synth_op(run_root: str, run_name: str, job_id: str, synth: dict) -> dict:
    """`mol synth data/synthetic`: the embedded synthetic data set."""
    import dataclasses

    from components.config import SynthSettings
    from components.synth import synth as make
    from pipeline.components import enter_run_folder

    enter_run_folder(run_root, run_name, job_id)
    return dataclasses.asdict(make("data/synthetic", SynthSettings.from_mapping(synth, "pipeline parameter synth")))


def ingest_op(run_root: str, run_name: str, job_id: str, data: dict, manifest: Output[Dataset]) -> dict:
    """`mol ingest`: the data set as distributed -> data/manifest.csv + data/rejects.csv, also published
    as the `manifest` Dataset. A relative data.root is taken from the run folder (data/synthetic/...), an
    absolute one from the mounted volume."""
    from components.config import DataSettings
    from components.ingest import ingest, print_summary
    from pipeline.components import enter_run_folder, file_sha256, publish

    enter_run_folder(run_root, run_name, job_id)
    settings = DataSettings.from_mapping(data, "pipeline parameter data")
    summary = ingest(settings, "data/manifest.csv")
    print_summary(summary)
    result = {"samples": summary.n_samples, "rejects": summary.n_rejects, "per_label": summary.per_label,
              "subjects": len(summary.per_subject)}
    publish("data/manifest.csv", manifest)
    manifest.metadata.update(dataset=settings.dataset, root=settings.root, classes=settings.classes,
                             sha256=file_sha256("data/manifest.csv"), samples=result["samples"],
                             rejects=result["rejects"], subjects=result["subjects"])
    return result


def align_op(run_root: str, run_name: str, job_id: str, align: dict, execution: dict) -> dict:
    """`mol align`: data/manifest.csv -> data/aligned/ (one .npz per sample)."""
    from components.align import align as run_align
    from components.config import AlignSettings, ExecutionSettings
    from pipeline.components import enter_run_folder

    enter_run_folder(run_root, run_name, job_id)
    summary = run_align("data/manifest.csv", "data/aligned", AlignSettings.from_mapping(align, "pipeline parameter align"),
                        workers=ExecutionSettings.from_mapping(execution, "pipeline parameter execution").workers)
    return {k: summary[k] for k in ("videos", "aligned", "skipped_existing", "rejected", "frames_per_s")}


def labels_op(run_root: str, run_name: str, job_id: str, labels: dict, execution: dict) -> dict:
    """`mol labels`: data/aligned/ -> data/clips/ (clips, crops, flow and landmark labels)."""
    from components.config import ExecutionSettings, LabelsSettings
    from components.labels import labels as run_labels
    from pipeline.components import enter_run_folder

    enter_run_folder(run_root, run_name, job_id)
    summary = run_labels("data/manifest.csv", "data/aligned", "data/clips",
                         LabelsSettings.from_mapping(labels, "pipeline parameter labels"),
                         workers=ExecutionSettings.from_mapping(execution, "pipeline parameter execution").workers)
    return {k: summary[k] for k in ("videos", "labelled", "skipped_existing", "rejected", "clips")}


def split_op(run_root: str, run_name: str, job_id: str, split: dict, data: dict, folds: Output[Dataset]) -> List[int]:
    """`mol split`: data/folds.json, also published as the `folds` Dataset. Returns the fold indices the
    train steps fan out over."""
    from components.config import DataSettings, SplitSettings
    from components.split import split as run_split
    from pipeline.components import enter_run_folder, file_sha256, publish

    enter_run_folder(run_root, run_name, job_id)
    document = run_split("data/manifest.csv", "data/folds.json", SplitSettings.from_mapping(split, "pipeline parameter split"),
                         num_classes=DataSettings.from_mapping(data, "pipeline parameter data").classes)
    publish("data/folds.json", folds)
    folds.metadata.update(mode=document["mode"], folds=len(document["folds"]), class_names=document["class_names"],
                          manifest_sha256=document["manifest_sha256"], sha256=file_sha256("data/folds.json"))
    return [int(fold["fold"]) for fold in document["folds"]]


def parent_run_op(run_root: str, run_name: str, job_id: str, train: dict, mlflow: dict) -> str:
    """The parent MLflow run (the schedule as its params), made once before the fan-out and recorded in
    runs/parent_run_id.txt for the fold steps; returns its id ('' when MOL_TRACKING=off)."""
    from pathlib import Path

    from components.config import MlflowSettings, TrainSettings
    from components.data.folds import read_folds
    from components.errors import redact
    from components.tracking import runs as tracking
    from components.train import parent_run
    from pipeline.components import enter_run_folder

    enter_run_folder(run_root, run_name, job_id)
    if not tracking.tracking_enabled():
        return ""
    folds = Path("data/folds.json")
    parent = parent_run(Path("runs"), folds, read_folds(folds), TrainSettings.from_mapping(train, "pipeline parameter train"),
                        MlflowSettings.from_mapping(mlflow, "pipeline parameter mlflow").experiment, None, None)
    print(f"MLflow parent run {parent.run_id} in {redact(tracking.tracking_uri())}")
    return parent.run_id


def train_op(run_root: str, run_name: str, job_id: str, fold: int, train: dict, mlflow: dict,
             execution: dict, model: Output[Model]) -> dict:
    """`mol train --fold K`: one fold -> runs/fold_KK/ (model.safetensors, metrics.json), as a child
    of the parent run in runs/parent_run_id.txt, the model also published as the `model` Model with its
    fold, test subjects, scores and provenance. A retried pod resumes from the fold's last checkpoint."""
    import os

    from components.config import ExecutionSettings, MlflowSettings, TrainSettings
    from components.data.folds import fold_dir
    from components.train import train as run_train
    from pipeline.components import enter_run_folder, publish

    enter_run_folder(run_root, run_name, job_id)
    [metrics] = run_train("data/clips", "data/folds.json", "runs", fold=fold,
                          config=TrainSettings.from_mapping(train, "pipeline parameter train"),
                          execution=ExecutionSettings.from_mapping(execution, "pipeline parameter execution"),
                          experiment=MlflowSettings.from_mapping(mlflow, "pipeline parameter mlflow").experiment)
    video, clip = metrics.get("video", {}), metrics.get("clip", {})
    model.metadata.update({"fold": fold, "status": metrics.get("status"), "test_subject": metrics.get("test_subject"),
                           "test_subjects": metrics.get("test_subjects", [metrics.get("test_subject")]),
                           **{f"video_{k}": video[k] for k in ("uf1", "uar", "acc") if k in video},
                           **{f"clip_{k}": clip[k] for k in ("uf1", "uar") if k in clip},
                           **{k: metrics[k] for k in ("flow_epe", "landmark_nme", "selection", "selected_step")
                              if k in metrics},
                           **metrics.get("provenance", {}), "framework": "pytorch (safetensors)"})
    weights = str(fold_dir("runs", fold) / "model.safetensors")
    if os.path.isfile(weights):  # a skipped fold (no clips) has no model
        publish(weights, model)
    return {"fold": fold, "status": metrics.get("status"), "test_subject": metrics.get("test_subject"),
            "video_uf1": video.get("uf1"), "device": metrics.get("device")}


def evaluate_op(run_root: str, run_name: str, job_id: str, trained: list, parent_run_id: str, evaluate: dict,
                mlflow: dict, metrics: Output[Metrics], confusion: Output[ClassificationMetrics],
                ) -> NamedTuple("Scores", [("uf1", float), ("uar", float)]):
    """`mol evaluate`: pool runs/fold_*/ into reports/ and register the best fold's model. Also shows
    the pooled scores and confusion matrix in the Kubeflow UI."""
    from collections import namedtuple

    from components.config import EvaluateSettings, MlflowSettings
    from components.evaluate import evaluate as run_evaluate
    from components.training.scoring import METRICS
    from pipeline.components import enter_run_folder

    enter_run_folder(run_root, run_name, job_id)
    print(f"{len(trained)} folds trained: {trained}")
    result = run_evaluate("runs", "reports", EvaluateSettings.from_mapping(evaluate, "pipeline parameter evaluate"),
                          manifest="data/manifest.csv", parent_run_id=parent_run_id or None,
                          experiment=MlflowSettings.from_mapping(mlflow, "pipeline parameter mlflow").experiment)
    for name in (*METRICS, "flow_epe", "landmark_nme"):
        metrics.log_metric(name, float(result[name]))
    confusion.log_confusion_matrix(result["class_names"], result["video"]["confusion_matrix"])
    return namedtuple("Scores", ["uf1", "uar"])(float(result["uf1"]), float(result["uar"]))


STEPS = (synth_op, ingest_op, align_op, labels_op, split_op, parent_run_op, train_op, evaluate_op)


def build(image: str) -> SimpleNamespace:
    """The steps as KFP components that run in `image` (attribute names as the functions above)."""
    return SimpleNamespace(**{step.__name__: dsl.component(step, base_image=image, install_kfp_package=False)
                              for step in STEPS})
