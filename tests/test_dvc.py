"""dvc.yaml + params.yaml: every command parses with the real `mol` stage parsers and reads its settings
from params.yaml, each stage tracks its section and its code, a mistyped key stops `dvc repro` by name,
DVC reads the DAG, S3 remotes push and pull (moto), and (slow) `dvc repro`, `dvc status` after a code or
execution change, and `dvc exp run -S` run end to end on a tiny setting."""
from __future__ import annotations

import argparse
import filecmp
import importlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from components import cli
from components.config import (AlignSettings, DataSettings, EvaluateSettings, LabelsSettings, MlflowSettings,
                               SplitSettings, SynthSettings, TrainSettings, load_params)

ROOT = Path(__file__).resolve().parents[1]
DVC = Path(sys.executable).parent / "dvc"
STAGES = ["params", "synth", "ingest", "align", "labels", "split", "train", "evaluate"]
READS = {"synth": [SynthSettings], "ingest": [DataSettings], "align": [AlignSettings], "labels": [LabelsSettings],
         "split": [SplitSettings], "train": [TrainSettings, MlflowSettings], "evaluate": [EvaluateSettings, MlflowSettings]}
PLACEHOLDER = re.compile(r"\$\{([a-z_]+)\.([a-z_]+)\}")


def dvc_yaml() -> dict:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text())


def params_document(path: Path = ROOT / "params.yaml") -> dict:
    return yaml.safe_load(path.read_text())


def render(text: str, params: dict) -> str:
    """DVC's `${section.key}` interpolation."""
    return PLACEHOLDER.sub(lambda match: str(params[match[1]][match[2]]), text)


def test_stages_are_the_pipeline_in_order():
    assert list(dvc_yaml()["stages"]) == STAGES


@pytest.mark.parametrize("stage", STAGES[1:])
def test_command_reads_its_settings_from_params_yaml(stage):
    """The rendered command is accepted by `mol <stage>`'s own parser and hands it params.yaml, so the
    settings the stage runs with are exactly the file's: no value is copied into dvc.yaml."""
    argv = shlex.split(render(dvc_yaml()["stages"][stage]["cmd"], params_document()))
    assert argv[:2] == ["mol", stage] and argv[-2:] == ["--params", "params.yaml"]
    module = importlib.import_module(cli.COMMANDS[stage][0])
    parser = argparse.ArgumentParser(prog=f"mol {stage}")
    module.configure_parser(parser)
    args = parser.parse_args(argv[2:])
    file = load_params(ROOT / "params.yaml")
    for settings in READS[stage]:
        assert settings.from_args(args, file) == file.section(settings)


@pytest.mark.parametrize("stage", STAGES[1:])
def test_each_stage_tracks_its_section_and_its_code(stage):
    """A stage reruns when its params.yaml section or the code it runs changes; `execution:` is nobody's."""
    spec = dvc_yaml()["stages"][stage]
    tracked = set(spec["params"])
    assert stage in tracked or (stage == "ingest" and "data" in tracked)
    assert not any(name.split(".")[0] == "execution" for name in tracked)
    used = {f"{s}.{k}" for s, k in PLACEHOLDER.findall(spec["cmd"])}
    assert all(name in tracked or name.split(".")[0] in tracked for name in used), used
    code = [d for d in spec["deps"] if not d.startswith(("data/", "runs", "${"))]
    assert f"components/{stage}.py" in code and all((ROOT / d).exists() for d in code)
    if stage in ("train", "evaluate"):
        assert "mol_model" in code


def test_params_check_runs_first_every_time():
    spec = dvc_yaml()["stages"]["params"]
    assert spec["cmd"] == "mol params params.yaml" and spec["always_changed"] is True


def test_metrics_and_plots_are_declared():
    spec = dvc_yaml()
    evaluate = spec["stages"]["evaluate"]
    # `dvc metrics show` lists the short headline; the full metrics.json is an output, not a DVC metric
    assert evaluate["metrics"] == [{"reports/headline.json": {"cache": False}}]
    assert {"reports/metrics.json": {"cache": False}} in evaluate["outs"]
    plots = {next(iter(p)) if isinstance(p, dict) else p: (p[next(iter(p))] if isinstance(p, dict) else {})
             for p in spec["plots"]}
    assert plots["reports/predictions.csv"]["template"] == "confusion"
    assert plots["reports/per_fold.csv"]["x"] == "video_uf1"
    assert {p for p in plots if p.endswith(".png")} == {"reports/confusion_matrix.png", "reports/per_fold.png",
                                                         "reports/confusion_matrix_clip.png",
                                                         "reports/flow_samples.png", "reports/landmark_samples.png"}
    for plot in plots:  # every plot file is an output of the evaluate stage
        assert plot in evaluate["outs"]


def dvc_repo(path: Path) -> Path:
    """A fresh git + DVC repository with this project's .dvc/config."""
    path.mkdir(parents=True, exist_ok=True)
    run(["git", "init", "-q"], path)
    run([DVC, "init", "-q"], path)
    shutil.copy(ROOT / ".dvc" / "config", path / ".dvc" / "config")
    return path


def git_repo_with_pipeline(path: Path, params: dict | None = None) -> Path:
    """dvc_repo() holding this project's dvc.yaml, its params.yaml (or `params`) and a copy of the code the
    stages list as deps (the stages themselves run the installed `mol`)."""
    dvc_repo(path)
    shutil.copy(ROOT / "dvc.yaml", path)
    shutil.copy(ROOT / ".dvcignore", path)
    for code in ("components", "mol_model"):
        shutil.copytree(ROOT / code, path / code, ignore=shutil.ignore_patterns("__pycache__"))
    (path / "params.yaml").write_text(yaml.safe_dump(params or params_document(), sort_keys=False))
    return path


def run(argv: list, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",  # `mol` for the stages
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    result = subprocess.run([str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"{argv} failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def test_a_mistyped_key_stops_dvc_repro_by_name(tmp_path):
    params = params_document()
    params["train"]["warmup_stepz"] = 10
    repo = git_repo_with_pipeline(tmp_path / "repo", params)
    result = run([DVC, "repro"], repo, check=False)
    assert result.returncode != 0
    assert "unknown key train.warmup_stepz" in result.stdout + result.stderr
    assert not (repo / "data").exists()  # stopped before the first stage that works


def test_dvc_reads_the_dag(tmp_path):
    repo = git_repo_with_pipeline(tmp_path / "repo")
    dot = run([DVC, "dag", "--dot"], repo).stdout
    edges = set(re.findall(r'"(\w+)" -> "(\w+)"', dot))
    for before, after in [("synth", "ingest"), ("ingest", "align"), ("synth", "align"), ("align", "labels"),
                          ("ingest", "split"), ("labels", "train"), ("split", "train"), ("train", "evaluate")]:
        assert (before, after) in edges, f"missing edge {before} -> {after} in:\n{dot}"


def test_a_real_data_set_elsewhere_leaves_synth_out_of_the_way(tmp_path):
    """With data.root outside data/synthetic nothing depends on synth: `dvc repro evaluate` skips it."""
    params = params_document()
    params["data"].update(root=str(tmp_path / "CASME2" / "CASME2_RAW_selected"), annotations="")
    repo = git_repo_with_pipeline(tmp_path / "repo", params)
    edges = set(re.findall(r'"(\w+)" -> "(\w+)"', run([DVC, "dag", "--dot"], repo).stdout))
    assert not any(before == "synth" for before, _ in edges)
    assert ("ingest", "align") in edges


@pytest.fixture
def s3_server(monkeypatch):
    """A local S3 (moto's server) with one bucket; dummy credentials in the environment."""
    import boto3
    from moto.server import ThreadedMotoServer

    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    boto3.client("s3", endpoint_url=url).create_bucket(Bucket="mol-data")
    yield url
    server.stop()


def test_s3_remote_push_and_pull(tmp_path, s3_server):
    import boto3

    repo = dvc_repo(tmp_path / "repo")
    data = repo / "data"
    data.mkdir()
    (data / "manifest.csv").write_text("sample_id,label\ncasme2/sub01/EP01,0\n")
    (data / "aligned").mkdir()
    (data / "aligned" / "a.npz").write_bytes(os.urandom(4096))
    original = tmp_path / "original"
    shutil.copytree(data, original)
    run([DVC, "add", "-q", "data/manifest.csv", "data/aligned"], repo)
    run([DVC, "remote", "add", "-d", "storage", "s3://mol-data/dvc"], repo)
    run([DVC, "remote", "modify", "storage", "endpointurl", s3_server], repo)
    run([DVC, "push"], repo)
    stored = boto3.client("s3", endpoint_url=s3_server).list_objects_v2(Bucket="mol-data", Prefix="dvc/")
    assert stored["KeyCount"] >= 3  # two files and the directory listing

    shutil.rmtree(repo / ".dvc" / "cache")
    shutil.rmtree(data / "aligned")
    (data / "manifest.csv").unlink()
    run([DVC, "pull"], repo)
    assert filecmp.cmp(data / "manifest.csv", original / "manifest.csv", shallow=False)
    assert filecmp.cmp(data / "aligned" / "a.npz", original / "aligned" / "a.npz", shallow=False)


def test_pull_without_the_remote_data_fails_clearly(tmp_path, s3_server):
    repo = dvc_repo(tmp_path / "repo")
    (repo / "x.txt").write_text("hello")
    run([DVC, "add", "-q", "x.txt"], repo)
    run([DVC, "remote", "add", "-d", "storage", "s3://mol-data/empty"], repo)
    run([DVC, "remote", "modify", "storage", "endpointurl", s3_server], repo)
    shutil.rmtree(repo / ".dvc" / "cache")
    (repo / "x.txt").unlink()
    result = run([DVC, "pull"], repo, check=False)
    assert result.returncode != 0 and not (repo / "x.txt").exists()


TINY = {"synth": {"subjects": 3, "videos_per_subject": 2, "frames_min": 16, "frames_max": 16},
        "labels": {"flow": "farneback"},
        "split": {"mode": "loso"},
        "train": {"steps": 1, "batch_size": 2, "lr": 0.001}}


def changed_stages(repo: Path) -> set[str]:
    """The stages `dvc status` reports as changed (the always-changed params check aside)."""
    status = json.loads(run([DVC, "status", "--json"], repo).stdout)
    return set(status) - {"params"}


@pytest.mark.slow
def test_dvc_repro_status_and_exp_run_on_a_tiny_setting(tmp_path):
    params = params_document()
    for section, values in TINY.items():
        params[section].update(values)
    repo = git_repo_with_pipeline(tmp_path / "repo", params)
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-q", "-m", "pipeline"], repo)

    out = run([DVC, "repro"], repo).stdout
    for stage in STAGES:
        assert f"Running stage '{stage}'" in out
    metrics = json.loads(run([DVC, "metrics", "show", "--json"], repo).stdout)
    [headline] = [m["data"] for m in metrics.values()]
    assert set(headline) == {"reports/headline.json"}, "only the headline is a DVC metric"
    scores = headline["reports/headline.json"]["data"]
    assert set(scores) == {"uf1", "uar", "acc", "flow_epe", "landmark_nme", "uf1_chance", "uf1_majority",
                           "flow_epe_zero", "landmark_nme_mean_shape"} and 0.0 <= scores["uf1"] <= 1.0
    details = json.loads((repo / "reports" / "metrics.json").read_text())
    assert details["folds"] == 3 and details["uf1"] == scores["uf1"]
    assert (repo / "runs" / "fold_02" / "model.safetensors").is_file()
    html = run([DVC, "plots", "show", "-o", tmp_path / "plots"], repo)
    assert html.returncode == 0 and (tmp_path / "plots" / "index.html").is_file()
    assert changed_stages(repo) == set()

    # how a stage runs is not what it computes: nothing reruns
    edited = params_document(repo / "params.yaml")
    edited["execution"].update(device="cpu", workers=1, checkpoint_every=7, threads=1)
    (repo / "params.yaml").write_text(yaml.safe_dump(edited, sort_keys=False))
    assert changed_stages(repo) == set()
    # the network's code is what train and evaluate run: both rerun, nothing before them
    with open(repo / "mol_model" / "heads.py", "a") as code:
        code.write("\n# an edit\n")
    assert changed_stages(repo) == {"train", "evaluate"}
    (repo / "mol_model" / "heads.py").write_text((ROOT / "mol_model" / "heads.py").read_text())
    assert changed_stages(repo) == set()

    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-q", "-m", "results"], repo)
    experiment = run([DVC, "exp", "run", "-S", "train.lr=0.0005"], repo).stdout
    assert "Running stage 'train'" in experiment and "Running stage 'evaluate'" in experiment
    for stage in ("synth", "ingest", "align", "labels", "split"):
        assert f"Running stage '{stage}'" not in experiment, f"{stage} reran for a training parameter"
    assert load_params(repo / "params.yaml").section(TrainSettings).lr == 0.0005
