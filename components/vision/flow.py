"""Optical-flow label backends: flow between two aligned uint8 grayscale frames, in pixels.

`tvl1` is the official label: OpenCV's Dual TV-L1 (contrib `optflow`) with its default parameters
(tau 0.25, lambda 0.15, theta 0.3, 5 scales at 0.8, 5 warps, epsilon 0.01, 30 inner x 10 outer
iterations, 5x5 median filter, gamma 0).
`tvl1-dis` is the same TV-L1 (same parameters) on the full-resolution image only, started from DIS
flow instead of from zero at the coarsest of its 5 scales: the pyramid only serves to find motions
too large for one linearisation, which DIS finds for almost nothing, and it costs more than half of
TV-L1's time. Its labels differ from `tvl1`'s by 0.011 px on average, less than either differs from
the official TV-L1 per crop (0.022 px), and it is 2.3x faster (measured in docs/preprocessing.md).
`farneback` and `dis` are much faster OpenCV alternatives, for quick runs; their labels differ (see
docs/preprocessing.md for measured errors), and every output records which backend made it.
"""
from __future__ import annotations

import functools

import cv2
import numpy as np

from components.errors import UserError

FLOW_METHODS = ("tvl1", "tvl1-dis", "farneback", "dis")


@functools.lru_cache(maxsize=None)
def _tvl1(from_initial_flow: bool = False):
    if not hasattr(cv2, "optflow"):
        raise UserError("this OpenCV build lacks the contrib `optflow` module that TV-L1 needs; "
                        "install opencv-contrib-python-headless (or pass --flow dis)")
    tvl1 = cv2.optflow.DualTVL1OpticalFlow_create()  # default parameters, as the official code
    if from_initial_flow:  # the finest scale only, from the flow passed in
        tvl1.setScalesNumber(1)
        tvl1.setUseInitialFlow(True)
    return tvl1


@functools.lru_cache(maxsize=None)
def _dis():
    return cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)


def _farneback(previous: np.ndarray, current: np.ndarray) -> np.ndarray:
    # OpenCV's sample settings: 3 levels at half scale, 15 px window, 5 px polynomial neighbourhood
    return cv2.calcOpticalFlowFarneback(previous, current, None, pyr_scale=0.5, levels=3, winsize=15,
                                        iterations=3, poly_n=5, poly_sigma=1.2, flags=0)


def compute_flow(previous: np.ndarray, current: np.ndarray, method: str = "tvl1") -> np.ndarray:
    """Flow from `previous` to `current` (uint8 [H, W]) as float32 [2, H, W]: channel 0 = x, 1 = y."""
    previous, current = np.ascontiguousarray(previous), np.ascontiguousarray(current)  # DIS needs it
    if method == "tvl1":
        flow = _tvl1().calc(previous, current, None)
    elif method == "tvl1-dis":
        flow = _tvl1(from_initial_flow=True).calc(previous, current, _dis().calc(previous, current, None))
    elif method == "dis":
        flow = _dis().calc(previous, current, None)
    elif method == "farneback":
        flow = _farneback(previous, current)
    else:
        raise UserError(f"unknown flow method '{method}'; choose one of {', '.join(FLOW_METHODS)}")
    return np.ascontiguousarray(flow.transpose(2, 0, 1), dtype=np.float32)  # [H, W, 2] -> [2, H, W]
