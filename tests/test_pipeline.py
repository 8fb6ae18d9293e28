"""The Kubeflow pipeline: the compiled YAML's structure, params.yaml overrides, steps run through
kfp.local, submission against a stand-in client, and (slow) the whole DAG through kfp.local."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from components.config import PLACEHOLDER_IMAGE, KubeflowSettings, SplitSettings, TrainSettings, load_params
from components.errors import UserError
from pipeline import cli

ROOT = Path(__file__).resolve().parents[1]
PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text())


def mol_pipeline(*args: str) -> int:
    from components.cli import main

    return main(["pipeline", *args])


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    """(pipeline spec, kubernetes platform spec) compiled from params.yaml, with one override."""
    out = tmp_path_factory.mktemp("compiled") / "pipeline.yaml"
    assert mol_pipeline("compile", "--params", str(ROOT / "params.yaml"), "--param", "train.lr=0.0005",
                        "--out", str(out)) == 0
    spec, platform = yaml.safe_load_all(out.read_text())
    return spec, platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]


def executors(spec: dict) -> dict:
    return spec["deploymentSpec"]["executors"]


def test_one_image_everywhere(compiled):
    spec, _ = compiled
    images = {name: e["container"]["image"] for name, e in executors(spec).items()}
    assert len(images) == 8
    assert set(images.values()) == {PARAMS["kubeflow"]["image"]}
    for e in executors(spec).values():  # nothing pip-installed at run time
        assert "pip install" not in " ".join(e["container"]["command"])


def test_typed_artifacts_give_kubeflow_lineage(compiled):
    """Data set, folds, one model per fold (from the train step), pooled metrics and confusion matrix."""
    spec, _ = compiled

    def artifacts(component: str) -> dict:
        outputs = spec["components"][component]["outputDefinitions"].get("artifacts", {})
        return {name: a["artifactType"]["schemaTitle"] for name, a in outputs.items()}

    assert artifacts("comp-ingest-op") == {"manifest": "system.Dataset"}
    assert artifacts("comp-split-op") == {"folds": "system.Dataset"}
    assert artifacts("comp-train-op") == {"model": "system.Model"}
    assert artifacts("comp-evaluate-op") == {"metrics": "system.Metrics", "confusion": "system.ClassificationMetrics"}


def test_compiling_with_the_placeholder_image_warns_in_one_line(tmp_path, capsys):
    assert PARAMS["kubeflow"]["image"] == PLACEHOLDER_IMAGE  # what a fresh clone has
    assert mol_pipeline("compile", "--params", str(ROOT / "params.yaml"), "--out", str(tmp_path / "p.yaml")) == 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "placeholder" in err and "kubeflow.image" in err


def test_only_training_asks_for_a_gpu_and_tolerates_gpu_nodes(compiled):
    spec, platform = compiled
    for name, e in executors(spec).items():
        accelerator = e["container"].get("resources", {}).get("accelerator")
        if name == "exec-train-op":
            assert accelerator["resourceType"] == PARAMS["kubeflow"]["accelerator"] == "nvidia.com/gpu"
            assert accelerator["resourceCount"] == str(PARAMS["kubeflow"]["gpus_per_fold"]) == "1"
            assert platform[name]["tolerations"] == PARAMS["kubeflow"]["tolerations"]
        else:
            assert accelerator is None, name
            assert "tolerations" not in platform[name], name


def test_folds_fan_out_with_bounded_parallelism_and_fan_in_to_evaluate(compiled):
    spec, _ = compiled
    tasks = spec["root"]["dag"]["tasks"]
    [loop_name] = [n for n, t in tasks.items() if "parameterIterator" in t]
    loop = tasks[loop_name]
    items = loop["parameterIterator"]["items"]["inputParameter"]
    assert loop["inputs"]["parameters"][items]["taskOutputParameter"]["producerTask"] == "split-op"
    assert loop["iteratorPolicy"]["parallelismLimit"] == PARAMS["kubeflow"]["parallelism"]
    assert "train-op" in spec["components"][loop["componentRef"]["name"]]["dag"]["tasks"]
    trained = tasks["evaluate-op"]["inputs"]["parameters"]["trained"]["taskOutputParameter"]
    assert trained["producerTask"] == loop_name  # dsl.Collected over the loop's train outputs
    output = spec["root"]["dag"]["outputs"]["parameters"]["Output"]["valueFromParameter"]
    assert output["producerSubtask"] == "evaluate-op"


def test_split_produces_the_fold_list_and_the_dag_order(compiled):
    spec, _ = compiled
    tasks = spec["root"]["dag"]["tasks"]
    assert spec["components"]["comp-split-op"]["outputDefinitions"]["parameters"]["Output"]["parameterType"] == "LIST"
    order = ["synth-op", "ingest-op", "align-op", "labels-op", "split-op", "parent-run-op"]
    for before, after in zip(order, order[1:]):
        assert before in tasks[after]["dependentTasks"]


def test_no_step_is_cached_and_registration_least_of_all(compiled):
    """Steps share a run folder on a volume, which KFP's cache key cannot see."""
    spec, _ = compiled
    tasks = dict(spec["root"]["dag"]["tasks"])
    for component in spec["components"].values():
        tasks.update(component.get("dag", {}).get("tasks", {}))
    assert "evaluate-op" in tasks and "train-op" in tasks
    for name, task in tasks.items():
        assert not task.get("cachingOptions", {}).get("enableCache", False), name


def test_secrets_arrive_as_environment_references_never_as_values(compiled):
    spec, platform = compiled
    secrets = PARAMS["kubeflow"]["secrets"]
    assert {"MLFLOW_TRACKING_URI", "AWS_SECRET_ACCESS_KEY"} <= {k for s in secrets for k in s["keys"]}
    for name in executors(spec):
        refs = {(s["secretName"], m["secretKey"], m["envVar"]) for s in platform[name]["secretAsEnv"]
                for m in s["keyToEnv"]}
        assert refs == {(s["name"], key, key) for s in secrets for key in s["keys"]}
        assert "env" not in executors(spec)[name]["container"], "no literal environment values"
        assert platform[name]["pvcMount"][0]["mountPath"] == PARAMS["kubeflow"]["mount_path"]
        assert platform[name]["securityContext"]["runAsNonRoot"] is True


def test_defaults_come_from_params_yaml_and_overrides(compiled):
    spec, _ = compiled
    inputs = spec["root"]["inputDefinitions"]["parameters"]
    assert inputs["train"]["defaultValue"]["lr"] == 0.0005  # --param train.lr=0.0005
    assert inputs["train"]["defaultValue"] == {**PARAMS["train"], "lr": 0.0005}
    assert inputs["data"]["defaultValue"]["root"] == PARAMS["data"]["root"]
    assert inputs["split"]["defaultValue"]["mode"] == PARAMS["split"]["mode"]
    assert inputs["run_root"]["defaultValue"] == PARAMS["kubeflow"]["mount_path"] + "/runs"
    assert inputs["run_name"]["defaultValue"] == ""
    assert inputs["execution"]["defaultValue"]["workers"] == PARAMS["execution"]["workers"]
    assert set(inputs) - {"run_root", "run_name"} == set(PARAMS) - {"kubeflow"}  # one parameter per section
    assert all(inputs[name]["parameterType"] == "STRUCT" for name in set(PARAMS) - {"kubeflow"})


def test_compile_time_settings_follow_params(tmp_path, capsys):
    out = tmp_path / "p.yaml"
    assert mol_pipeline("compile", "--params", str(ROOT / "params.yaml"), "--param", "kubeflow.parallelism=2",
                        "--param", "kubeflow.image=registry.example/mol:abc", "--out", str(out)) == 0
    assert capsys.readouterr().err == ""  # a real image: no warning
    spec, _ = yaml.safe_load_all(out.read_text())
    assert {e["container"]["image"] for e in executors(spec).values()} == {"registry.example/mol:abc"}
    loop = next(t for t in spec["root"]["dag"]["tasks"].values() if "iteratorPolicy" in t)
    assert loop["iteratorPolicy"]["parallelismLimit"] == 2


@pytest.mark.parametrize("assignment, message", [
    ("train.nope=1", "unknown key train.nope"),
    ("train.stpes=300", r"unknown key train.stpes \(did you mean steps\?\)"),
    ("train.lr", "section.key=value"),
    ("lr=1", "section.key=value"),
    ("train.lr=fast", "train.lr is 'fast', but must be a number"),
    ("split.mode=bogus", "split.mode is 'bogus'; choose one of loso, kfold, lodo, holdout, cross"),
])
def test_bad_overrides_say_how_to_mend_them(assignment, message):
    with pytest.raises(UserError, match=message):
        load_params(ROOT / "params.yaml", [assignment])


def test_override_values_are_parsed_as_yaml():
    params = load_params(ROOT / "params.yaml", ["train.lr=3e-4", "align.per_frame=true", "data.annotations="])
    assert params.section(TrainSettings).lr == 3e-4 and params.sections["align"].per_frame is True
    assert params.sections["data"].annotations == ""


def test_a_mistyped_key_is_refused_by_name_before_compiling(tmp_path, capsys):
    document = {**PARAMS, "train": {**PARAMS["train"], "warmup_stepz": 10}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(document))
    assert mol_pipeline("compile", "--params", str(tmp_path / "params.yaml"), "--out", str(tmp_path / "p.yaml")) == 2
    err = capsys.readouterr().err
    assert "unknown key train.warmup_stepz" in err and err.count("\n") == 1 and not (tmp_path / "p.yaml").exists()


def test_bad_kubeflow_settings_are_user_errors(tmp_path, capsys):
    with pytest.raises(UserError, match="kubeflow.image is empty"):
        KubeflowSettings(image="")
    with pytest.raises(UserError, match="unknown key kubeflow.gpus"):
        KubeflowSettings.from_mapping({"image": "x", "gpus": 2})
    with pytest.raises(UserError, match="kubeflow.gpus_per_fold is -1, outside >= 0"):
        KubeflowSettings.from_mapping({"gpus_per_fold": -1})
    assert mol_pipeline("compile", "--params", str(tmp_path / "missing.yaml")) == 2
    assert "does not exist" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------- submit

class StubClient:
    """Records what `mol pipeline submit` asks of kfp.Client."""
    instances: list = []
    final_state = "SUCCEEDED"

    def __init__(self, **kwargs):
        self.init = kwargs
        self.calls = []
        StubClient.instances.append(self)

    def create_run_from_pipeline_package(self, pipeline_file, **kwargs):
        spec = next(yaml.safe_load_all(Path(pipeline_file).read_text()))
        self.calls.append(("create", spec["pipelineInfo"]["name"], kwargs))

        class Result:
            run_id = "run-123"
        return Result()

    def wait_for_run_completion(self, run_id, timeout):
        self.calls.append(("wait", run_id, timeout))

        class Run:
            state = StubClient.final_state
        return Run()


@pytest.fixture
def stub_client(monkeypatch):
    import kfp

    StubClient.instances, StubClient.final_state = [], "SUCCEEDED"
    monkeypatch.setattr(kfp, "Client", StubClient)
    monkeypatch.setenv(cli.TOKEN_ENV, "token-from-env")
    return StubClient


def test_submit_passes_params_yaml_values_token_and_run_name(stub_client):
    assert mol_pipeline("submit", "--params", str(ROOT / "params.yaml"), "--host", "https://kf.example/pipeline",
                        "--experiment", "mer", "--run-name", "casme2-try1", "--param", "train.steps=7") == 0
    [client] = stub_client.instances
    assert client.init == {"host": "https://kf.example/pipeline", "existing_token": "token-from-env"}
    [(kind, name, kwargs)] = client.calls
    assert kind == "create" and name == PARAMS["kubeflow"]["pipeline_name"]
    assert kwargs["experiment_name"] == "mer" and kwargs["run_name"] == "casme2-try1"
    assert kwargs["enable_caching"] is False
    arguments = kwargs["arguments"]
    assert arguments["train"]["steps"] == 7 and arguments["run_name"] == "casme2-try1"
    assert arguments["train"]["lr"] == PARAMS["train"]["lr"]


def test_submit_wait_reports_the_final_state(stub_client, capsys):
    stub_client.final_state = "FAILED"
    assert mol_pipeline("submit", "--params", str(ROOT / "params.yaml"), "--host", "http://kf", "--wait",
                        "--timeout", "60") == 1
    [client] = stub_client.instances
    assert client.calls[-1] == ("wait", "run-123", 60)
    assert "FAILED" in capsys.readouterr().out
    stub_client.final_state = "SUCCEEDED"
    assert mol_pipeline("submit", "--params", str(ROOT / "params.yaml"), "--host", "http://kf", "--wait") == 0


def test_an_unreachable_cluster_is_one_clear_error(stub_client, monkeypatch, capsys):
    from urllib3.exceptions import MaxRetryError

    def refuse(self, pipeline_file, **kwargs):
        raise MaxRetryError(None, "/apis/v2beta1/runs", "Connection refused")

    monkeypatch.setattr(StubClient, "create_run_from_pipeline_package", refuse)
    assert mol_pipeline("submit", "--params", str(ROOT / "params.yaml"), "--host", "http://kf.invalid") == 2
    err = capsys.readouterr().err
    assert "Kubeflow Pipelines at http://kf.invalid did not accept the request" in err and "Traceback" not in err


# ---------------------------------------------------------------------------------------------- kfp.local

def test_first_steps_run_through_kfp_local(tmp_path, monkeypatch):
    """synth, ingest and split as KFP components in local subprocesses, in one run folder."""
    import kfp.local

    from pipeline.components import build

    monkeypatch.setenv("MOL_TRACKING", "off")
    kfp.local.init(runner=kfp.local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "outputs"))
    ops = build("python:3.11")
    where = dict(run_root=str(tmp_path), run_name="run1", job_id="unused")
    synth = ops.synth_op(**where, synth={"subjects": 3, "videos_per_subject": 1, "frames_min": 16, "frames_max": 16})
    assert synth.output["clips"] == 3
    ingest = ops.ingest_op(**where, data={"dataset": "casme2", "root": "data/synthetic/CASME2_RAW_selected",
                                          "annotations": "data/synthetic/CASME2-coding-synthetic.xlsx", "classes": 5})
    assert ingest.outputs["Output"]["samples"] == 3 and ingest.outputs["Output"]["rejects"] == 0
    manifest = ingest.outputs["manifest"]  # the Dataset artifact: a copy of the run folder's manifest
    on_volume = tmp_path / "run1" / "data" / "manifest.csv"
    assert Path(manifest.path).read_bytes() == on_volume.read_bytes()
    assert manifest.metadata["samples"] == 3 and manifest.metadata["dataset"] == "casme2"
    split = ops.split_op(**where, split={"mode": "loso"}, data={"classes": 5})
    document = json.loads((tmp_path / "run1" / "data" / "folds.json").read_text())
    assert split.outputs["Output"] == [f["fold"] for f in document["folds"]] == [0, 1, 2]
    folds = split.outputs["folds"]
    assert json.loads(Path(folds.path).read_text()) == document
    assert folds.metadata["folds"] == 3 and folds.metadata["manifest_sha256"] == manifest.metadata["sha256"]


def test_a_failing_step_fails_the_local_run_with_its_reason(tmp_path):
    import kfp.local

    from pipeline.components import build

    kfp.local.init(runner=kfp.local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "outputs"))
    ops = build("python:3.11")
    with pytest.raises(RuntimeError, match="ingest-op"):
        ops.ingest_op(run_root=str(tmp_path), run_name="", job_id="job7",
                      data={"dataset": "casme2", "root": "no/such/folder"})
    assert (tmp_path / "job7").is_dir()  # empty run name: the folder is named after the job


def test_run_local_is_quiet_and_a_failing_step_says_why(tmp_path, capsys, monkeypatch):
    """A bad data.root fails at ingest: one line per finished step, then the step's own error and the log."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MOL_TRACKING", "off")
    tiny = ["synth.subjects=2", "synth.videos_per_subject=1", "synth.frames_min=16", "synth.frames_max=16",
            "data.root=no/such/folder"]
    assert mol_pipeline("run-local", "--params", str(ROOT / "params.yaml"), *[a for t in tiny for a in ("--param", t)],
                        "--workdir", "kfp-run") == 2
    printed = capsys.readouterr()
    steps = [line for line in printed.out.splitlines() if line.startswith("run-local:")]
    assert [line.split()[-2:] for line in steps] == [["synth-op:", "success"], ["ingest-op:", "failure"]], printed.out
    assert "Executing task" not in printed.out + printed.err  # kfp.local's own log went to the file
    # one line: the step, the reason its stage gave (a UserError raised in the pod), and where the log is
    assert printed.err.count("\n") == 1 and "Traceback" not in printed.err and "\x1b[" not in printed.err
    assert "failed at step ingest-op: --root 'no/such/folder' is not a folder" in printed.err
    assert str(tmp_path / "kfp-run" / "run-local.log") in printed.err
    assert "Executing task" in (tmp_path / "kfp-run" / "run-local.log").read_text()


@pytest.mark.slow
def test_run_local_runs_the_whole_pipeline(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MOL_TRACKING", raising=False)
    monkeypatch.chdir(tmp_path)  # as a user in the project folder: MLflow's store is ./mlflow.db
    workdir = tmp_path / "kfp-run"
    tiny = ["synth.subjects=3", "synth.videos_per_subject=2", "synth.frames_min=16", "synth.frames_max=16",
            "labels.flow=farneback", "split.mode=loso", "train.steps=1",
            "train.batch_size=2", "execution.workers=1"]
    overrides = [a for item in tiny for a in ("--param", item)]
    assert mol_pipeline("run-local", "--params", str(ROOT / "params.yaml"), *overrides,
                        "--workdir", str(workdir)) == 0
    printed = capsys.readouterr()
    assert "run-local: finished" in printed.out
    lines = (printed.out + printed.err).splitlines()
    assert len(lines) < 100, f"{len(lines)} lines printed"  # one per step; kfp.local's log is in the run folder
    assert "Executing task" in (workdir / "run-local.log").read_text()
    metrics = json.loads((workdir / "reports" / "metrics.json").read_text())
    assert metrics["folds"] == 3 and 0.0 <= metrics["uf1"] <= 1.0
    assert sorted(p.name for p in (workdir / "runs").glob("fold_*/model.safetensors")) == ["model.safetensors"] * 3
    assert metrics["registered"]["name"] == "mol-mer"
    # each train step published its fold's model as a KFP Model artifact (kfp.local keeps them in the run folder)
    published = sorted(p for p in (workdir / ".kfp-outputs").rglob("model") if p.is_file())
    assert len(published) == 3
    assert {p.stat().st_size for p in published} == {(workdir / "runs/fold_00/model.safetensors").stat().st_size}

    from mlflow import MlflowClient
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")  # where `mlflow ui` run from here looks
    parent_id = (workdir / "runs" / "parent_run_id.txt").read_text().strip()
    experiment = client.get_experiment_by_name(PARAMS["mlflow"]["experiment"])
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    assert experiment.artifact_location == (tmp_path / "mlartifacts").as_uri()
    runs = client.search_runs([experiment.experiment_id])
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent_id]
    assert len(children) == 3, "every fold pod attached to the one parent run"
    assert {c.data.tags["flow_backend"] for c in children} == {"farneback"}
    assert "uf1" in client.get_run(parent_id).data.metrics
    version = client.get_model_version_by_alias("mol-mer", "champion")
    assert version.tags["flow_backend"] == "farneback" and version.tags["dataset"] == "casme2"


def test_the_paper_profile_is_complete_and_compiles(tmp_path):
    document = yaml.safe_load((ROOT / "params-paper.yaml").read_text())
    assert {s: sorted(v) for s, v in document.items()} == {s: sorted(v) for s, v in PARAMS.items()}
    paper = load_params(ROOT / "params-paper.yaml")
    train = paper.section(TrainSettings)
    assert (train.batch_size, train.steps, train.lr, train.mer_input) == (32, 1000, 1e-4, "official")
    assert paper.section(SplitSettings).mode == "loso" and paper.section(TrainSettings).crops == 5
    assert mol_pipeline("compile", "--params", str(ROOT / "params-paper.yaml"), "--out", str(tmp_path / "p.yaml")) == 0
