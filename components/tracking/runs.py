"""All MLflow code of the project: where runs are stored, the run layout, and model registration.

Layout: one PARENT run per experiment run (params, tags `protocol`, `git_commit`, data hashes; the pooled
metrics and plots of `mol evaluate`), and one NESTED run per fold (tag `mlflow.parentRunId`; per-step
losses, final fold metrics, confusion matrix, model file). Folds trained by separate processes (DVC
foreach, Kubeflow pods) attach to the same parent through its id.

Store: `MLFLOW_TRACKING_URI` when set; otherwise SQLite `mlflow.db` in the working directory with
artifacts under `./mlartifacts`. Artifacts go wherever the experiment's artifact location points,
e.g. `s3://bucket/path` (boto3 reads `MLFLOW_S3_ENDPOINT_URL` and the `AWS_*` variables).
`MOL_TRACKING=off` (or `--no-mlflow`) disables tracking: every `Run` method then does nothing.

Runs are driven through `MlflowClient` with explicit run ids rather than the global "active run", so
a fold can reopen its run after a restart and stages can run in separate processes.

Experiments are created as model-training experiments (tag `mlflow.experimentKind`), so MLflow 3's UI
opens them on their runs rather than on its GenAI overview. Fold runs log system metrics (CPU, memory,
disk, network; GPU when nvidia-ml-py is installed) every `MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL` seconds
(default 10) under `system/`.

A tracking server is checked once when a client is made (components/tracking/store.py): a server that
is down or is not an MLflow server fails the stage in seconds with one line. A URI is never printed with
its password (`redact`), and with credentials in the URI MLflow's "View run at" links are switched off,
since they would print it.
"""
from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

from components.errors import UserError, redact
from components.tracking.store import check_store, store_error

PARENT_ENV = "MOL_PARENT_RUN_ID"
PARENT_RECORD = "parent_run_id.txt"  # in a training run's folder: the parent run of its folds
SWITCH_ENV = "MOL_TRACKING"
DEFAULT_DB = "mlflow.db"
DEFAULT_ARTIFACTS = "mlartifacts"
# MLflow 3's experiment kinds (its UI's own tag values): a model-training experiment opens on its runs
EXPERIMENT_KIND_TAG, MODEL_TRAINING = "mlflow.experimentKind", "custom_model_development"
COMMIT_ENV = "MOL_GIT_COMMIT"  # the commit an image was built from (Dockerfile ARG), where no .git exists


def tracking_enabled(requested: bool = True) -> bool:
    """False when the caller asked for no tracking or `MOL_TRACKING` is off/0/false/no."""
    return requested and os.environ.get(SWITCH_ENV, "on").strip().lower() not in {"off", "0", "false", "no"}


def default_uri() -> str:
    return f"sqlite:///{Path(DEFAULT_DB).resolve().as_posix()}"


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or default_uri()


def _client():
    import mlflow
    from mlflow import MlflowClient

    uri = tracking_uri()
    if redact(uri) != uri:
        os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"  # its links would show the password
    mlflow.set_tracking_uri(uri)  # the fluent API (model logging) must agree; this also sets the env variable
    if not sys.stderr.isatty():  # as our own bars: in a log, every update of a bar is a line
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    check_store(uri, client)
    return client


def experiment_id(client, name: str, artifact_location: str | None = None) -> str:
    """Id of experiment `name`, created on first use. Without `MLFLOW_TRACKING_URI` and without an
    explicit location, its artifacts go to ./mlartifacts (an absolute file URI, built here at runtime)."""
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        if experiment.lifecycle_stage == "deleted":
            raise UserError(f"MLflow experiment '{name}' is deleted; restore it in the MLflow UI or pass "
                            "another --experiment")
        if EXPERIMENT_KIND_TAG not in experiment.tags:  # made before this tag, or by hand: a user's choice stays
            client.set_experiment_tag(experiment.experiment_id, EXPERIMENT_KIND_TAG, MODEL_TRAINING)
        return experiment.experiment_id
    if artifact_location is None and tracking_uri() == default_uri():
        artifact_location = Path(DEFAULT_ARTIFACTS).resolve().as_uri()
    return client.create_experiment(name, artifact_location=artifact_location,
                                    tags={EXPERIMENT_KIND_TAG: MODEL_TRAINING})


def prepare_experiment(name: str) -> str:
    """Create experiment `name` in the current store if it is new (see experiment_id); return its id."""
    return experiment_id(_client(), name)


def git_commit() -> str | None:
    """The code's git commit: MOL_GIT_COMMIT (set in the image at build time), else the working
    directory's, if it is a git checkout."""
    if os.environ.get(COMMIT_ENV, "").strip():
        return os.environ[COMMIT_ENV].strip()
    try:
        result = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def code_version() -> str:
    """The git commit when known, else the installed package's version."""
    from importlib.metadata import PackageNotFoundError, version

    commit = git_commit()
    if commit:
        return commit
    try:
        return f"mol-pipeline {version('mol-pipeline')}"
    except PackageNotFoundError:
        return "unknown"


class Run:
    """One MLflow run, or nothing at all when `client` is None (tracking disabled).

    Metrics are buffered and sent in batches by `flush()` (one database write per batch, not per step).
    """

    def __init__(self, client=None, run_id: str | None = None):
        self.client, self.run_id = client, run_id
        self._pending: list = []

    @property
    def active(self) -> bool:
        return self.client is not None

    def log_params(self, params: dict) -> None:
        if self.active:
            from mlflow.entities import Param
            self.client.log_batch(self.run_id, params=[Param(k, str(v)[:6000]) for k, v in params.items()])

    def set_tags(self, tags: dict) -> None:
        if self.active:
            from mlflow.entities import RunTag
            self.client.log_batch(self.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def log_metrics(self, metrics: dict, step: int = 0) -> None:
        if self.active:
            from mlflow.entities import Metric
            now = int(time.time() * 1000)
            self._pending += [Metric(k, float(v), now, step) for k, v in metrics.items() if v is not None]

    def flush(self) -> None:
        if self.active:
            for start in range(0, len(self._pending), 1000):  # MLflow's batch limit
                self.client.log_batch(self.run_id, metrics=self._pending[start:start + 1000])
            self._pending = []

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        if self.active:
            self.client.log_artifact(self.run_id, str(path), artifact_path)

    def finish(self, status: str = "FINISHED") -> None:
        if self.active:
            self.flush()
            self.client.set_terminated(self.run_id, status)


@contextlib.contextmanager
def system_metrics(run: Run) -> Iterator[None]:
    """Log CPU, memory, disk, network (and GPU, with nvidia-ml-py) use to `run` while the block runs."""
    if not run.active:
        yield
        return
    from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

    logging.getLogger("mlflow.system_metrics").setLevel(logging.WARNING)  # no start/stop/"no GPU" lines per fold
    monitor = SystemMetricsMonitor(run.run_id, resume_logging=True, tracking_uri=tracking_uri())
    monitor.start()
    try:
        yield
    finally:
        monitor.finish()


def start_parent_run(experiment: str, run_name: str, params: dict, tags: dict,
                     artifact_location: str | None = None) -> Run:
    """Create the parent run of a training run (params, protocol and data tags, git commit)."""
    client = _client()
    commit = git_commit()
    run = client.create_run(experiment_id(client, experiment, artifact_location), run_name=run_name,
                            tags={**tags, **({"git_commit": commit} if commit else {})})
    parent = Run(client, run.info.run_id)
    parent.log_params(params)
    return parent


def open_run(run_id: str, mend: str = f"pass the right --parent-run-id (or {PARENT_ENV})") -> Run:
    """Reattach to an existing run (a parent made by another process, or a fold resumed after a kill).
    `mend` completes the error message when the run is not in the store."""
    from mlflow.exceptions import MlflowException

    client = _client()
    try:
        status = client.get_run(run_id).info.status
    except MlflowException as e:
        if e.error_code not in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            raise store_error(e, tracking_uri()) from None
        raise UserError(f"MLflow run {run_id} does not exist in {redact(tracking_uri())}; set MLFLOW_TRACKING_URI "
                        f"to its store or {mend}") from None
    if status != "RUNNING":
        client.update_run(run_id, status="RUNNING")
    return Run(client, run_id)


def parent_run_id(runs: str | Path, given: str | None = None) -> str | None:
    """The parent run of a training run's folds: the id given, else MOL_PARENT_RUN_ID, else the one
    recorded in RUNS/parent_run_id.txt by the process that made it; None when there is none yet."""
    record = Path(runs) / PARENT_RECORD
    return given or os.environ.get(PARENT_ENV) or (record.read_text().strip() if record.is_file() else None)


def start_child_run(parent: Run, run_name: str, params: dict, tags: dict) -> Run:
    """A nested run under `parent`, in the parent's experiment."""
    if not parent.active:
        return Run()
    experiment = parent.client.get_run(parent.run_id).info.experiment_id
    run = parent.client.create_run(experiment, run_name=run_name,
                                   tags={**tags, "mlflow.parentRunId": parent.run_id})
    child = Run(parent.client, run.info.run_id)
    child.log_params(params)
    return child


def log_and_register_model(run: Run, model_path: str | Path, registered_name: str = "mol-mer",
                           alias: str = "champion", tags: dict | None = None) -> str | None:
    """Log a `mol train` model file to `run` as an MLflow model, register it as `registered_name` and
    point `alias` at that version. Returns the version, or None when tracking is off. The one place that
    decides how our models enter MLflow: the pickle-free pyfunc of `components.tracking.pyfunc`.

    Idempotent: a model file already registered under the name (same sha256) is not logged again;
    the alias just moves to its version."""
    if not run.active:
        return None
    import mlflow

    from components.tracking.pyfunc import log_pyfunc_model

    digest = hashlib.sha256(Path(model_path).read_bytes()).hexdigest()
    known = run.client.search_model_versions(f"name='{registered_name}' and tag.model_sha256='{digest}'")
    if known:
        version = str(known[0].version)
    else:
        with mlflow.start_run(run_id=run.run_id):
            info = log_pyfunc_model(model_path, "model", registered_model_name=registered_name)
        run.client.update_run(run.run_id, status="RUNNING")  # leaving the `with` ended the run; the caller ends it
        version = str(info.registered_model_version)
    run.client.set_registered_model_alias(registered_name, alias, version)
    for key, value in {**(tags or {}), "model_sha256": digest}.items():
        run.client.set_model_version_tag(registered_name, version, key, str(value))
    return version
