"""Where training starts and how it proceeds: the heads initialised at their trivial baselines
(`train.init`) and the learning-rate schedule (`train.lr_schedule`, `train.warmup_steps`), on the real
network at small sizes."""
from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch

from components.config import TrainSettings, load_params
from components.training.data import load_clips
from components.training.schedule import learning_rate
from components.training.trainer import Trainer
from mol_model import MOL, init_heads_at_baselines

TINY = TrainSettings(batch_size=1, steps=2)
AT_BASELINES = dataclasses.replace(TINY, init="baselines")
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
