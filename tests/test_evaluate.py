"""`mol evaluate`: pooling hand-made fold results, plots and CSVs, collapse warning, registration."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from components.cli import main
from components.config import DataSettings, EvaluateSettings, LabelsSettings, SynthSettings, TrainSettings
from components.errors import UserError
from components.evaluate import evaluate
from components.io import write_json, write_npz
from components.training.scoring import collapse_message, video_logits
from components.vision.clips import eval_crops

from mlflow_store import fresh_store

CLASSES = ["neg", "pos"]


def prediction(sample_id, label, pred, clips):
    return {"sample_id": sample_id, "subject": sample_id.split("/")[1], "label": label, "pred": pred,
            "probabilities": [0.5, 0.5], "clip_predictions": clips}


def fold_metrics(fold, subject, predictions, n_clips, flow_epe, landmark_nme, video_cm, clip_cm, uf1, uar):
    """A fold's metrics.json as `mol train` writes it (only the keys evaluate reads are filled in)."""
    return {"fold": fold, "test_subject": subject, "status": "done", "selection": "final", "num_classes": 2,
            "class_names": CLASSES, "n_test_clips": n_clips, "n_test_videos": len(predictions),
            "flow_epe": flow_epe, "landmark_nme": landmark_nme, "collapsed": False, "predictions": predictions,
            "video": {"confusion_matrix": video_cm, "uf1": uf1, "uar": uar},
            "clip": {"confusion_matrix": clip_cm, "uf1": uf1, "uar": uar}, "config": TrainSettings().as_dict()}


def write_samples(fold_dir, sample_ids):
    """A fold's samples.npz as `mol train` writes it: one clip per sample, labels and predictions."""
    k = len(sample_ids)
    rng = np.random.default_rng(0)
    landmarks = rng.uniform(30, 100, (k, 8, 68, 2)).astype(np.float32)
    flow = rng.normal(0, 0.5, (k, 7, 2, 128, 128)).astype(np.float16)
    write_npz(fold_dir / "samples.npz", frames=rng.integers(0, 255, (k, 8, 128, 128), dtype=np.uint8),
              label_flow=flow, pred_flow=(flow * 0.5).astype(np.float16), label_landmarks=landmarks,
              pred_landmarks=landmarks[:, 1:] + 1.0, sample_ids=np.array(sample_ids))


@pytest.fixture
def runs(tmp_path):
    """Fold 0 (casme2 subject): video cm [[2,0],[1,1]]; fold 1 (samm subject): [[0,1],[0,2]]."""
    p0 = [prediction("casme2/sub01/a", 0, 0, [0, 0]), prediction("casme2/sub01/b", 0, 0, [0]),
          prediction("casme2/sub01/c", 1, 0, [0]), prediction("casme2/sub01/d", 1, 1, [1, 1])]
    p1 = [prediction("samm/006/a", 0, 1, [1, 0]), prediction("samm/006/b", 1, 1, [1]),
          prediction("samm/006/c", 1, 1, [1, 1])]
    write_json(tmp_path / "runs/fold_00/metrics.json",
               fold_metrics(0, "casme2/01", p0, 6, 1.0, 0.1, [[2, 0], [1, 1]], [[3, 0], [1, 2]], 0.73, 0.75))
    write_json(tmp_path / "runs/fold_01/metrics.json",
               fold_metrics(1, "samm/006", p1, 5, 4.0, 0.4, [[0, 1], [0, 2]], [[1, 1], [0, 3]], 0.4, 0.5))
    write_samples(tmp_path / "runs/fold_00", ["casme2/sub01/a", "casme2/sub01/b"])
    write_samples(tmp_path / "runs/fold_01", ["samm/006/a"])
    write_json(tmp_path / "runs/fold_02/metrics.json",
               {"fold": 2, "test_subject": "samm/007", "status": "skipped", "reason": "no test clip files"})
    return tmp_path / "runs"


def test_pools_summed_confusion_matrices(runs, tmp_path, capsys):
    metrics = evaluate(runs, tmp_path / "eval", track=False)
    out = capsys.readouterr().out
    assert "fold 2 (samm/007) was skipped" in out and "no model is registered" in out
    # pooled video cm [[2,1],[1,3]]: recalls 2/3, 3/4; precisions 2/3, 3/4 -> F1 2/3, 3/4
    assert metrics["video"]["confusion_matrix"] == [[2, 1], [1, 3]]
    expected = {"acc": 5 / 7, "uar": 17 / 24, "uf1": 17 / 24, "war": 5 / 7, "wf1": (3 * 2 / 3 + 4 * 3 / 4) / 7}
    for key, value in expected.items():
        assert metrics[key] == pytest.approx(value) and metrics["video"][key] == pytest.approx(value)
    assert metrics["level"] == "video"
    assert metrics["clip"]["confusion_matrix"] == [[4, 1], [1, 5]] and metrics["clip"]["acc"] == pytest.approx(9 / 11)
    assert metrics["flow_epe"] == pytest.approx((6 * 1.0 + 5 * 4.0) / 11)  # mean over clips, not folds
    assert metrics["landmark_nme"] == pytest.approx((6 * 0.1 + 5 * 0.4) / 11)
    assert metrics["per_dataset"]["samm"]["video"]["confusion_matrix"] == [[0, 1], [0, 2]]
    assert metrics["per_dataset"]["casme2"]["clip"]["confusion_matrix"] == [[3, 0], [1, 2]]
    assert metrics["best_fold"]["fold"] == 0 and metrics["skipped_folds"] == [2] and not metrics["collapsed"]
    assert json.loads((tmp_path / "eval/metrics.json").read_text()) == metrics
    headline = json.loads((tmp_path / "eval/headline.json").read_text())  # what `dvc metrics show` lists
    assert headline == {key: metrics[key] for key in ("uf1", "uar", "acc", "flow_epe", "landmark_nme")}

    predictions = pd.read_csv(tmp_path / "eval/predictions.csv")
    assert len(predictions) == 7 and predictions.loc[2, ["actual", "predicted"]].tolist() == ["pos", "neg"]
    assert pd.read_csv(tmp_path / "eval/per_fold.csv")["video_uf1"].tolist() == [0.73, 0.4]
    for name in ("confusion_matrix.png", "confusion_matrix_clip.png", "per_fold.png"):
        assert (tmp_path / "eval" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for name in ("flow_samples.png", "landmark_samples.png"):  # the best fold's kept clips
        assert (tmp_path / "eval" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_pooled_collapse_is_flagged(tmp_path, capsys):
    p = [prediction("d/s1/a", 0, 1, [1]), prediction("d/s1/b", 1, 1, [1])]
    write_json(tmp_path / "runs/fold_00/metrics.json",
               fold_metrics(0, "s1", p, 2, 1.0, 0.1, [[0, 1], [0, 1]], [[0, 1], [0, 1]], 1 / 3, 0.5))
    write_samples(tmp_path / "runs/fold_00", ["d/s1/a"])
    metrics = evaluate(tmp_path / "runs", tmp_path / "eval", EvaluateSettings(register=False), track=False)
    assert metrics["collapsed"] and "collapsed to one class" in capsys.readouterr().out
    assert collapse_message([0, 0], [1, 1], CLASSES) is None  # one true class: nothing to distinguish


def test_video_logits_average_clips():
    logits = np.array([[1.0, 0.0], [3.0, 2.0], [0.0, 5.0]])
    np.testing.assert_allclose(video_logits(logits, np.array([0, 0, 1]), 2), [[2.0, 1.0], [0.0, 5.0]])


def test_registers_champion_and_it_loads_back(runs, tmp_path, tmp_path_factory, monkeypatch):
    import mlflow
    import torch
    from mlflow import MlflowClient

    from components.tracking import runs as tracking
    from components.training.checkpoint import load_model, save_model
    from mol_model import MOL

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    fresh_store(tmp_path, tmp_path_factory.getbasetemp())
    monkeypatch.chdir(tmp_path)
    torch.manual_seed(0)
    save_model(runs / "fold_00/model.safetensors", MOL(num_classes=2),
               {"num_classes": 2, "neighbors": 4, "mer_input": "official", "class_names": CLASSES,
                "normalization": "x/127.5-1"})
    parent = tracking.start_parent_run("eval-test", "p", {}, {"protocol": "final"})
    (runs / "parent_run_id.txt").write_text(parent.run_id + "\n")  # as `mol train` leaves it
    made_by = {"dataset": "casme2+samm", "manifest_sha256": "ab12", "flow_backend": "dis", "class_names": "neg,pos",
               "code_version": "0123abc", "precision": "bf16-autocast", "protocol": "final"}
    fold0 = json.loads((runs / "fold_00/metrics.json").read_text())
    write_json(runs / "fold_00/metrics.json", {**fold0, "provenance": made_by})  # as `mol train` records it

    metrics = evaluate(runs, tmp_path / "eval")
    assert metrics["registered"] == {"name": "mol-mer", "version": "1", "alias": "champion", "fold": 0}

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    run = client.get_run(parent.run_id)
    assert run.info.status == "FINISHED" and run.data.metrics["uf1"] == pytest.approx(17 / 24)
    assert run.data.metrics["samm_uf1"] == pytest.approx(metrics["per_dataset"]["samm"]["video"]["uf1"])
    assert "evaluation/metrics.json" in {a.path for a in client.list_artifacts(parent.run_id, "evaluation")}
    version = client.get_model_version_by_alias("mol-mer", "champion")
    assert str(version.version) == "1" and version.tags["fold"] == "0"
    assert {key: version.tags[key] for key in made_by} == made_by  # which data, flow, code made the model

    served = mlflow.pyfunc.load_model("models:/mol-mer@champion")
    clip = np.random.default_rng(0).integers(0, 256, size=(1, 1, 8, 128, 128), dtype=np.uint8)
    table = served.predict(clip)
    model, _ = load_model(runs / "fold_00/model.safetensors")
    with torch.no_grad():
        expected = torch.softmax(model(torch.from_numpy(clip).float() / 127.5 - 1).logits, 1).numpy()
    np.testing.assert_allclose(table[CLASSES].to_numpy(), expected, atol=1e-5)

    again = evaluate(runs, tmp_path / "eval")  # a rerun does not register the same file twice
    assert again["registered"]["version"] == "1"
    assert len(client.search_model_versions("name='mol-mer'")) == 1


def test_cli_error_without_folds(tmp_path, capsys):
    assert main(["evaluate", "--runs", str(tmp_path), "--out", str(tmp_path / "e"), "--no-mlflow"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("mol evaluate: error:") and "fold_*/metrics.json" in err and "\n" not in err


# ---------------------------------------------------------------------------------------------- truth pictures

def png_width(path) -> int:
    return int.from_bytes(path.read_bytes()[16:20], "big")


@pytest.fixture(scope="module")
def synthetic_clips(tmp_path_factory):
    """A tiny `mol synth` set (1 subject, 2 videos of 16 frames), aligned and labelled (TV-L1)."""
    from components.align import align
    from components.ingest import ingest
    from components.labels import labels
    from components.synth import synth
    from components.synthetic.render import FRAMES_FOLDER
    from components.synthetic.sheet import SHEET_FILE

    root = tmp_path_factory.mktemp("synthetic")
    synth(root / "synthetic", SynthSettings(subjects=1, videos_per_subject=2, seed=4, frames_min=16, frames_max=16))
    ingest(DataSettings(dataset="casme2", root=str(root / "synthetic" / FRAMES_FOLDER), annotations=str(root / "synthetic" / SHEET_FILE), classes=5), str(root / "manifest.csv"))
    align(root / "manifest.csv", root / "aligned", workers=1)
    labels(root / "manifest.csv", root / "aligned", root / "clips", LabelsSettings(flow="tvl1"), workers=1)
    return root


def test_true_clip_agrees_with_the_labels(synthetic_clips):
    from components.io import sample_file_stem
    from components.synthetic.truth import true_eval_clip

    sample_ids = pd.read_csv(synthetic_clips / "manifest.csv")["sample_id"].tolist()
    assert len(sample_ids) == 2
    for sample_id in sample_ids:
        stem = sample_file_stem(sample_id)
        aligned_file = synthetic_clips / f"aligned/{stem}.npz"
        true_flow, true_landmarks = true_eval_clip(synthetic_clips / "synthetic", aligned_file, sample_id)
        assert true_flow.shape == (7, 2, 128, 128) and true_landmarks.shape == (8, 68, 2)
        with np.load(synthetic_clips / f"clips/{stem}.npz") as clips:
            _, flow, landmarks = eval_crops(clips["frames"], clips["flow"], clips["landmarks"])
        label_flow, label_landmarks = flow[0].astype(np.float32), landmarks[0]
        assert np.linalg.norm(true_landmarks - label_landmarks, axis=-1).mean() < 3.0  # px: tracked vs true
        (x0, y0), (x1, y1) = true_landmarks.min(axis=(0, 1)).astype(int), true_landmarks.max(axis=(0, 1)).astype(int)
        face = (slice(None), slice(None), slice(y0, y1), slice(x0, x1))  # the landmarks' box over the clip
        error = np.linalg.norm(label_flow[face] - true_flow[face], axis=1).mean()
        motion = np.linalg.norm(true_flow[face], axis=1).mean()
        assert error < 0.5 and error < motion, (error, motion)  # closer to the truth than zero flow is
    assert true_eval_clip(synthetic_clips, aligned_file, sample_id) is None  # no ground_truth/ in that folder


def test_sample_pictures_show_the_truth_on_the_synthetic_set(runs, synthetic_clips, tmp_path, capsys):
    from components.io import sample_file_stem
    from components.synthetic.render import FRAMES_FOLDER

    sample_ids = pd.read_csv(synthetic_clips / "manifest.csv")["sample_id"].tolist()
    files = [np.load(synthetic_clips / f"clips/{sample_file_stem(s)}.npz") for s in sample_ids]
    clips = [eval_crops(f["frames"][:1], f["flow"][:1], f["landmarks"][:1]) for f in files]  # first clip, cropped
    label_flow = np.concatenate([flow for _, flow, _ in clips])  # [2, 7, 2, 128, 128]
    label_landmarks = np.concatenate([landmarks for _, _, landmarks in clips])  # [2, 8, 68, 2]
    write_npz(runs / "fold_00/samples.npz", frames=np.concatenate([video for video, _, _ in clips]),
              label_flow=label_flow, pred_flow=(label_flow * 0.5).astype(np.float16), label_landmarks=label_landmarks,
              pred_landmarks=label_landmarks[:, 1:] + 1.0, sample_ids=np.array(sample_ids))

    evaluate(runs, tmp_path / "plain", track=False)
    frames_root = synthetic_clips / "synthetic" / FRAMES_FOLDER  # dvc.yaml passes --truth "${data.root}/.."
    assert main(["evaluate", "--runs", str(runs), "--out", str(tmp_path / "truth"), "--no-mlflow",
                 "--aligned", str(synthetic_clips / "aligned"), "--truth", f"{frames_root}/.."]) == 0
    assert png_width(tmp_path / "truth/flow_samples.png") > png_width(tmp_path / "plain/flow_samples.png")  # + truth
    landmarks = [(tmp_path / name / "landmark_samples.png").read_bytes() for name in ("truth", "plain")]
    assert landmarks[0] != landmarks[1]  # the true landmarks are drawn too

    evaluate(runs, tmp_path / "real", track=False, aligned=synthetic_clips / "aligned", truth=tmp_path / "none")
    assert "no ground truth" in capsys.readouterr().out  # a real data set: pictures without truth, no error
    assert png_width(tmp_path / "real/flow_samples.png") == png_width(tmp_path / "plain/flow_samples.png")
    with pytest.raises(UserError, match="go together"):
        evaluate(runs, tmp_path / "half", track=False, truth=synthetic_clips / "synthetic")
