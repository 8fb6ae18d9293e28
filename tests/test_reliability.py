"""Reliability under faults (issue 17): security (no password printed, a dead or foreign tracking
server named as such within seconds), data loss (an output held by another run is refused and kept;
no lock or partial file outlives a killed run), stale results (outputs redone when what they were made
from changed; evaluate names unfinished folds and registers no champion from them). The bad-input classes
are in test_bad_inputs.py; benchmarks/probe.py measures all of them over many more cases
(docs/reliability.md)."""
from __future__ import annotations

import contextlib
import http.server
import json
import os
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import torch

from components.cli import main
from components.config import ExecutionSettings, LabelsSettings
from components.data.folds import write_fold_plan
from components.errors import redact
from components.io import LOCK_FILE, output_lock, write_json
from components.labels import labels
from components.train import train

from cli_failures import TINY, error_line, fails
from face_video import manifest_row, write_manifest, write_video
from mlflow_store import fresh_store

SECRET = "s3cr3t-Pa55"
RUN = ExecutionSettings(eval_batch_size=4, threads=1)
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def mol(*argv, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "components.cli", *map(str, argv)], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "MOL_TRACKING": "on", **(env or {})})


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def http_404_server():
    """A web server that answers 404 to everything (a proxy or a wrong path, not MLflow)."""
    class NotFound(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(404)
            self.end_headers()
            self.wfile.write(b"<html>not here</html>")

        do_POST = do_GET

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), NotFound)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()


@contextlib.contextmanager
def held(folder, stage: str = "train"):
    """Another process holding `folder` (as a running stage does) until the block ends."""
    code = ("import sys, time\nfrom components.io import output_lock\n"
            "with output_lock(sys.argv[1], sys.argv[2]):\n    print('held', flush=True)\n    time.sleep(300)\n")
    holder = subprocess.Popen([sys.executable, "-c", code, str(folder), stage], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        yield holder
    finally:
        holder.kill()
        holder.wait()


# ---------------------------------------------------------------------------------------------- security

def test_redact_hides_the_userinfo_of_every_uri():
    assert redact(f"http://me:{SECRET}@host:5000/x") == "http://***@host:5000/x"
    assert redact(f"at https://token{SECRET}@h/ and s3://b/k@v") == "at https://***@h/ and s3://b/k@v"
    assert redact(f"http://u:p@{SECRET}@host/") == "http://***@host/"  # an @ inside the password
    assert redact("sqlite:////tmp/mlflow.db") == "sqlite:////tmp/mlflow.db"


def test_unreachable_tracking_server_is_named_within_seconds_without_its_password(run_inputs, tmp_path):
    start = time.perf_counter()
    result = mol("train", "--clips", run_inputs / "clips", "--folds", run_inputs / "folds.json", "--fold", 0,
                 "--out", tmp_path / "runs", "--parent-run-id", "0123abcd",
                 env={"MLFLOW_TRACKING_URI": f"http://mol:{SECRET}@127.0.0.1:{closed_port()}"})
    assert result.returncode == 2 and time.perf_counter() - start < 60
    line = error_line(result.stderr, "train")
    assert "unreachable" in line and "does not exist" not in line and "http://***@127.0.0.1" in line
    assert SECRET not in result.stdout + result.stderr


def test_server_answering_404_is_not_taken_for_mlflow(run_inputs, tmp_path):
    with http_404_server() as port:
        result = mol("train", "--clips", run_inputs / "clips", "--folds", run_inputs / "folds.json", "--fold", 0,
                     "--out", tmp_path / "runs", env={"MLFLOW_TRACKING_URI": f"http://mol:{SECRET}@127.0.0.1:{port}"})
    assert result.returncode == 2 and "answered HTTP 404" in error_line(result.stderr, "train")
    assert SECRET not in result.stdout + result.stderr and not (tmp_path / "runs" / "fold_00").exists()


def test_missing_run_in_a_reachable_store_is_named_as_missing(run_inputs, tmp_path, monkeypatch, capsys):
    fresh_store(tmp_path / "store", tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}")
    monkeypatch.delenv("MOL_TRACKING", raising=False)
    line = fails(capsys, "train", "--clips", run_inputs / "clips", "--folds", run_inputs / "folds.json", "--fold", 0,
                 "--out", tmp_path / "runs", "--parent-run-id", "0123abcd")
    assert "MLflow run 0123abcd does not exist" in line


def test_predict_from_an_unreachable_registry_keeps_the_password(frames_folder, tmp_path):
    result = mol("predict", frames_folder, "--out", tmp_path / "p", "--no-pictures",
                 env={"MLFLOW_TRACKING_URI": f"https://reader:{SECRET}@127.0.0.1:{closed_port()}"})
    assert result.returncode == 2 and "unreachable" in error_line(result.stderr, "predict")
    assert SECRET not in result.stdout + result.stderr


def test_a_pickled_checkpoint_is_refused_without_advice_to_unpickle_it(frames_folder, tmp_path, capsys):
    class Payload:
        def __reduce__(self):
            return (print, ("this code would run",))

    torch.save({"weights": Payload()}, tmp_path / "evil.pth")
    line = fails(capsys, "predict", frames_folder, "--model", tmp_path / "evil.pth", "--classes", 3, "--out", tmp_path / "p")
    assert "refused" in line and "weights_only" not in line and "GLOBAL" not in line.split("(")[0]


# ---------------------------------------------------------------------------------------------- data loss

def test_a_fold_held_by_another_run_is_refused_and_its_files_kept(run_inputs, tmp_path, capsys):
    fold = tmp_path / "runs" / "fold_00"
    fold.mkdir(parents=True)
    finished = {"metrics.json": b'{"fold": 0, "status": "done"}', "model.safetensors": b"weights of the first run"}
    for name, data in finished.items():
        (fold / name).write_bytes(data)
    with held(fold) as holder:
        line = fails(capsys, "train", "--clips", run_inputs / "clips", "--folds", run_inputs / "folds.json", "--fold", 0,
                     "--out", tmp_path / "runs", "--no-mlflow")
    assert "in use by" in line and f"pid {holder.pid}" in line
    assert {name: (fold / name).read_bytes() for name in finished} == finished


@pytest.mark.parametrize("stage", ["align", "labels"])
def test_align_and_labels_refuse_an_output_held_by_another_run(stage, tmp_path, capsys):
    write_manifest(tmp_path / "manifest.csv", [manifest_row("t/s1/v", "frames", 8)])
    out = tmp_path / "out"
    out.mkdir()
    (out / "t__s1__v.npz").write_bytes(b"finished output")
    extra = ["--aligned", tmp_path] if stage == "labels" else []
    with held(out, stage):
        line = fails(capsys, stage, "--manifest", tmp_path / "manifest.csv", *extra, "--out", out, "--workers", 1)
    assert "in use by" in line and (out / "t__s1__v.npz").read_bytes() == b"finished output"


def test_a_killed_holder_leaves_no_lock_and_its_partial_files_are_cleaned(tmp_path):
    with held(tmp_path / "out", "labels") as holder:
        partial = tmp_path / "out" / ".t__s1__v.npz.ab12cd_9.npz"  # an atomic write cut short by kill -9
        partial.write_bytes(b"half a file")
        holder.kill()
        holder.wait()
    with output_lock(tmp_path / "out", "labels"):  # the kernel released the killed holder's lock
        assert not partial.exists()
    assert not (tmp_path / "out" / LOCK_FILE).exists()


# ---------------------------------------------------------------------------------------------- stale results

def test_align_redoes_a_sample_whose_frame_range_changed(tmp_path, capsys):
    write_video(tmp_path / "frames", 10)
    rows = [manifest_row("t/s1/v", "frames", 10)]
    write_manifest(tmp_path / "manifest.csv", rows)
    args = ["align", "--manifest", tmp_path / "manifest.csv", "--out", tmp_path / "aligned", "--workers", 1]
    assert main([str(a) for a in args]) == 0
    assert main([str(a) for a in args]) == 0 and "aligned 0, kept 1" in capsys.readouterr().out
    write_manifest(tmp_path / "manifest.csv", [{**rows[0], "onset": 11}])  # the sheet's onset was corrected
    assert main([str(a) for a in args]) == 0 and "aligned 1, kept 0" in capsys.readouterr().out
    with np.load(tmp_path / "aligned" / "t__s1__v.npz") as stored:
        assert stored["frame_numbers"].tolist() == list(range(11, 20))


def test_labels_redo_a_sample_whose_label_or_aligned_file_changed(tmp_path):
    rng = np.random.default_rng(0)

    def aligned(made_from: str):
        np.savez(tmp_path / "aligned" / "t__s1__v.npz", frames=rng.integers(0, 255, (8, 144, 144), dtype=np.uint8),
                 landmarks=rng.uniform(20, 120, (8, 68, 2)).astype(np.float32), made_from=np.array(made_from))

    (tmp_path / "aligned").mkdir()
    aligned("first alignment")
    row = manifest_row("t/s1/v", "frames", 8)
    write_manifest(tmp_path / "manifest.csv", [row])
    settings = LabelsSettings(flow="farneback")

    def run() -> int:
        return labels(tmp_path / "manifest.csv", tmp_path / "aligned", tmp_path / "clips", settings, workers=1)["labelled"]

    assert run() == 1 and run() == 0
    write_manifest(tmp_path / "manifest.csv", [{**row, "label": 0}])
    assert run() == 1
    with np.load(tmp_path / "clips" / "t__s1__v.npz") as clip:
        assert int(clip["label"]) == 0
    aligned("aligned again from other frames")
    assert run() == 1 and run() == 0


def test_train_redoes_a_fold_made_from_other_samples_or_missing_clips(run_inputs, tmp_path, capsys):
    folds = json.loads((run_inputs / "folds.json").read_text())
    stale = {"fold": 0, "test_subject": "s1", "status": "skipped", "reason": "no test clip files",
             "config": TINY.as_dict(), "made_from": {"samples": "an older folds file", "clips": "no clip files"}}
    write_json(tmp_path / "runs" / "fold_00" / "metrics.json", stale)
    [metrics] = train(run_inputs / "clips", run_inputs / "folds.json", tmp_path / "runs", fold=0, config=TINY,
                      execution=RUN, track=False)
    assert "training the fold again" in capsys.readouterr().out
    assert metrics["status"] == "done" and metrics["made_from"]["samples"] != "an older folds file"
    again = train(run_inputs / "clips", run_inputs / "folds.json", tmp_path / "runs", fold=0, config=TINY,
                  execution=RUN, track=False)
    assert "is finished" in capsys.readouterr().out and again[0]["made_from"] == metrics["made_from"]
    plan = json.loads((tmp_path / "runs" / "fold_plan.json").read_text())["folds"]
    assert [f["test_subject"] for f in plan] == [f["test_subject"] for f in folds["folds"]]


def hand_made_run(runs, plan_folds: dict, finished: list[int]) -> None:
    """A run whose fold_plan.json lists `plan_folds` and whose `finished` folds have a result (the first
    also a model file name), each made from the plan's samples."""
    spec = [{"fold": k, "test_subject": s, "train": ["d/a/1"], "test": [f"d/{s}/1"]} for k, s in plan_folds.items()]
    document = {"num_classes": 2, "class_names": ["neg", "pos"], "folds": spec}
    write_fold_plan(runs, document)
    plan = json.loads((runs / "fold_plan.json").read_text())["folds"]
    for k in finished:
        prediction = {"sample_id": f"d/{plan_folds[k]}/1", "subject": plan_folds[k], "label": k % 2, "pred": k % 2,
                      "probabilities": [0.5, 0.5], "clip_predictions": [k % 2]}
        cm = [[1, 0], [0, 0]] if k % 2 == 0 else [[0, 0], [0, 1]]
        write_json(runs / f"fold_{k:02d}" / "metrics.json", {
            "fold": k, "test_subject": plan_folds[k], "status": "done", "selection": "final", "num_classes": 2,
            "class_names": ["neg", "pos"], "n_test_clips": 1, "n_test_videos": 1, "flow_epe": 1.0,
            "landmark_nme": 0.1, "collapsed": False, "predictions": [prediction], "config": TINY.as_dict(),
            "video": {"confusion_matrix": cm, "uf1": 1.0, "uar": 1.0}, "clip": {"confusion_matrix": cm, "uf1": 1.0,
                                                                                "uar": 1.0},
            "made_from": {"samples": plan[k]["samples"], "clips": "x"}})


def test_evaluate_names_unfinished_folds_and_registers_no_champion_from_them(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # MLflow's artifacts go under the working directory
    runs = tmp_path / "runs"
    hand_made_run(runs, {0: "a", 1: "b", 2: "c"}, finished=[0, 1])
    (runs / "fold_02" / "resume").mkdir(parents=True)
    (runs / "fold_02" / "resume" / "state.safetensors").write_bytes(b"a fold still training")
    assert main(["evaluate", "--runs", str(runs), "--out", str(tmp_path / "off"), "--no-mlflow"]) == 0
    assert "fold 2 (c) is not in the pooled score: training is unfinished" in capsys.readouterr().out
    metrics = json.loads((tmp_path / "off" / "metrics.json").read_text())
    assert metrics["unfinished_folds"] == [2] and metrics["complete"] is False and metrics["folds"] == 2

    fresh_store(tmp_path / "store", tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}")
    monkeypatch.delenv("MOL_TRACKING", raising=False)
    line = fails(capsys, "evaluate", "--runs", runs, "--out", tmp_path / "tracked")
    assert "incomplete" in line and "--allow-incomplete" in line
    assert json.loads((tmp_path / "tracked" / "metrics.json").read_text())["registered"] is None


def test_evaluate_leaves_out_a_fold_trained_on_other_samples(tmp_path, capsys):
    runs = tmp_path / "runs"
    hand_made_run(runs, {0: "a", 1: "b"}, finished=[0, 1])
    hand_made_run(runs, {0: "a", 1: "b2"}, finished=[0])  # the folds file changed; fold 1 was not retrained
    assert main(["evaluate", "--runs", str(runs), "--out", str(tmp_path / "e"), "--no-mlflow"]) == 0
    assert "fold 1 (b2) is not in the pooled score: its result was trained on other samples" in capsys.readouterr().out
    assert json.loads((tmp_path / "e" / "metrics.json").read_text())["unfinished_folds"] == [1]
