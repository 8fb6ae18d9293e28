"""MLflow layout: default SQLite store, parent + nested runs, the experiment kind, system metrics,
registration with provenance tags and an input example, reattaching, switch-off, S3 artifacts."""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from components.errors import UserError
from components.tracking import runs as tracking

from mlflow_store import fresh_store


@pytest.fixture
def store(tmp_path, tmp_path_factory, monkeypatch):
    """A fresh default store: ./mlflow.db in the working directory, no MLFLOW_TRACKING_URI."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv(tracking.SWITCH_ENV, raising=False)
    fresh_store(tmp_path, tmp_path_factory.getbasetemp())
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_parent_and_nested_fold_runs_in_default_store(store):
    from mlflow import MlflowClient

    parent = tracking.start_parent_run("exp-a", "loso run", {"lr": 1e-4, "steps": 3},
                                       {"protocol": "final", "folds_sha256": "abc"})
    fold = tracking.start_child_run(parent, "fold 00", {"fold": 0}, {"protocol": "final"})
    for step in (1, 2, 3):
        fold.log_metrics({"train/total": 4.0 - step, "lr": 1e-4}, step=step)
    (store / "metrics.json").write_text("{}")
    fold.log_artifact(store / "metrics.json")
    fold.finish()

    client = MlflowClient(tracking_uri=f"sqlite:///{store / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("exp-a")
    assert experiment.artifact_location == (store / "mlartifacts").resolve().as_uri()
    child = client.get_run(fold.run_id)
    assert child.data.tags["mlflow.parentRunId"] == parent.run_id
    assert child.info.status == "FINISHED" and child.data.params["fold"] == "0"
    history = client.get_metric_history(fold.run_id, "train/total")
    assert [(m.step, m.value) for m in history] == [(1, 3.0), (2, 2.0), (3, 1.0)]
    assert list((store / "mlartifacts").rglob("metrics.json"))  # artifact in ./mlartifacts
    top = client.get_run(parent.run_id)
    assert top.data.tags["protocol"] == "final" and top.data.params["steps"] == "3"
    assert top.info.status == "RUNNING"  # a parent stays open until `mol evaluate` ends it


def test_experiments_are_model_training_experiments(store):
    """MLflow 3's UI opens a model-training experiment on its runs, not on the GenAI overview."""
    from mlflow import MlflowClient

    tracking.start_parent_run("exp-kind", "p", {}, {})
    client = MlflowClient(tracking_uri=tracking.tracking_uri())
    assert client.get_experiment_by_name("exp-kind").tags[tracking.EXPERIMENT_KIND_TAG] == "custom_model_development"
    older = client.create_experiment("made-before")  # e.g. by an earlier version: tagged on first use
    tracking.start_parent_run("made-before", "p", {}, {})
    assert client.get_experiment(older).tags[tracking.EXPERIMENT_KIND_TAG] == "custom_model_development"
    client.set_experiment_tag(older, tracking.EXPERIMENT_KIND_TAG, "genai_development")  # a user's choice stays
    tracking.start_parent_run("made-before", "p", {}, {})
    assert client.get_experiment(older).tags[tracking.EXPERIMENT_KIND_TAG] == "genai_development"


def test_system_metrics_are_logged_while_a_fold_runs(store, monkeypatch):
    from mlflow import MlflowClient

    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "0.2")
    fold = tracking.start_child_run(tracking.start_parent_run("exp-sys", "p", {}, {}), "fold 00", {}, {})
    with tracking.system_metrics(fold):
        time.sleep(1.0)  # five sampling intervals
    fold.finish()
    logged = MlflowClient(tracking_uri=tracking.tracking_uri()).get_run(fold.run_id).data.metrics
    assert {"system/cpu_utilization_percentage", "system/system_memory_usage_percentage"} <= set(logged)
    with tracking.system_metrics(tracking.Run()):  # tracking off: nothing to monitor
        pass


def test_registered_version_says_what_made_it_without_mlflow_warnings(store, caplog):
    """The version carries the provenance tags; the model has a signature and an input example, so
    MLflow logs it without its "input example was not provided" warning."""
    import warnings

    import torch
    from mlflow import MlflowClient

    from components.training.checkpoint import save_model
    from mol_model import MOL

    torch.manual_seed(0)
    save_model(store / "model.safetensors", MOL(num_classes=3),
               {"num_classes": 3, "neighbors": 4, "mer_input": "motion", "class_names": ["neg", "pos", "sur"]})
    made_by = {"dataset": "casme2", "manifest_sha256": "ab" * 32, "flow_backend": "tvl1", "class_names": "neg,pos,sur",
               "code_version": tracking.code_version(), "precision": "fp32", "protocol": "final"}
    parent = tracking.start_parent_run("exp-reg", "p", {}, {})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        version = tracking.log_and_register_model(parent, store / "model.safetensors", "mol-test", "champion",
                                                  tags={"fold": 0, **made_by})
    said = [str(w.message) for w in caught] + [r.getMessage() for r in caplog.records]
    assert not [line for line in said if "input example" in line.lower() and "not provided" in line.lower()], said
    client = MlflowClient(tracking_uri=tracking.tracking_uri())
    tags = client.get_model_version("mol-test", version).tags
    assert {key: tags[key] for key in made_by} == made_by and tags["fold"] == "0" and tags["model_sha256"]
    assert str(client.get_model_version_by_alias("mol-test", "champion").version) == version
    local = Path(client.download_artifacts(parent.run_id, "model", str(store / "download")))
    assert {"input_example.json", "serving_input_example.json"} <= {p.name for p in local.iterdir()}


def test_code_version_is_the_commit_when_known(monkeypatch, tmp_path):
    monkeypatch.setenv(tracking.COMMIT_ENV, "feedc0de")  # as the image sets it at build time
    assert tracking.git_commit() == tracking.code_version() == "feedc0de"
    monkeypatch.delenv(tracking.COMMIT_ENV)
    monkeypatch.chdir(tmp_path)  # no git checkout here: the installed package's version
    assert tracking.git_commit() is None and tracking.code_version().startswith("mol-pipeline ")


def test_other_process_reattaches_by_run_id(store):
    parent = tracking.start_parent_run("exp-b", "p", {}, {})
    parent.finish()
    again = tracking.open_run(parent.run_id)  # e.g. a Kubeflow pod given MOL_PARENT_RUN_ID
    assert again.client.get_run(parent.run_id).info.status == "RUNNING"
    child = tracking.start_child_run(again, "fold 01", {}, {})
    assert child.client.get_run(child.run_id).info.experiment_id == parent.client.get_run(
        parent.run_id).info.experiment_id
    with pytest.raises(UserError, match="does not exist"):
        tracking.open_run("0123456789abcdef0123456789abcdef")


def test_switch_off(monkeypatch):
    assert tracking.tracking_enabled()
    assert not tracking.tracking_enabled(False)
    monkeypatch.setenv(tracking.SWITCH_ENV, "off")
    assert not tracking.tracking_enabled()
    run = tracking.Run()  # disabled: every call is a no-op
    run.log_metrics({"x": 1.0}, step=1)
    run.log_params({"a": 1})
    run.finish()
    assert tracking.start_child_run(run, "fold", {}, {}).run_id is None
    assert tracking.log_and_register_model(run, "absent.safetensors") is None


def test_s3_artifact_store_against_local_moto_server(store, monkeypatch):
    import boto3
    from mlflow import MlflowClient
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)  # port 0: the OS picks a free one
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        for key, value in {"MLFLOW_S3_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing",
                           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}.items():
            monkeypatch.setenv(key, value)
        s3 = boto3.client("s3", endpoint_url=endpoint)
        s3.create_bucket(Bucket="mol-artifacts")

        parent = tracking.start_parent_run("exp-s3", "p", {}, {}, artifact_location="s3://mol-artifacts/mlflow")
        (store / "report.txt").write_text("pooled UF1 0.5\n")
        parent.log_artifact(store / "report.txt", "evaluation")

        keys = [o["Key"] for o in s3.list_objects_v2(Bucket="mol-artifacts")["Contents"]]
        assert any(k.startswith("mlflow/") and k.endswith("evaluation/report.txt") for k in keys)
        client = MlflowClient(tracking_uri=tracking.tracking_uri())
        local = client.download_artifacts(parent.run_id, "evaluation/report.txt", str(store / "back"))
        assert open(local).read() == "pooled UF1 0.5\n"
    finally:
        server.stop()
