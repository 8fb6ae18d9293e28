"""`mol train` on tiny clip files: contract outputs, resume after a kill, leaky protocol, MLflow, errors.

The network is the real 44M-parameter MOL, so runs are 2 steps of batch 1 on 1 thread."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from components.cli import main
from components.config import ExecutionSettings, TrainSettings
from components.errors import UserError
from components.evaluate import evaluate
from components.train import train
from components.training.checkpoint import load_model, read_config
from components.training.data import BatchSampler, class_weights, cropped, hold_out_validation, load_clips
from components.training.devices import native_bf16
from components.training.scoring import chance_summary, collapse_remedies, level_summary, majority_summary
from components.training.trainer import Trainer, to_device

from fixtures_clips import FLOW_METHOD, MANIFEST_SHA256, write_clip_set, write_loso_folds
from mlflow_store import fresh_store

CLASSES = ["neg", "pos"]
TINY = TrainSettings(batch_size=1, steps=2)
RUN = ExecutionSettings(checkpoint_every=1, eval_batch_size=4, threads=1)
BF16 = native_bf16(torch.device("cpu"))  # the default precision of training here


def as_trained(model: torch.nn.Module, video: np.ndarray):
    """The model's outputs on uint8 clips [B,T,H,W], in the precision training evaluated it in."""
    from mol_model.normalize import normalize_video
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=BF16):
        return model(normalize_video(torch.from_numpy(video)).unsqueeze(1))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """3 subjects x 2 classes x 1 sample; subject s2 has 2 test videos; one training sample rejected."""
    root = tmp_path_factory.mktemp("clips")
    rows = write_clip_set(root / "clips", per_class=1, clips=1)
    rows += [("syn/s1/extra", "s1", 0)]  # listed in the folds, but "rejected": no clip file
    write_loso_folds(root / "folds.json", rows, CLASSES)
    return root


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One MLflow SQLite store for the module's tracked runs (MLFLOW_TRACKING_URI points at it)."""
    folder = tmp_path_factory.mktemp("mlflow")
    fresh_store(folder, tmp_path_factory.getbasetemp())
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        patch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "0.2")  # a fold here lasts seconds, not minutes
        patch.delenv("MOL_TRACKING", raising=False)
        yield uri


@pytest.fixture(scope="module")
def straight(data, store, tmp_path_factory):
    """Fold 1 (test subject s2) trained 2 steps in one go, tracked in MLflow."""
    out = tmp_path_factory.mktemp("straight")
    metrics = train(data / "clips", data / "folds.json", out, fold=1, config=TINY, execution=RUN, experiment="straight")
    return out, metrics[0]


def fold_runs(uri, out):
    """(parent run, [fold runs]) of the training run in `out`."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    parent = client.get_run((out / "parent_run_id.txt").read_text().strip())
    children = client.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    return client, parent, children


def test_fold_outputs_follow_the_contract(data, store, straight, capsys):
    out, metrics = straight
    fold = out / "fold_01"
    assert sorted(p.name for p in fold.iterdir()) == [
        "confusion_matrix.png", "metrics.json", "model.safetensors", "samples.npz", "train_log.csv",
        "training_curves.png"]
    assert json.loads((fold / "metrics.json").read_text()) == metrics
    assert metrics["status"] == "done" and metrics["selection"] == "final" and metrics["selected_step"] == 2
    assert metrics["test_subject"] == "s2" and metrics["missing_clip_files"] == ["syn/s1/extra"]
    assert (metrics["n_train_clips"], metrics["n_test_clips"], metrics["n_test_videos"]) == (4, 2, 2)

    # the model file rebuilds the network, and its predictions are the reported ones
    config = read_config(fold / "model.safetensors")
    assert config["class_names"] == CLASSES and config["normalization"] == "x/127.5-1" and config["fold"] == 1
    model, _ = load_model(fold / "model.safetensors")
    test = load_clips(data / "clips", ["syn/s2/c0v0", "syn/s2/c1v0"], 2)
    # by default training runs in bf16 autocast exactly where the CPU does bf16 natively
    assert metrics["precision"] == ("bf16 autocast (flow decoder)" if BF16 else "fp32") and metrics["device"] == "cpu"
    logits = as_trained(model, cropped(test.batch(np.arange(2)))["video"]).logits
    probabilities = torch.softmax(logits.float(), 1).numpy()  # one eval clip per video: video = clip
    reported = np.array([p["probabilities"] for p in metrics["predictions"]])
    np.testing.assert_allclose(reported, probabilities, atol=1e-4)

    # confusion matrices and metrics agree with the predictions, at both levels
    labels = [p["label"] for p in metrics["predictions"]]
    preds = [p["pred"] for p in metrics["predictions"]]
    assert metrics["video"] == level_summary(np.array(labels), np.array(preds), 2)
    clip_preds = [c for p in metrics["predictions"] for c in p["clip_predictions"]]
    assert metrics["clip"]["confusion_matrix"] == level_summary(np.array(labels), np.array(clip_preds), 2)[
        "confusion_matrix"]
    assert metrics["collapsed"] == (len(set(clip_preds)) == 1)  # the test subject has both classes
    assert metrics["flow_epe"] > 0 and metrics["landmark_nme"] > 0
    assert set(metrics["final_train_losses"]) == {"total", "mer", "flow", "landmark"}
    log = pd.read_csv(fold / "train_log.csv")
    assert log["step"].tolist() == [1, 2] and {"total", "mer", "flow", "landmark", "lr"} <= set(log.columns)
    total = log["mer"] + 10 * log["flow"] + 0.1 * log["landmark"]
    np.testing.assert_allclose(log["total"], total, rtol=1e-5)

    # MLflow: a parent run with the protocol and data hash, a nested fold run with step metrics and files
    client, parent, (child,) = fold_runs(store, out)
    assert parent.data.tags["protocol"] == "final" and parent.data.tags["folds_sha256"]
    assert parent.data.params["steps"] == "2" and parent.info.status == "RUNNING"  # evaluate ends it
    assert child.data.tags["protocol"] == "final" and child.info.status == "FINISHED"
    made_by = {"dataset": "syn", "manifest_sha256": MANIFEST_SHA256, "flow_backend": FLOW_METHOD,
               "class_names": "neg,pos", "precision": metrics["precision"], "protocol": "final"}
    assert {key: child.data.tags[key] for key in made_by} == made_by and child.data.tags["code_version"]
    assert metrics["provenance"] == {**made_by, "code_version": child.data.tags["code_version"]}  # for evaluate
    assert "system/cpu_utilization_percentage" in child.data.metrics and "system/system_memory_usage_megabytes" \
        in child.data.metrics
    assert child.data.metrics["video_uf1"] == metrics["video"]["uf1"]
    assert [m.step for m in client.get_metric_history(child.info.run_id, "train/total")] == [1, 2]
    artifacts = {a.path for a in client.list_artifacts(child.info.run_id)}
    assert {"metrics.json", "confusion_matrix.png", "train_log.csv"} <= artifacts
    assert "model.safetensors" not in artifacts  # MLflow keeps the weights once: the champion's, from evaluate
    assert not (fold / "resume").exists()  # a finished fold drops its resume state

    # finished work is skipped; a changed schedule is refused rather than mixed in
    before = (fold / "metrics.json").stat().st_mtime_ns
    train(data / "clips", data / "folds.json", out, fold=1, config=TINY, execution=RUN)
    assert "fold 1 is finished" in capsys.readouterr().out
    assert len(fold_runs(store, out)[2]) == 1  # no second fold run
    assert (fold / "metrics.json").stat().st_mtime_ns == before
    with pytest.raises(UserError, match="steps 2 -> 3"):
        train(data / "clips", data / "folds.json", out, fold=1, config=dataclasses.replace(TINY, steps=3), execution=RUN,
              track=False)


def test_fold_keeps_samples_that_evaluate_draws(data, straight, tmp_path):
    """samples.npz holds the first eval clip of 2 test videos with the model's own predictions; `mol
    evaluate` draws them as flow and landmark pictures."""
    from PIL import Image

    out, _ = straight
    with np.load(out / "fold_01/samples.npz", allow_pickle=False) as samples:
        got = {k: samples[k] for k in samples.files}
    expected = {"frames": ((2, 8, 128, 128), np.uint8), "label_flow": ((2, 7, 2, 128, 128), np.float16),
                "pred_flow": ((2, 7, 2, 128, 128), np.float16), "label_landmarks": ((2, 8, 68, 2), np.float32),
                "pred_landmarks": ((2, 7, 68, 2), np.float32)}
    assert {k: (v.shape, v.dtype) for k, v in got.items() if k != "sample_ids"} == expected
    assert got["sample_ids"].tolist() == ["syn/s2/c0v0", "syn/s2/c1v0"]
    test = load_clips(data / "clips", got["sample_ids"].tolist(), 2)
    batch = cropped(test.batch(np.arange(2)))  # the evaluation crop
    np.testing.assert_array_equal(got["frames"], batch["video"])
    np.testing.assert_array_equal(got["label_landmarks"], batch["landmarks"])
    model, _ = load_model(out / "fold_01/model.safetensors")
    prediction = as_trained(model, batch["video"])  # the kept predictions are the model's on those clips
    np.testing.assert_allclose(got["pred_flow"], prediction.flow.float().numpy(), atol=2e-2, rtol=2e-3)
    np.testing.assert_allclose(got["pred_landmarks"], prediction.landmarks.float().numpy(), atol=1e-3)

    pooled = evaluate(out, tmp_path / "eval", track=False)
    # the pooled report shows each score beside its trivial baseline, from the fold's own figures
    fold = json.loads((out / "fold_01/metrics.json").read_text())
    assert pooled["flow_epe_zero"] == pytest.approx(fold["flow_epe_zero"])
    assert pooled["landmark_nme_mean_shape"] == pytest.approx(fold["landmark_nme_mean_shape"])
    assert pooled["uf1_majority"] == fold["baselines"]["majority"]["uf1"]
    assert pooled["baselines"]["chance"]["uar"] == pytest.approx(0.5)
    headline = json.loads((tmp_path / "eval" / "headline.json").read_text())
    assert {"uf1", "uf1_chance", "uf1_majority", "flow_epe", "flow_epe_zero", "landmark_nme",
            "landmark_nme_mean_shape"} <= set(headline)
    for name in ("flow_samples.png", "landmark_samples.png"):
        image = np.asarray(Image.open(tmp_path / "eval" / name).convert("RGB"))
        assert image.shape[0] >= 200 and image.shape[1] >= 300 and image.std() > 0


def assert_resumes_to_the_same_result(data, reference, config, fold, tmp_path):
    """Stop after step 1 (as a kill right after a checkpoint would), rerun, compare with `reference`."""
    out, metrics = reference
    name = f"fold_{fold:02d}"
    first = train(data / "clips", data / "folds.json", tmp_path, fold=fold, config=config, execution=RUN, track=False,
                  stop_after=1)
    assert first == [None]
    assert (tmp_path / name / "resume/state.safetensors").is_file()
    assert not (tmp_path / name / "metrics.json").exists()
    resumed = train(data / "clips", data / "folds.json", tmp_path, fold=fold, config=config, execution=RUN, track=False)[0]

    a, b = load_file(out / name / "model.safetensors"), load_file(tmp_path / name / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    timing = ("train_seconds", "train_clips_per_second")
    assert {k: v for k, v in resumed.items() if k not in timing} == {k: v for k, v in metrics.items() if k not in timing}
    assert pd.read_csv(tmp_path / name / "train_log.csv").equals(pd.read_csv(out / name / "train_log.csv"))


def test_killed_run_resumes_to_the_same_result(data, straight, tmp_path):
    assert_resumes_to_the_same_result(data, straight, TINY, 1, tmp_path)


LEAKY = dataclasses.replace(TINY, select_on_test=True, eval_every=1)


@pytest.fixture(scope="module")
def leaky(data, store, tmp_path_factory):
    """Fold 0 trained 2 steps with the official (leaky) selection on the test subject, tracked."""
    out = tmp_path_factory.mktemp("leaky")
    return out, train(data / "clips", data / "folds.json", out, fold=0, config=LEAKY, execution=RUN, experiment="leaky")[0]


def test_select_on_test_is_marked_leaky_everywhere(store, leaky):
    out, metrics = leaky
    assert metrics["selection"] == "leaky-best-on-test" and metrics["protocol"] == "leaky-select-on-test"
    log = pd.read_csv(out / "fold_00/train_log.csv")
    best = max(zip(log["select_uf1"], log["select_uar"], -log["step"]))  # first step with the best score
    assert metrics["selected_step"] == -best[2]
    assert metrics["video"]["uf1"] == best[0]  # the kept weights score exactly as when selected
    assert read_config(out / "fold_00/model.safetensors")["selection"] == "leaky-best-on-test"
    _, parent, (child,) = fold_runs(store, out)
    assert parent.data.tags["protocol"] == child.data.tags["protocol"] == "leaky-select-on-test"
    assert child.data.tags["selection"] == "leaky-best-on-test"


@pytest.mark.slow  # 15-20 s: the honest resume test above covers the mechanism in the fast suite
def test_leaky_run_resumes_with_its_best_weights(data, leaky, tmp_path, capsys):
    assert_resumes_to_the_same_result(data, leaky, LEAKY, 0, tmp_path)
    assert "leaks test data" in capsys.readouterr().out  # the warning line, at every start


def test_motion_input_is_trained_and_reloaded(data, tmp_path):
    config = dataclasses.replace(TINY, mer_input="motion", mer_dropout=0.0)
    [metrics] = train(data / "clips", data / "folds.json", tmp_path, fold=1, config=config, execution=RUN, track=False)
    assert metrics["config"]["mer_input"] == "motion" and metrics["config"]["mer_dropout"] == 0.0
    model, saved = load_model(tmp_path / "fold_01/model.safetensors")
    assert saved["mer_input"] == "motion" and model.mer_input == "motion"
    with pytest.raises(UserError, match="train.mer_input is 'flow'; choose one of official, motion"):
        dataclasses.replace(TINY, mer_input="flow")
    with pytest.raises(UserError, match=r"train.mer_dropout is 1.0, outside >= 0 and < 1"):
        dataclasses.replace(TINY, mer_dropout=1.0)


def test_collapse_remedies_follow_the_run():
    assert collapse_remedies(TINY) == ("--balance sampler, --mer-input motion --mer-dropout 0 "
                                       "--lr 1e-3, more --steps (docs/training.md)")
    tuned = dataclasses.replace(TINY, balance="loss", mer_input="motion")
    assert collapse_remedies(tuned) == "more --steps (docs/training.md)"


def test_batch_sampler_is_a_function_of_the_step():
    labels = np.array([0, 0, 0, 0, 0, 0, 1, 1])
    plain = BatchSampler(labels, batch_size=3, seed=5, balanced=False)
    stream = np.concatenate([plain.batch(step) for step in range(8)])  # 24 = 3 epochs of 8 clips
    for epoch in range(3):
        assert sorted(stream[8 * epoch: 8 * epoch + 8]) == list(range(8))  # each clip once per epoch
    again = BatchSampler(labels, batch_size=3, seed=5, balanced=False)
    assert np.array_equal(again.batch(6), plain.batch(6))  # no hidden state: resume needs only the step
    balanced = BatchSampler(labels, batch_size=400, seed=5, balanced=True)
    share = labels[balanced.batch(0)].mean()
    assert 0.4 < share < 0.6  # class 1 is a quarter of the clips but half of the draws
    np.testing.assert_allclose(class_weights(labels, 3).numpy(), [8 / 12, 8 / 4, 1.0])


def test_training_crops_are_fresh_or_fixed_and_a_function_of_the_step(data):
    folds = json.loads((data / "folds.json").read_text())
    clips = load_clips(data / "clips", folds["folds"][1]["train"], 2)
    every = np.arange(len(clips))
    fresh = [clips.training_offsets(every, seed=3, step=step, crops=0) for step in range(40)]
    assert all(o.shape == (len(clips), 2) and o.min() >= 0 and o.max() <= 16 for o in fresh)
    assert np.array_equal(fresh[7], clips.training_offsets(every, seed=3, step=7, crops=0))  # resumable
    assert len({tuple(o[0]) for o in fresh}) > 20  # a new crop at (nearly) every use
    fixed = [clips.training_offsets(every, seed=3, step=step, crops=2) for step in range(40)]
    for i in every:  # the official recipe: each clip is only ever cut at its own 2 crops
        assert len({tuple(o[i]) for o in fixed}) == 2
    assert not np.array_equal(fixed[0], clips.training_offsets(every, seed=4, step=0, crops=2))
    # the trainer cuts the crop after moving the batch, the same pixels as cutting it here
    batch = clips.batch(every[:2], fresh[5][:2])
    on_device = to_device(batch, torch.device("cpu"))
    here = cropped(batch)
    np.testing.assert_array_equal(on_device["landmarks"].numpy(), here["landmarks"])
    np.testing.assert_array_equal(on_device["flow"].numpy(), here["flow"].astype(np.float32))
    assert on_device["video"].shape == (2, 1, 8, 128, 128)


def test_baselines_are_computed_on_the_same_crops(data):
    folds = json.loads((data / "folds.json").read_text())
    train_set = load_clips(data / "clips", folds["folds"][1]["train"], 2)
    test_set = load_clips(data / "clips", folds["folds"][1]["test"], 2)
    trainer = Trainer(TINY, 2, torch.device("cpu"), None, eval_batch_size=8)
    result = trainer.evaluate(test_set, mean_shape=train_set.mean_shape())
    batch = cropped(test_set.batch(np.arange(len(test_set))))  # the evaluation crop, as scored
    flow = batch["flow"].astype(np.float64)  # [N, 7, 2, 128, 128]
    assert result["flow_epe_zero"] == pytest.approx(np.sqrt((flow ** 2).sum(axis=2)).mean())
    shape = np.concatenate(train_set.landmarks).astype(np.float64).mean(axis=(0, 1)) - 8  # into the (8, 8) crop
    target = batch["landmarks"][:, 1:].astype(np.float64)  # frames 1..7, as the model predicts them
    eyes = np.linalg.norm(target[..., 42:48, :].mean(-2) - target[..., 36:42, :].mean(-2), axis=-1)
    expected = (np.linalg.norm(shape - target, axis=-1).mean(-1) / eyes).mean()
    assert result["landmark_nme_mean_shape"] == pytest.approx(expected, rel=1e-5)


def test_expression_baselines_by_hand():
    labels = np.array([0, 0, 0, 1])
    chance = chance_summary(labels, 2)  # expected counts [[1.5, 1.5], [0.5, 0.5]]
    assert chance["uar"] == pytest.approx(0.5) and chance["acc"] == pytest.approx(0.5)
    assert chance["uf1"] == pytest.approx((2 * 1.5 / (3 + 2) + 2 * 0.5 / (1 + 2)) / 2)
    majority = majority_summary(labels, 0, 2)  # [[3, 0], [1, 0]]
    assert (majority["acc"], majority["uar"]) == (0.75, 0.5)
    assert majority["uf1"] == pytest.approx((2 * 3 / (3 + 4) + 0) / 2)


def test_validation_subjects_leave_the_training_set(data):
    folds = json.loads((data / "folds.json").read_text())
    train_set = load_clips(data / "clips", folds["folds"][1]["train"], 2)  # subjects s1, s3
    rest, val, subjects = hold_out_validation(data / "clips", train_set, 1, seed=0, fold=1, num_classes=2)
    assert len(subjects) == 1 and subjects[0] in {"s1", "s3"}
    assert set(val.subjects) == set(subjects) and not set(rest.subjects) & set(subjects)
    assert sorted(rest.sample_ids + val.sample_ids) == sorted(train_set.sample_ids)
    assert len(val) == 2 and len(rest) == 2
    assert cropped(rest.batch(np.arange(2)))["video"].shape == (2, 8, 128, 128)
    with pytest.raises(UserError, match="leaves no training subject"):
        hold_out_validation(data / "clips", train_set, 2, seed=0, fold=1, num_classes=2)


@pytest.mark.parametrize("case, message", [
    ("no folds file", "does not exist"),
    ("fold out of range", "--fold 7 is out of range"),
    ("empty clips dir", "holds no .npz clip files"),
])
def test_cli_errors_are_one_line(data, tmp_path, capsys, case, message):
    folds, clips, fold = data / "folds.json", data / "clips", "0"
    if case == "no folds file":
        folds = tmp_path / "absent.json"
    elif case == "fold out of range":
        fold = "7"
    else:
        clips = tmp_path / "empty"
        clips.mkdir()
    code = main(["train", "--clips", str(clips), "--folds", str(folds), "--fold", fold, "--out", str(tmp_path / "o"),
                 "--no-mlflow"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("mol train: error:") and message in err and "\n" not in err


def test_fold_and_all_exclude_each_other(data, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--clips", str(data / "clips"), "--folds", str(data / "folds.json"), "--fold", "0", "--all",
              "--out", str(tmp_path)])
    assert exit_info.value.code == 2


def test_bf16_is_the_default_only_where_it_is_native(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    assert not native_bf16(cpu)
    assert not Trainer(TINY, 2, cpu, None).amp
    assert Trainer(dataclasses.replace(TINY, precision="bf16"), 2, cpu, None).amp  # --precision bf16 forces it
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True)
    assert native_bf16(cpu) and Trainer(TINY, 2, cpu, None).amp
    assert not Trainer(dataclasses.replace(TINY, precision="fp32"), 2, cpu, None).amp


def test_ablation_compares_joint_and_mer_only_on_the_same_folds(tmp_path, capsys, monkeypatch):
    """`mol bench ablation`: per seed one joint and one MER-only training (loss weights the only difference),
    pooled as `mol evaluate` pools them; a rerun reuses the finished folds."""
    monkeypatch.setenv("MOL_TRACKING", "off")
    rows = write_clip_set(tmp_path / "clips", subjects=("s1", "s2"))
    write_loso_folds(tmp_path / "folds.json", rows, CLASSES)
    command = ["bench", "ablation", "--clips", str(tmp_path / "clips"), "--folds", str(tmp_path / "folds.json"),
               "--out", str(tmp_path / "ablation"), "--seeds", "3", "--steps", "1", "--batch-size", "1"]
    assert main(command) == 0
    printed = capsys.readouterr().out
    assert "MER input motion, MER dropout 0.0;" in printed  # the laptop defaults, named in the header
    for arm, weights in (("joint", (10.0, 0.1)), ("MER-only", (0.0, 0.0))):
        for fold in (0, 1):
            metrics = json.loads((tmp_path / f"ablation/{arm}-seed3/fold_{fold:02d}/metrics.json").read_text())
            assert (metrics["config"]["flow_weight"], metrics["config"]["landmark_weight"]) == weights
            assert metrics["config"]["seed"] == 3 and metrics["config"]["steps"] == 1
        pooled = json.loads((tmp_path / f"ablation/{arm}-seed3/evaluation/metrics.json").read_text())
        assert f"| {arm} | 3 | {pooled['uf1']:.3f} | {pooled['uar']:.3f} |" in printed
        assert f"| **{arm}, mean ± sd** | 1 seeds |" in printed
        collapsed = sum(json.loads((tmp_path / f"ablation/{arm}-seed3/fold_{k:02d}/metrics.json").read_text())
                        ["collapsed"] for k in (0, 1))
        assert f"| {collapsed} of 2 |" in printed
    log = pd.read_csv(tmp_path / "ablation/MER-only-seed3/fold_00/train_log.csv")
    np.testing.assert_allclose(log["total"], log["mer"])  # the auxiliary losses are computed, not trained
    assert (log["flow"] > 0).all()

    assert main(command) == 0
    assert capsys.readouterr().out.count("is finished") == 4
    assert main([*command[:-6], "--seeds", "1,1"]) == 2
    assert "repeats a seed" in capsys.readouterr().err
    assert main([*command, "--arms", "joint,mer"]) == 2
    assert "choose from joint, MER-only" in capsys.readouterr().err
    assert main([*command[:-6], "--seeds", "4", "--steps", "1", "--batch-size", "1", "--arms", "joint"]) == 0
    assert capsys.readouterr().out.count("| joint | 4 |") == 1
    assert not (tmp_path / "ablation/MER-only-seed4").exists()
