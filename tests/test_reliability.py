"""Reliability under bad input and faults (issue 17), one class of failure per section:
security (no password printed, a dead tracking server named as such), data loss (held outputs), stale
results (outputs redone when what they were made from changed; evaluate names unfinished folds), silent
wrong input (truncated or mixed frames, bad sheet cells, a flag that would be ignored), and tracebacks
(every bad input is one line and exit status 2). benchmarks/probe.py measures the same classes over
many more inputs (docs/reliability.md)."""
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

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import save_file

from components.cli import main
from components.config import ExecutionSettings, LabelsSettings, TrainSettings
from components.data.folds import write_fold_plan
from components.errors import redact
from components.io import LOCK_FILE, output_lock, write_json
from components.labels import labels
from components.train import train
from components.training.checkpoint import CONFIG_KEY, save_model
from components.vision.frames import RejectedVideo, read_gray
from face_video import manifest_row, write_manifest, write_video
from fixtures_clips import write_clip_set, write_loso_folds
from fixtures_datasets import write_frames
from mlflow_store import fresh_store
from mol_model import MOL

SECRET = "s3cr3t-Pa55"
TINY = TrainSettings(batch_size=1, steps=1)
RUN = ExecutionSettings(eval_batch_size=4, threads=1)
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def error_line(stderr: str, stage: str) -> str:
    """The one error line of a failed command: no traceback, one `mol STAGE: error:` line, last."""
    assert "Traceback" not in stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert lines and lines[-1].startswith(f"mol {stage}: error: ")
    assert sum(": error: " in line for line in lines) == 1
    return lines[-1]


def fails(capsys, *argv) -> str:
    """Run `mol ARGV` in this process; it must exit 2 with one error line, which is returned."""
    assert main([str(a) for a in argv]) == 2
    return error_line(capsys.readouterr().err, argv[0])


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


@pytest.fixture(scope="module")
def run_inputs(tmp_path_factory):
    """Tiny clip files and LOSO folds: 3 subjects x 2 classes."""
    root = tmp_path_factory.mktemp("inputs")
    rows = write_clip_set(root / "clips")
    write_loso_folds(root / "folds.json", rows, ["neg", "pos"])
    return root


@pytest.fixture(scope="module")
def frames_folder(tmp_path_factory):
    """8 small frames: enough for `mol predict` to read before it loads the model."""
    folder = tmp_path_factory.mktemp("frames")
    write_frames(folder, [f"img{n}.jpg" for n in range(1, 9)], size=32)
    return folder


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """A 3-class model file as `mol train` writes it, and its tensors."""
    torch.manual_seed(0)
    model = MOL(num_classes=3)
    path = tmp_path_factory.mktemp("model") / "model.safetensors"
    save_model(path, model, {"num_classes": 3, "neighbors": 4, "mer_input": "official"})
    return path, {k: v.contiguous() for k, v in model.state_dict().items()}


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


# ---------------------------------------------------------------------------------------------- silent wrong input

def jpeg_frames(folder, sizes: list[int]) -> list:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for n, size in enumerate(sizes, start=10):
        image = np.random.default_rng(n).integers(0, 255, (size, size), dtype=np.uint8)
        assert cv2.imwrite(str(folder / f"img{n}.jpg"), image)
        paths.append(folder / f"img{n}.jpg")
    return paths


@pytest.mark.parametrize("fault", ["truncated", "mixed sizes"])
def test_a_damaged_clip_is_rejected_at_align_and_refused_by_predict(fault, tmp_path, capsys):
    paths = jpeg_frames(tmp_path / "frames", [64] * 7 + [48 if fault == "mixed sizes" else 64])
    if fault == "truncated":
        paths[3].write_bytes(paths[3].read_bytes()[:-300])  # a copy cut short: OpenCV would decode it grey
        with pytest.raises(RejectedVideo, match="truncated frame img13.jpg"):
            read_gray(paths[3])
    write_manifest(tmp_path / "manifest.csv", [manifest_row("t/s1/v", "frames", 8)])
    assert main(["align", "--manifest", str(tmp_path / "manifest.csv"), "--out", str(tmp_path / "a"), "--workers", "1"]) == 0
    expected = "truncated frame img13.jpg" if fault == "truncated" else "img17.jpg is 48x48 but img10.jpg is 64x64"
    [reason] = pd.read_csv(tmp_path / "a" / "rejects.csv")["reason"].tolist()
    assert expected in reason
    assert expected in fails(capsys, "predict", tmp_path / "frames", "--model", "none.safetensors", "--out",
                             tmp_path / "p")


def test_bad_frame_cells_reject_their_rows_and_a_slash_apex_stays_unknown(tmp_path):
    for video in ("EP01", "EP02", "EP03", "EP04", "EP05"):
        write_frames(tmp_path / "root" / "sub01" / video, [f"img{n}.jpg" for n in range(1, 11)])
    cells = {"EP01": ("abc", 3, 10), "EP02": (1, 3, 9.5), "EP03": (-3, 3, 10), "EP04": (1, 3, 1e30),
             "EP05": (1, "/", 10)}
    sheet = "Subject,Filename,OnsetFrame,ApexFrame,OffsetFrame,Estimated Emotion\n" + "".join(
        f"1,{video},{a},{b},{c},happiness\n" for video, (a, b, c) in cells.items())
    (tmp_path / "sheet.csv").write_text(sheet)
    assert main(["ingest", "--dataset", "casme2", "--root", str(tmp_path / "root"), "--annotations",
                 str(tmp_path / "sheet.csv"), "--out", str(tmp_path / "m.csv")]) == 0
    manifest, rejects = pd.read_csv(tmp_path / "m.csv"), pd.read_csv(tmp_path / "rejects.csv")
    assert manifest["video_id"].tolist() == ["EP05"] and manifest["apex"].isna().all()
    reasons = dict(zip(rejects["video_id"], rejects["reason"]))
    assert "OnsetFrame 'abc' is not a frame number" in reasons["EP01"]
    assert "OffsetFrame '9.5' is not a whole frame number" in reasons["EP02"]
    assert "'-3' is outside" in reasons["EP03"] and "OffsetFrame" in reasons["EP04"]


def test_classes_flag_that_a_model_file_would_ignore_is_refused(weights, frames_folder, tmp_path, capsys):
    line = fails(capsys, "predict", frames_folder, "--model", weights[0], "--classes", 5, "--out", tmp_path / "p")
    assert "records 3 classes" in line


@pytest.mark.parametrize("override", ["data.dataset=foo", "data.classes=7", "split.mode=bogus", "train.lr=fast",
                                      "kubeflow.gpus_per_fold=-1"])
def test_pipeline_compile_validates_every_value(override, tmp_path, capsys):
    key = override.split("=")[0]
    line = fails(capsys, "pipeline", "compile", "--param", override, "--out", tmp_path / "p.yaml")
    assert key in line and not (tmp_path / "p.yaml").exists()


# ---------------------------------------------------------------------------------------------- tracebacks

@pytest.mark.parametrize("stage", ["ingest", "split", "synth", "align", "labels", "train", "evaluate", "predict",
                                   "pipeline"])
def test_an_output_of_the_wrong_kind_fails_before_any_work(stage, tmp_path, capsys):
    (tmp_path / "a_file").write_text("x")
    (tmp_path / "a_folder").mkdir()
    file_out = stage in ("ingest", "split", "pipeline")
    wrong = tmp_path / ("a_folder" if file_out else "a_file")
    argv = {"ingest": ["ingest", "--dataset", "folder", "--root", tmp_path, "--out", wrong],
            "split": ["split", "--manifest", "m.csv", "--out", wrong],
            "synth": ["synth", wrong],
            "align": ["align", "--manifest", "m.csv", "--out", wrong],
            "labels": ["labels", "--manifest", "m.csv", "--aligned", tmp_path, "--out", wrong],
            "train": ["train", "--clips", tmp_path, "--folds", "f.json", "--all", "--no-mlflow", "--out", wrong],
            "evaluate": ["evaluate", "--runs", tmp_path, "--no-mlflow", "--out", wrong],
            "predict": ["predict", tmp_path, "--out", wrong],
            "pipeline": ["pipeline", "compile", "--out", wrong]}[stage]
    line = fails(capsys, *argv)
    assert str(wrong) in line and ("is a folder" in line if file_out else "is a file" in line)
    under = fails(capsys, *argv[:-1], tmp_path / "a_file" / "out")  # a parent that is a file
    assert "is a file, not a folder" in under


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root may write anywhere")
def test_an_output_in_a_folder_nobody_may_write_fails_at_once(tmp_path, capsys):
    (tmp_path / "locked").mkdir(mode=0o555)
    line = fails(capsys, "split", "--manifest", "m.csv", "--out", tmp_path / "locked" / "sub" / "folds.json")
    assert "may not write" in line


@pytest.mark.parametrize("content, expected", [(b"", "is empty"), ("Subject,Filename\nSchl\xfcssel,a\n".encode("latin-1"),
                                                                     "not UTF-8")])
def test_unreadable_annotation_sheets(content, expected, tmp_path, capsys):
    (tmp_path / "sheet.csv").write_bytes(content)
    (tmp_path / "root").mkdir()
    assert expected in fails(capsys, "ingest", "--dataset", "casme2", "--root", tmp_path / "root", "--annotations",
                             tmp_path / "sheet.csv", "--out", tmp_path / "m.csv")


@pytest.mark.parametrize("damage", ["missing tensor", "reshaped tensor", "num_classes missing", "num_classes text",
                                    "num_classes 0", "config not JSON", "neighbors 0"])
def test_damaged_model_files(damage, weights, frames_folder, tmp_path, capsys):
    tensors, config = dict(weights[1]), {"num_classes": 3, "neighbors": 4, "mer_input": "official"}
    name = next(iter(tensors))
    if damage == "missing tensor":
        del tensors[name]
    elif damage == "reshaped tensor":
        tensors[name] = tensors[name].reshape(-1)
    else:
        tensors = {name: tensors[name]}  # the configuration is refused before any tensor is read
        config = {"num_classes missing": {"neighbors": 4}, "num_classes text": {**config, "num_classes": "three"},
                  "num_classes 0": {**config, "num_classes": 0}, "neighbors 0": {**config, "neighbors": 0},
                  "config not JSON": "{num_classes: 3"}[damage]
    save_file(tensors, str(tmp_path / "m.safetensors"),
              metadata={CONFIG_KEY: config if isinstance(config, str) else json.dumps(config)})
    line = fails(capsys, "predict", frames_folder, "--model", tmp_path / "m.safetensors", "--out", tmp_path / "p")
    assert "m.safetensors" in line and len(line) < 600


def test_resume_state_with_a_bad_tensor(run_inputs, tmp_path, capsys):
    from components.train import fold_made_from
    from components.training.data import clip_identities

    folds = json.loads((run_inputs / "folds.json").read_text())
    spec = folds["folds"][0]
    identity = fold_made_from(spec, folds, clip_identities(run_inputs / "clips", {*spec["train"], *spec["test"]}))
    state = tmp_path / "runs" / "fold_00" / "resume" / "state.safetensors"
    state.parent.mkdir(parents=True)
    meta = {"config": TrainSettings(batch_size=1, steps=2).as_dict(), "param_groups": [], "optim_scalars": {},
            "step": 1, "log": [], "best": None, "run_id": None, "seconds": 1.0, "made_from": identity}
    save_file({"model.encoder.0.weight": torch.zeros(3)}, str(state), metadata={"resume": json.dumps(meta)})
    line = fails(capsys, "train", "--clips", run_inputs / "clips", "--folds", run_inputs / "folds.json", "--fold", 0,
                 "--out", tmp_path / "runs", "--no-mlflow", "--batch-size", 1, "--steps", 2, "--threads", 1)
    assert "does not fit" in line and str(state.parent) in line


@pytest.mark.parametrize("edit, expected", [
    (lambda d: d["folds"][0].pop("train"), "fold 0 lacks train"),
    (lambda d: d.update(folds={"0": {}}), "folds is not a list"),
    (lambda d: d.update(num_classes="2"), "num_classes is '2'"),
    (lambda d: d["folds"][1].update(test="s2"), "fold 1's test is not a list")])
def test_damaged_folds_files(edit, expected, run_inputs, tmp_path, capsys):
    document = json.loads((run_inputs / "folds.json").read_text())
    edit(document)
    (tmp_path / "folds.json").write_text(json.dumps(document))
    assert expected in fails(capsys, "train", "--clips", run_inputs / "clips", "--folds", tmp_path / "folds.json",
                             "--all", "--out", tmp_path / "runs", "--no-mlflow")


@pytest.mark.parametrize("value", [0, 300])
def test_neighbors_out_of_range(value, run_inputs, tmp_path, capsys):
    assert "train.neighbors" in fails(capsys, "train", "--clips", run_inputs / "clips", "--folds",
                                      run_inputs / "folds.json", "--fold", 0, "--out", tmp_path, "--neighbors", value)


@pytest.mark.parametrize("text, expected", [(b"train:\n  lr: fast\n", "train.lr is 'fast'"),
                                            (b"kubeflow:\n  gpus_per_fold: -1\n", "outside >= 0"),
                                            (b"train:\n  lr: 1e-4 # \xe9t\xe9\n", "not UTF-8")])
def test_bad_params_files(text, expected, tmp_path, capsys):
    (tmp_path / "params.yaml").write_bytes(text)
    assert expected in fails(capsys, "params", tmp_path / "params.yaml")
    assert expected in fails(capsys, "split", "--manifest", "m.csv", "--out", tmp_path / "f.json", "--params",
                             tmp_path / "params.yaml")
