"""Load a state dict saved by the official MOL code (github.com/CYF-cuber/MOL) into `MOL`.

Every key of our model has exactly one official name (`official_name`); loading is strict: every
official key must be used, every expected key present and every shape right, else one ValueError
lists what is missing, unexpected or mismatched.
"""
from __future__ import annotations

import re
from collections.abc import Mapping

import torch
from torch import nn

# Our module prefix -> the official one (first match wins).
MODULE_NAMES = [
    ("frame_encoder.", "conv_stack.conv_stack."),
    ("f5c_first.fcc.", "FCC_1."),
    ("f5c_second.fcc.", "FCC_2."),
    ("f5c_first.ccc.", "CCC_1."),
    ("f5c_second.ccc.", "CCC_2."),
    ("flow.", "flownet."),
    ("landmark_head.", "ldm_predictor."),
    ("mer_head.", "mer_3dcnn."),
]

# Inside FCC: branch_hw mixes along H then W (official "_1_H" then "_2_W"), branch_wh along W then H.
FCC_NAMES = {
    "branch_hw.norm": "pre_Norm_1", "branch_wh.norm": "pre_Norm_2",
    "branch_hw.pe1": "meta_pe_1_H", "branch_hw.kernel1": "meta_kernel_1_H", "branch_hw.bias1": "meta_1_H_bias",
    "branch_hw.pe2": "meta_pe_2_W", "branch_hw.kernel2": "meta_kernel_2_W", "branch_hw.bias2": "meta_2_W_bias",
    "branch_wh.pe1": "meta_pe_1_W", "branch_wh.kernel1": "meta_kernel_1_W", "branch_wh.bias1": "meta_1_W_bias",
    "branch_wh.pe2": "meta_pe_2_H", "branch_wh.kernel2": "meta_kernel_2_H", "branch_wh.bias2": "meta_2_H_bias",
}

# Inside each module: regex on the rest of the key -> replacement.
LOCAL_NAMES = {
    "FCC_": [(r"^branch_\w+\.\w+", lambda m: FCC_NAMES[m[0]])],  # 'ffn.*' keeps its name
    "CCC_": [(r"^self_proj\.", "conv1."), (r"^edge_proj\.", "conv2.")],
    "flownet.": [
        (r"^(\w+)\.conv\.", r"\1.0."),  # ConvBN -> nn.Sequential(conv, bn, act)
        (r"^(\w+)\.norm\.", r"\1.1."),
        (r"^refine\.(\d)\.deconv\.", r"deconv\1.0."),
        (r"^refine\.(\d)\.predict\.", r"predict_flow\1."),
        (r"^refine\.(\d)\.upsample\.", lambda m: f"upsampled_flow{int(m[1]) + 1}_to_{m[1]}."),
    ],
    "ldm_predictor.": [(r"^conv\.", "convldm.")],
    "mer_3dcnn.": [(r"^conv\.", "conv3d.")],
}


def official_name(key: str) -> str:
    """Our state-dict key -> the official one, e.g. 'flow.refine.5.deconv.weight' -> 'flownet.deconv5.0.weight'."""
    for ours, theirs in MODULE_NAMES:
        if key.startswith(ours):
            rest = key[len(ours):]
            break
    else:
        raise KeyError(f"no official name for {key!r}")
    for prefix, rules in LOCAL_NAMES.items():
        if theirs.startswith(prefix):
            for pattern, replacement in rules:
                rest = re.sub(pattern, replacement, rest)
    return theirs + rest


def official_shape(key: str, tensor: torch.Tensor) -> tuple[int, ...]:
    """The shape the official checkpoint stores for our `key` (CCC's Linear is a Conv1d(1, P, P) there)."""
    if re.fullmatch(r"f5c_\w+\.ccc\.\w+_proj\.weight", key):
        return (tensor.shape[0], 1, tensor.shape[1])
    return tuple(tensor.shape)


def unwrap(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Accept {'state_dict': ...} wrappers and DataParallel 'module.' prefixes."""
    if "state_dict" in state_dict and isinstance(state_dict["state_dict"], Mapping):
        state_dict = state_dict["state_dict"]
    if state_dict and all(k.startswith("module.") for k in state_dict):
        state_dict = {k[len("module."):]: v for k, v in state_dict.items()}
    return dict(state_dict)


def load_official_state_dict(model: nn.Module, state_dict: Mapping[str, torch.Tensor]) -> None:
    """Copy an official checkpoint's tensors into `model` (a `MOL`), strictly. Raises ValueError."""
    given = unwrap(state_dict)
    ours = model.state_dict()
    names = {official_name(key): key for key in ours}
    missing = sorted(set(names) - set(given))
    unexpected = sorted(set(given) - set(names))
    mismatched = [
        f"{name}: checkpoint {tuple(given[name].shape)}, expected {official_shape(key, ours[key])}"
        for name, key in sorted(names.items())
        if name in given and tuple(given[name].shape) != official_shape(key, ours[key])
    ]
    if missing or unexpected or mismatched:
        problems = [f"{label} ({len(items)}): {', '.join(items[:5])}{', ...' if len(items) > 5 else ''}"
                    for label, items in (("missing keys", missing), ("unexpected keys", unexpected),
                                         ("shape mismatches", mismatched)) if items]
        raise ValueError("not a MOL checkpoint of the official code for this model configuration; "
                         + "; ".join(problems))
    with torch.no_grad():
        for name, key in names.items():
            ours[key].copy_(given[name].reshape(ours[key].shape))
