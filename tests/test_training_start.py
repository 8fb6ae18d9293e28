"""Where training starts and how it proceeds: the heads initialised at their trivial baselines
(`train.init`), the learning-rate schedule (`train.lr_schedule`, `train.warmup_steps`) and the margin
measure (the step at which the training accuracy passes 0.8), on the real network at small sizes."""
from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from benchmarks.ablation import format_table, pass_cell, slowest_pass
from components.config import ExecutionSettings, TrainSettings, load_params
from components.train import train
from components.training.data import load_clips
from components.training.margin import pass_step, running_accuracy
from components.training.schedule import learning_rate
from components.training.trainer import Trainer
from mol_model import MOL, init_heads_at_baselines

TINY = TrainSettings(batch_size=1, steps=2)
AT_BASELINES = dataclasses.replace(TINY, init="baselines")
RUN = ExecutionSettings(checkpoint_every=1, eval_batch_size=4, threads=1)
CHANGED_BY_INIT = {"landmark_head.fc2.weight", "landmark_head.fc2.bias", "flow.refine.0.predict.weight"}


def official_model(seed: int = 0, classes: int = 2) -> MOL:
    """The model as training built it before `train.init` existed."""
    torch.manual_seed(seed)
    return MOL(num_classes=classes)


def test_heads_at_baselines_predict_zero_flow_and_the_mean_shape_for_any_input(one_torch_thread):
    mean = np.random.default_rng(1).uniform(30, 100, size=(68, 2)).astype(np.float32)
    model = official_model()
    init_heads_at_baselines(model, mean)
    reference = official_model()
    ours, theirs = model.state_dict(), reference.state_dict()
    assert {k for k in ours if not torch.equal(ours[k], theirs[k])} == CHANGED_BY_INIT  # nothing else moves
    videos = torch.cat([torch.rand(1, 1, 8, 128, 128) * 2 - 1, torch.zeros(1, 1, 8, 128, 128)])  # noise, blank
    out = model.eval()(videos)
    assert out.flow.shape == (2, 7, 2, 128, 128) and torch.count_nonzero(out.flow) == 0
    np.testing.assert_allclose(out.landmarks.detach().numpy(), np.broadcast_to(mean, (2, 7, 68, 2)), atol=1e-5)
    assert torch.count_nonzero(reference.eval()(videos).flow) > 0  # the official start predicts motion

    # the zeroed layers still learn: their gradients are not zero
    model.train()(videos[:1]).landmarks.sum().backward()
    assert model.landmark_head.fc2.weight.grad.abs().sum() > 0
    model.zero_grad()
    model(videos[:1]).flow.sum().backward()  # d(sum)/d(flow) = 1: the weights' gradient is their input
    assert model.flow.refine["0"].predict.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match=r"\[68, 2\]"):
        init_heads_at_baselines(model, mean[:10])


def test_official_init_is_the_previous_one_and_baselines_draw_no_random_numbers():
    official = Trainer(TINY, 2, torch.device("cpu"), None)
    after_official = torch.rand(3)
    at_baselines = Trainer(AT_BASELINES, 2, torch.device("cpu"), None, mean_shape=np.full((68, 2), 70, np.float32))
    after_baselines = torch.rand(3)
    assert torch.equal(after_official, after_baselines)  # dropout and later draws are unchanged
    previous, ours, moved = official_model().state_dict(), official.model.state_dict(), at_baselines.model.state_dict()
    assert all(torch.equal(previous[k], ours[k]) for k in previous)
    assert {k for k in previous if not torch.equal(previous[k], moved[k])} == CHANGED_BY_INIT
    # the landmark bias is the mean shape moved into the crop the model sees (the evaluation crop at 8, 8)
    assert torch.equal(moved["landmark_head.fc2.bias"], torch.full((136,), 62.0))
    with pytest.raises(ValueError, match="mean landmark shape"):
        Trainer(AT_BASELINES, 2, torch.device("cpu"), None)


def test_evaluation_at_init_scores_the_baselines(run_inputs, one_torch_thread):
    fold = json.loads((run_inputs / "folds.json").read_text())["folds"][0]
    train_set = load_clips(run_inputs / "clips", fold["train"], 2)
    test_set = load_clips(run_inputs / "clips", fold["test"], 2)
    scores = {}
    for config in (AT_BASELINES, TINY):
        trainer = Trainer(config, 2, torch.device("cpu"), None, eval_batch_size=4, mean_shape=train_set.mean_shape())
        scores[config.init] = trainer.evaluate(test_set, mean_shape=train_set.mean_shape())
    start = scores["baselines"]
    assert start["flow_epe"] == pytest.approx(start["flow_epe_zero"], rel=1e-6)
    assert start["landmark_nme"] == pytest.approx(start["landmark_nme_mean_shape"], rel=1e-5)
    assert scores["official"]["landmark_nme"] > 2 * start["landmark_nme"]  # far from its baseline (random shapes here)


def test_learning_rate_schedules():
    assert [learning_rate(s, 1e-3, 100) for s in (0, 50, 99)] == [1e-3] * 3  # official: constant, exactly
    warm = [learning_rate(s, 1e-3, 100, warmup_steps=4) for s in range(6)]
    assert warm == pytest.approx([2.5e-4, 5e-4, 7.5e-4, 1e-3, 1e-3, 1e-3])
    cosine = [learning_rate(s, 1e-3, 110, warmup_steps=10, schedule="cosine") for s in range(110)]
    assert cosine[9] == cosine[10] == pytest.approx(1e-3)  # warm-up ends at the peak, where the decay starts
    assert cosine[60] == pytest.approx(0.5e-3)  # half way through the decay
    assert cosine[109] == pytest.approx(1e-3 * (1 + math.cos(math.pi * 99 / 100)) / 2) and cosine[109] > 0
    assert all(a > b for a, b in zip(cosine[10:], cosine[11:]))
    assert learning_rate(1, 1e-3, 2, warmup_steps=5) == pytest.approx(4e-4)  # warm-up longer than the run
    with pytest.raises(ValueError, match="schedule must be one of"):
        learning_rate(0, 1e-3, 10, schedule="linear")
    paper = load_params("params-paper.yaml").section(TrainSettings)
    assert (paper.init, paper.lr_schedule, paper.warmup_steps) == ("official", "constant", 0)


def test_pass_step_of_hand_made_accuracies():
    rising = [0.0] * 10 + [1.0] * 30  # the window ending at step 26 holds 16 ones of 20: 0.8
    assert pass_step(rising) == 26
    assert running_accuracy(rising[:26]) == pytest.approx(0.8)
    assert pass_step([1.0] * 19) is None and pass_step([1.0] * 20) == 20  # only full windows count
    assert pass_step([0.5, 1.0, 0.5, 1.0, 1.0], window=2) == 5  # 0.75 at steps 2-4 is not enough
    assert pass_step([0.75, 0.875, 0.75, 0.875], window=2) == 2  # exactly 0.8 passes
    assert running_accuracy([0.0, 1.0], window=20) == 0.5  # fewer than a window at the start


def test_ablation_shows_the_pass_step_against_the_schedule():
    def row(seed, step):
        return {"arm": "joint", "seed": seed, "uf1": 0.9, "uar": 0.9, "acc": 0.9, "clip_uf1": 0.9, "flow_epe": 0.1,
                "landmark_nme": 0.03, "collapsed": 0, "folds": 1, "pass_step": step, "steps": 200}

    assert slowest_pass([90, 120]) == 120 and slowest_pass([90, None]) is None
    assert pass_cell([row(0, 90)]) == "90 (45%)" and pass_cell([row(0, None)]) == "never"
    table = format_table([row(0, 90), row(1, 110)])
    assert "| 0 of 1 | 90 (45%) |" in table and "| 0 of 2 | 100 ± 10, latest 110 (55%) |" in table
    assert "| 0 of 2 | never (1 of 2) |" in format_table([row(0, 90), row(1, None)])


SCHEDULED = dataclasses.replace(AT_BASELINES, steps=4, warmup_steps=2, lr=1e-3, lr_schedule="cosine")


def test_fold_follows_the_schedule_and_logs_its_accuracy(run_inputs, tmp_path):
    [metrics] = train(run_inputs / "clips", run_inputs / "folds.json", tmp_path, fold=0, config=SCHEDULED,
                      execution=RUN, track=False)
    log = pd.read_csv(tmp_path / "fold_00/train_log.csv")
    np.testing.assert_allclose(log["lr"], [5e-4, 1e-3, 1e-3, 5e-4], rtol=1e-12)  # warm-up, then the decay
    assert set(log["acc"]) <= {0.0, 1.0}  # batches of one clip
    np.testing.assert_allclose(log["acc_running"], log["acc"].cumsum() / log["step"])
    assert metrics["train_acc_pass_step"] is None  # 4 steps hold no full window of 20
    assert metrics["train_acc_final"] == pytest.approx(log["acc_running"].iloc[-1])
    assert metrics["config"]["init"] == "baselines"


@pytest.mark.slow  # 3 short trainings; test_train.py's resume test covers the mechanism in the fast suite
def test_resume_is_bit_identical_with_the_schedule_and_baseline_heads(run_inputs, tmp_path):
    args = (run_inputs / "clips", run_inputs / "folds.json")
    straight = train(*args, tmp_path / "straight", fold=0, config=SCHEDULED, execution=RUN, track=False)[0]
    assert train(*args, tmp_path / "resumed", fold=0, config=SCHEDULED, execution=RUN, track=False,
                 stop_after=1) == [None]
    resumed = train(*args, tmp_path / "resumed", fold=0, config=SCHEDULED, execution=RUN, track=False)[0]
    a, b = (load_file(tmp_path / name / "fold_00/model.safetensors") for name in ("straight", "resumed"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    timing = ("train_seconds", "train_clips_per_second")
    assert {k: v for k, v in resumed.items() if k not in timing} == {k: v for k, v in straight.items()
                                                                      if k not in timing}


def test_a_record_from_before_the_new_settings_reads_as_their_defaults(tmp_path):
    from components.errors import UserError
    from components.training.resume import check_same_settings

    older = {k: v for k, v in TINY.as_dict().items() if k not in ("init", "lr_schedule", "warmup_steps")}
    check_same_settings(older, TINY, tmp_path)  # made before they existed = made with their defaults
    with pytest.raises(UserError, match="init official -> baselines"):
        check_same_settings(older, AT_BASELINES, tmp_path)
