"""Where training starts: the official initialisation (`MOL()` as built) or, with `init_heads_at_baselines`,
the flow and landmark heads moved onto the trivial baselines the evaluation reports beside them.

Built officially, the landmark head answers about 0 px for every point (its output layer is a default
`nn.Linear`, targets lie around the crop's centre, 64 px away) and the flow decoder a random field: both
start far worse than predicting the training clips' mean landmark shape (`landmark_nme_mean_shape`) or no
motion (`flow_epe_zero`), and spend much of a short schedule, and large gradients through the shared
features, getting there. Started at the baselines, each head's first output IS the baseline and training
can only improve on it. Nothing else changes and no random numbers are drawn, so the other weights and
every later random draw are those of the official initialisation; loaded weights (a checkpoint, official
weights) replace all of it.
"""
from __future__ import annotations

import torch

from mol_model.model import LANDMARKS, MOL

INITS = ("official", "baselines")  # how training starts (components/config.py train.init)


def init_heads_at_baselines(model: MOL, mean_landmarks) -> None:
    """Make `model` predict `mean_landmarks` ([68, 2] (x, y) in the model's output coordinates: pixels of
    the 128x128 input crop) for every frame and zero flow for every pair, whatever the input.

    The landmark head's last layer gets zero weights and the mean shape as its bias; the flow decoder's last
    prediction (refinement level 0, full resolution, no bias) zero weights. Zero weights still receive
    gradients (their input is not zero), so both heads learn from the first step on; the layers before them
    get gradients from the second step."""
    shape = torch.as_tensor(mean_landmarks, dtype=torch.float32)
    if tuple(shape.shape) != (LANDMARKS, 2) or not torch.isfinite(shape).all():
        raise ValueError(f"mean_landmarks must be finite [{LANDMARKS}, 2] (x, y) values, got "
                         f"{list(shape.shape)}")
    last_landmarks, last_flow = model.landmark_head.fc2, model.flow.refine["0"].predict
    with torch.no_grad():
        last_landmarks.weight.zero_()
        last_landmarks.bias.copy_(shape.reshape(-1))  # interleaved x0, y0, x1, y1, ... as the head's output
        last_flow.weight.zero_()
