"""Rendering one synthetic video: its sheet row (a plan drawn from the seed), its motion (action units,
blink, head pose), the noise-free frames and the camera (flicker, sensor noise, JPEG).

Every clip has its own random stream, `plan_clip(seed, subject, video)`, so a clip renders to the same
bytes whatever else is in the set, and a rerun can skip finished clips.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from components.io import atomic_path
from components.synthetic.faces import FRAME_HEIGHT, FRAME_WIDTH, Subject, neutral_sample
from components.synthetic.motion import (ACTION_UNITS, BLINK, EMOTIONS, Bumps, ClipMotion, landmark_bumps, pixel_grid,
                                         raised_cosine)
from components.synthetic.truth import ground_truth_path, write_ground_truth

FRAMES_FOLDER = "CASME2_RAW_selected"

EMOTION_ORDER = ("happiness", "surprise", "disgust", "repression", "others")

BLINK_CHANCE = 0.3
BLINK_PX = (1.5, 3.0)         # upper-lid travel of a (partial) blink
BLINK_FRAMES = (6, 14)
POSE_OFFSET_PX, POSE_OFFSET_DEG = 2.0, 1.0   # per video: where the head rests
DRIFT_PX, DRIFT_DEG, WALK_PX = 0.6, 0.25, 0.02  # within a video: slow drift plus a random walk per frame
FLICKER, GAIN_JITTER = 0.015, 0.002        # 100 Hz mains flicker at 200 fps alternates frame by frame
NOISE_SIGMA = (1.0, 2.5)                   # grey levels
JPEG_QUALITY = (85, 95)


@dataclass(frozen=True)
class ClipPlan:
    subject: int
    video: int
    emotion: str
    action_units: dict[int, float]
    n_frames: int
    onset: int
    apex_index: int

    @property
    def subject_folder(self) -> str:
        return f"sub{self.subject:02d}"

    @property
    def video_id(self) -> str:
        return f"EP{self.video:02d}_01f"

    @property
    def apex(self) -> int:
        return self.onset + self.apex_index

    @property
    def offset(self) -> int:
        return self.onset + self.n_frames - 1


def subject_emotions(seed: int, subject: int, videos: int) -> tuple[list[str], np.random.Generator]:
    """Each subject gets the 5 emotions in turn (a shuffled order), so classes stay balanced; the
    returned stream then draws the subject's identity."""
    rng = np.random.default_rng([seed, subject])
    order = rng.permutation(len(EMOTION_ORDER))
    return [EMOTION_ORDER[order[v % len(order)]] for v in range(videos)], rng


def plan_clip(seed: int, subject: int, video: int, emotion: str,
              frames: tuple[int, int]) -> tuple[ClipPlan, np.random.Generator]:
    """The clip's sheet row; the returned stream then draws its motion and nuisances."""
    rng = np.random.default_rng([seed, subject, video])
    n_frames = int(rng.integers(frames[0], frames[1] + 1))
    mixes = EMOTIONS[emotion]
    plan = ClipPlan(subject, video, emotion, mixes[int(rng.integers(len(mixes)))], n_frames,
                    onset=int(rng.integers(1, 300)),
                    apex_index=int(np.clip(round(rng.uniform(0.3, 0.6) * (n_frames - 1)), 1, n_frames - 2)))
    return plan, rng


def make_motion(plan: ClipPlan, subject: Subject, rng: np.random.Generator, apex_px: float) -> ClipMotion:
    """Expression (channel 0) and blink (channel 1) bumps with their per-frame amplitudes, and the head pose."""
    parts, weights = [], []
    for au, intensity in plan.action_units.items():
        jitter = intensity * rng.uniform(0.8, 1.2)
        for part in ACTION_UNITS[au]:
            parts.append(part)
            weights.append(jitter * rng.uniform(0.85, 1.15))  # a little asymmetry
    expression = landmark_bumps(parts, subject.landmarks, subject.iod, np.array(weights), channel=0)
    # scale so that the largest displacement anywhere at apex is the difficulty's (jittered) amplitude
    peak = np.linalg.norm(expression.field(pixel_grid(FRAME_HEIGHT, FRAME_WIDTH), np.ones(1), slack=0.0), axis=-1).max()
    expression.vectors *= apex_px * rng.uniform(0.8, 1.25) / peak
    blink = landmark_bumps(BLINK, subject.landmarks, subject.iod, np.full(len(BLINK), rng.uniform(*BLINK_PX)), 1)

    n = plan.n_frames
    amplitude = np.zeros((n, 2))
    amplitude[:, 0] = raised_cosine(n, 0, plan.apex_index, n - 1)
    if rng.random() < BLINK_CHANCE:
        length = min(int(rng.integers(*BLINK_FRAMES)), n - 1)
        start = int(rng.integers(0, n - length))
        amplitude[:, 1] = raised_cosine(n, start, start + length // 2, start + length)

    ramp = np.linspace(0.0, 1.0, n)[:, None]
    angle = np.deg2rad(rng.uniform(-POSE_OFFSET_DEG, POSE_OFFSET_DEG) + rng.uniform(-DRIFT_DEG, DRIFT_DEG) * ramp)
    shift = (rng.uniform(-POSE_OFFSET_PX, POSE_OFFSET_PX, 2) + rng.uniform(-DRIFT_PX, DRIFT_PX, 2) * ramp
             + np.cumsum(rng.normal(0.0, WALK_PX, (n, 2)), axis=0))
    return ClipMotion(Bumps.concat([expression, blink]), amplitude, np.hstack([angle, shift]),
                      subject.landmarks.mean(0))


def render_clip(subject: Subject, motion: ClipMotion) -> np.ndarray:
    """Noise-free frames float32 [N, H, W]: the subject's neutral face seen through the motion."""
    grid = pixel_grid(FRAME_HEIGHT, FRAME_WIDTH)
    return np.stack([neutral_sample(subject, motion.to_neutral(t, grid, slack=0.0)) for t in range(motion.n_frames)])


def camera(frames: np.ndarray, rng: np.random.Generator) -> list[bytes]:
    """Flicker, sensor noise and JPEG: the encoded frames."""
    n = len(frames)
    gain = 1.0 + rng.uniform(0, FLICKER) * (-1.0) ** np.arange(n) + rng.normal(0, GAIN_JITTER, n)
    sigma, quality = rng.uniform(*NOISE_SIGMA), int(rng.integers(JPEG_QUALITY[0], JPEG_QUALITY[1] + 1))
    noisy = frames * gain[:, None, None].astype(np.float32) + sigma * rng.standard_normal(frames.shape, np.float32)
    images = np.clip(np.rint(noisy), 0, 255).astype(np.uint8)
    return [cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])[1].tobytes() for image in images]


def write_clip(out_dir: Path, plan: ClipPlan, subject: Subject, rng: np.random.Generator, apex_px: float) -> None:
    motion = make_motion(plan, subject, rng, apex_px)
    clean = render_clip(subject, motion)
    folder = out_dir / FRAMES_FOLDER / plan.subject_folder / plan.video_id
    for number, encoded in zip(range(plan.onset, plan.offset + 1), camera(clean, rng)):
        with atomic_path(folder / f"img{number}.jpg") as tmp:
            tmp.write_bytes(encoded)
    # written last: its presence marks the clip as complete
    write_ground_truth(ground_truth_path(out_dir, plan.subject_folder, plan.video_id),
                       np.arange(plan.onset, plan.offset + 1), motion.landmarks(subject.landmarks), plan.emotion,
                       au_text(plan.action_units), (FRAME_HEIGHT, FRAME_WIDTH), motion)


def au_text(action_units: dict[int, float]) -> str:
    """{6: 0.6, 12: 1.0} -> '6+12' (the sheet's Action Units cell)."""
    return "+".join(str(au) for au in sorted(action_units))
