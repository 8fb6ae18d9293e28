"""One fold's model, optimizer and joint loss: `Trainer.step` trains on one batch, `Trainer.evaluate` scores
a set of clips (logits, flow EPE, landmark NME, loss terms). The model starts as `train.init` says
(mol_model/initialisation.py)."""
from __future__ import annotations

import numpy as np
import torch

from components.config import TrainSettings
from components.training.data import ClipSet, cropped
from components.training.devices import bf16_autocast, uses_bf16
from components.vision.clips import EVAL_OFFSET
from mol_model import MOL, MOLOutput, init_heads_at_baselines
from mol_model.losses import mol_loss
from mol_model.metrics import flow_epe, landmark_nme
from mol_model.normalize import normalize_video

LOSS_TERMS = ("total", "mer", "flow", "landmark")


def to_device(batch: dict[str, np.ndarray], device: torch.device) -> dict[str, torch.Tensor]:
    """Moved as stored (uint8 video, float16 flow: fewer bytes) and cropped there (`cropped`), then converted
    on the device: video to the normalised model input [B,1,T,128,128] (the one input normalisation), flow
    and landmarks to float32."""
    moved = {k: v if k == "offsets" else torch.from_numpy(v).to(device, non_blocking=True) for k, v in batch.items()}
    moved = cropped(moved)
    moved["video"] = normalize_video(moved["video"]).unsqueeze(1)  # [B,T,H,W] -> [B,1,T,H,W]
    moved["flow"], moved["landmarks"] = moved["flow"].float(), moved["landmarks"].float()
    return moved


class Trainer:
    """The model, its optimizer and the loss of one fold; `step` and `evaluate` are the two modes."""

    def __init__(self, config: TrainSettings, num_classes: int, device: torch.device,
                 weights: torch.Tensor | None, eval_batch_size: int = 16, mean_shape: np.ndarray | None = None):
        """`mean_shape` [68, 2]: the training clips' mean landmark shape in aligned coordinates
        (`ClipSet.mean_shape`), where the landmark head starts with `init: baselines`."""
        self.config, self.device, self.eval_batch_size = config, device, eval_batch_size
        self.amp = uses_bf16(config.precision, device)
        torch.manual_seed(config.seed)  # same initial weights for every fold and every process
        self.model = MOL(num_classes=num_classes, neighbors=config.neighbors, mer_input=config.mer_input,
                         mer_dropout=config.mer_dropout)
        if config.init == "baselines":
            if mean_shape is None:
                raise ValueError("train.init baselines needs the training clips' mean landmark shape")
            # into the crop the model sees: evaluation crops lie at EVAL_OFFSET, training crops around it
            # (uniform in 0..16), so the shape cropped there is the evaluation baseline and the mean training target
            init_heads_at_baselines(self.model, mean_shape - np.asarray(EVAL_OFFSET, dtype=np.float32))
        self.model.to(device)
        # fused: one kernel for all parameters, ~5x faster than the per-tensor loop on the CPU too.
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=config.lr, weight_decay=config.weight_decay,
                                           fused=True)
        self.class_weights = None if weights is None else weights.to(device)

    def _autocast(self):
        return bf16_autocast(self.device, self.amp)

    def losses(self, batch: dict[str, torch.Tensor], out: MOLOutput) -> dict[str, torch.Tensor]:
        c = self.config
        terms = mol_loss(out, batch["label"], batch["flow"], batch["landmarks"], flow_weight=c.flow_weight,
                         landmark_weight=c.landmark_weight, class_weights=self.class_weights)
        terms["total"] = c.mer_weight * terms["mer"] + c.flow_weight * terms["flow"] \
            + c.landmark_weight * terms["landmark"]
        return terms

    def set_learning_rate(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def step(self, batch: dict[str, np.ndarray]) -> dict[str, float]:
        """One update on `batch`: its loss terms and `acc`, the share of its clips the forward pass got
        right (before the update)."""
        self.model.train()
        batch = to_device(batch, self.device)
        with self._autocast():
            out = self.model(batch["video"])
        terms = self.losses(batch, out)
        self.optimizer.zero_grad(set_to_none=True)
        terms["total"].backward()
        self.optimizer.step()
        terms["acc"] = (out.logits.detach().argmax(1) == batch["label"]).float().mean()
        return {k: float(v.detach()) for k, v in terms.items()}

    @torch.inference_mode()
    def evaluate(self, clips: ClipSet, keep: np.ndarray | None = None, mean_shape: np.ndarray | None = None) -> dict:
        """Clip logits [N, C] and the mean flow EPE, landmark NME and loss terms over the clips, with the
        trivial baselines on the same crops: `flow_epe_zero` (no motion predicted) and, given the training
        clips' `mean_shape` [68, 2], `landmark_nme_mean_shape`. With `keep` (sorted clip indices [K]) also
        those clips' predicted flow [K,T-1,2,H,W] and landmarks [K,T-1,68,2]."""
        self.model.eval()
        measures = ("flow_epe", "landmark_nme", "flow_epe_zero") + (() if mean_shape is None else
                                                                    ("landmark_nme_mean_shape",))
        logits, sums = [], dict.fromkeys((*measures, *LOSS_TERMS), 0.0)
        kept_flow, kept_landmarks = [], []
        for start in range(0, len(clips), self.eval_batch_size):
            index = np.arange(start, min(start + self.eval_batch_size, len(clips)))
            batch = to_device(clips.batch(index), self.device)
            with self._autocast():
                out = self.model(batch["video"])
            logits.append(out.logits.float().cpu().numpy())
            if keep is not None:
                rows = torch.from_numpy(np.isin(index, keep)).to(self.device)
                kept_flow.append(out.flow[rows].float().cpu().numpy())
                kept_landmarks.append(out.landmarks[rows].float().cpu().numpy())
            n = len(index)
            sums["flow_epe"] += n * flow_epe(out.flow, batch["flow"])
            sums["landmark_nme"] += n * landmark_nme(out.landmarks, batch["landmarks"][:, 1:])  # frames 1..T-1
            sums["flow_epe_zero"] += n * flow_epe(torch.zeros_like(batch["flow"]), batch["flow"])
            if mean_shape is not None:  # the training mean shape, moved into each clip's crop
                shape = torch.from_numpy(mean_shape - batch["offsets"][:, None, :].astype(np.float32))  # [n,68,2]
                sums["landmark_nme_mean_shape"] += n * landmark_nme(
                    shape[:, None].expand_as(out.landmarks), batch["landmarks"][:, 1:])
            for k, v in self.losses(batch, out).items():
                sums[k] += n * float(v)
        means = {k: v / len(clips) for k, v in sums.items()}
        result = {"logits": np.concatenate(logits), **{k: means[k] for k in measures},
                  "losses": {k: means[k] for k in LOSS_TERMS}}
        if keep is not None:
            result["kept_flow"], result["kept_landmarks"] = np.concatenate(kept_flow), np.concatenate(kept_landmarks)
        return result

