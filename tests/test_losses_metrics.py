"""Loss, metrics and input normalisation against the official formulas and scikit-learn."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import accuracy_score, f1_score, recall_score

from mol_model import MOLOutput
from mol_model.losses import mol_loss
from mol_model.metrics import classification_metrics, confusion_matrix, flow_epe, landmark_nme
from mol_model.normalize import normalize_video


def official_pupil_distance(flat):  # official utils/pupil_distance.py on 136 interleaved values
    lx = sum(flat[2 * i] for i in range(36, 42)) / 6.0
    ly = sum(flat[2 * i + 1] for i in range(36, 42)) / 6.0
    rx = sum(flat[2 * i] for i in range(42, 48)) / 6.0
    ry = sum(flat[2 * i + 1] for i in range(42, 48)) / 6.0
    return math.sqrt(float(rx - lx) ** 2 + float(ry - ly) ** 2)


def official_loss(logits, flow_pred, ldm_pred, labels, flow, ldm, of_weight, ldm_weight):
    """train.py's loss with its layouts: flow [B, 2, H, W, T-1], ldm [B, 136, T] / pred [B, 136, T-1]."""
    me = F.nll_loss(F.log_softmax(logits, 1), labels)
    of = F.mse_loss(flow_pred, flow) / 7
    total_ldm = 0.0
    for t in range(7):
        gt, pred = ldm[:, :, t + 1], ldm_pred[:, :, t]
        for b in range(len(ldm)):
            total_ldm = total_ldm + F.l1_loss(gt[b], pred[b], reduction="sum") / official_pupil_distance(gt[b])
    ldm_loss = total_ldm / (len(ldm_pred) * 68)
    return of * of_weight + ldm_loss * ldm_weight + me, me, of, ldm_loss


def random_faces(*lead, generator):
    """Plausible landmark sets: a jittered template so inter-ocular distances are ~30 px."""
    template = torch.rand(68, 2, generator=generator) * 60 + 34
    template[36:42, 0] -= 20  # left eye left of the right eye
    template[42:48, 0] += 20
    return template + torch.randn(*lead, 68, 2, generator=generator)


def test_loss_matches_official_formula():
    g = torch.Generator().manual_seed(0)
    b = 3
    out = MOLOutput(logits=torch.randn(b, 5, generator=g), flow=torch.randn(b, 7, 2, 16, 16, generator=g),
                    landmarks=random_faces(b, 7, generator=g))
    labels = torch.tensor([0, 4, 2])
    flow = torch.randn(b, 7, 2, 16, 16, generator=g)
    landmarks = random_faces(b, 8, generator=g)
    losses = mol_loss(out, labels, flow, landmarks, flow_weight=10.0, landmark_weight=0.5)
    total, me, of, ldm = official_loss(
        out.logits, out.flow.permute(0, 2, 3, 4, 1), out.landmarks.flatten(2).transpose(1, 2), labels,
        flow.permute(0, 2, 3, 4, 1), landmarks.flatten(2).transpose(1, 2), 10.0, 0.5)
    for key, ref in (("mer", me), ("flow", of), ("landmark", ldm), ("total", total)):
        torch.testing.assert_close(losses[key], torch.as_tensor(ref, dtype=torch.float32), rtol=1e-5, atol=1e-6)


def test_loss_class_weights_and_gradients():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(4, 3, generator=g, requires_grad=True)
    pred_flow = torch.randn(4, 7, 2, 8, 8, generator=g, requires_grad=True)
    pred_ldm = random_faces(4, 7, generator=g).requires_grad_()
    labels = torch.tensor([0, 1, 1, 2])
    weights = torch.tensor([1.0, 0.5, 2.0])
    losses = mol_loss(MOLOutput(logits, pred_flow, pred_ldm), labels, torch.zeros(4, 7, 2, 8, 8),
                      random_faces(4, 8, generator=g), class_weights=weights)
    torch.testing.assert_close(losses["mer"], F.cross_entropy(logits, labels, weight=weights))
    losses["total"].backward()
    assert all(t.grad is not None and t.grad.abs().sum() > 0 for t in (logits, pred_flow, pred_ldm))


def test_loss_survives_degenerate_landmarks_and_rejects_bad_shapes():
    out = MOLOutput(torch.zeros(2, 3), torch.zeros(2, 7, 2, 4, 4), torch.ones(2, 7, 68, 2))
    losses = mol_loss(out, torch.tensor([0, 1]), torch.zeros(2, 7, 2, 4, 4), torch.zeros(2, 8, 68, 2))
    assert torch.isfinite(losses["total"])  # all-zero targets: eye distance clamped, no division by zero
    with pytest.raises(ValueError, match="landmarks"):
        mol_loss(out, torch.tensor([0, 1]), torch.zeros(2, 7, 2, 4, 4), torch.zeros(2, 7, 68, 2))
    with pytest.raises(ValueError, match="flow"):
        mol_loss(out, torch.tensor([0, 1]), torch.zeros(2, 7, 2, 8, 8), torch.zeros(2, 8, 68, 2))


def official_metrics(cm):  # utils/metrics.py: acc, war, uar, wf1, uf1
    cm = np.array(cm, dtype=float)
    total = cm.sum()
    support = cm.sum(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        recall = np.where(support != 0, np.diag(cm) / support, 0)
        col = cm.sum(0)
        precision = np.where(col != 0, np.diag(cm) / col, 0)
        f1 = np.where(precision + recall != 0, 2 * precision * recall / (precision + recall), 0)
    return dict(acc=np.trace(cm) / total, war=(recall * support).sum() / total, uar=recall.mean(),
                wf1=(f1 * support).sum() / total, uf1=f1.mean())


@pytest.mark.parametrize("seed", range(40))
def test_classification_metrics_match_sklearn_and_official(seed):
    rng = np.random.default_rng(seed)
    c = int(rng.choice([3, 5]))
    n = int(rng.integers(1, 40))
    # some cases leave classes out entirely, or never predict them
    y_true = rng.integers(0, c - (seed % 3 == 0), n)
    y_pred = np.where(rng.random(n) < 0.5, y_true, rng.integers(0, c - (seed % 4 == 0), n))
    cm = confusion_matrix(y_true, y_pred, c)
    assert cm.sum() == n and cm.dtype.kind == "i"
    assert cm[y_true[0], y_pred[0]] >= 1
    got = classification_metrics(cm)
    labels = list(range(c))
    expected = {
        "acc": accuracy_score(y_true, y_pred),
        "uf1": f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0),
        "wf1": f1_score(y_true, y_pred, labels=labels, average="weighted", zero_division=0),
        "uar": recall_score(y_true, y_pred, labels=labels, average="macro", zero_division=0),
        "war": recall_score(y_true, y_pred, labels=labels, average="weighted", zero_division=0),
    }
    for key in expected:
        assert got[key] == pytest.approx(expected[key], abs=1e-12), key
        assert got[key] == pytest.approx(official_metrics(cm)[key], abs=1e-12), key


def test_confusion_matrix_layout_and_errors():
    cm = confusion_matrix([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 0, 2], 3)
    np.testing.assert_array_equal(cm, [[1, 1, 0], [0, 1, 0], [1, 0, 2]])
    assert classification_metrics(np.zeros((3, 3))) == dict(acc=0.0, uf1=0.0, uar=0.0, war=0.0, wf1=0.0)
    with pytest.raises(ValueError, match="outside 0..2"):
        confusion_matrix([0, 3], [0, 1], 3)
    with pytest.raises(ValueError, match="length"):
        confusion_matrix([0, 1], [0], 3)


def test_flow_epe_and_landmark_nme():
    target = np.zeros((2, 7, 2, 4, 4), dtype=np.float32)
    pred = target.copy()
    pred[:, :, 0] = 3.0
    pred[:, :, 1] = 4.0  # every vector off by (3, 4): EPE 5
    assert flow_epe(pred, target) == pytest.approx(5.0)
    assert flow_epe(torch.from_numpy(pred), torch.from_numpy(target)) == pytest.approx(5.0)
    g = torch.Generator().manual_seed(2)
    faces = random_faces(5, generator=g)
    iod = (faces[:, 42:48].mean(1) - faces[:, 36:42].mean(1)).norm(dim=-1)  # [5]
    shifted = faces + torch.tensor([0.0, 2.0])  # every point off by 2 px
    assert landmark_nme(shifted, faces) == pytest.approx(float((2.0 / iod).mean()), rel=1e-6)
    with pytest.raises(ValueError, match="shapes differ"):
        landmark_nme(shifted[:4], faces)


def test_normalize_video():
    clip = np.array([[0, 127, 128, 255]], dtype=np.uint8)
    out = normalize_video(clip)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, torch.tensor([[-1.0, -0.5 / 127.5, 0.5 / 127.5, 1.0]]))
    assert normalize_video(torch.from_numpy(clip), dtype=torch.float64).dtype == torch.float64
    with pytest.raises(TypeError, match="uint8"):
        normalize_video(clip.astype(np.float32))
