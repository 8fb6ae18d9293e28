"""Synthetic subjects: real face photographs (or morphs between them), reshaped and relit into
different people.

Each subject derives from ONE identity source (identities.py): a real face photograph shipped with a
dependency (scikit-image's astronaut, matplotlib's Grace Hopper) or a landmark-guided morph between them,
brought into a canonical image (eyes level, 64 px apart) with its 68 dlib landmarks. A subject is that
face under
- an identity warp: a smooth field of Gaussian bumps at landmark groups (jaw width, chin length, eye
  spacing, brow height, nose length and width, mouth width and height), in the canonical image's pixels;
- a similarity transform into the frame (scale, rotation, translation);
- an appearance change: gamma (skin tone), contrast, brightness and a left-right lighting gradient.

`neutral_sample(subject, points)` is the subject's neutral face S at frame points: every frame of a
clip is S seen through that clip's motion (motion.py), rendered with one interpolation from the
canonical image.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from components.synthetic.identities import IdentitySource, source_face
from components.synthetic.motion import Bumps, pixel_grid
from mol_model.metrics import eye_centres

FRAME_HEIGHT, FRAME_WIDTH = 240, 240
FRAME_IOD = 52.0            # mean inter-ocular distance in the frame, pixels
FACE_CENTRE = (120.0, 128.0)  # where the mean landmark lands in the frame

# identity bumps: (part, [(landmarks moved, direction)], sigma in IODs of the face)
_SHAPE_GROUPS = [
    ("jaw width", [((2, 3, 4), (-1, 0)), ((12, 13, 14), (1, 0))], 0.25),
    ("chin length", [((7, 8, 9), (0, 1))], 0.25),
    ("eye spacing", [((36, 37, 38, 39, 40, 41), (-1, 0)), ((42, 43, 44, 45, 46, 47), (1, 0))], 0.2),
    ("brow height", [((19,), (0, 1)), ((24,), (0, 1))], 0.2),
    ("nose length", [((33,), (0, 1))], 0.15),
    ("nose width", [((31,), (-1, 0)), ((35,), (1, 0))], 0.1),
    ("mouth width", [((48,), (-1, 0)), ((54,), (1, 0))], 0.15),
    ("mouth height", [((51, 57), (0, 1))], 0.2),
]
SHAPE_RANGE = 0.08  # each group moves by up to this many IODs


def iod(landmarks: np.ndarray) -> float:
    """Inter-ocular distance [68, 2] -> pixels between the eye centres."""
    left, right = eye_centres(landmarks)
    return float(np.linalg.norm(right - left))


@dataclass
class Subject:
    source: IdentitySource     # the real face(s) it derives from
    photo: np.ndarray          # float32 [S, S]: the source's canonical image under this subject's appearance
    to_photo: np.ndarray       # [2, 3] affine: frame pixels -> canonical image pixels (before the identity warp)
    identity_map: np.ndarray   # float32 [H, W, 2]: identity displacement at each frame pixel, photo px
    landmarks: np.ndarray      # [68, 2] neutral landmarks in the frame
    iod: float                 # inter-ocular distance in the frame, pixels


def _identity_bumps(rng: np.random.Generator, landmarks: np.ndarray) -> Bumps:
    scale = iod(landmarks)
    centres, vectors, sigmas = [], [], []
    for _, members, sigma in _SHAPE_GROUPS:
        amount = rng.uniform(-SHAPE_RANGE, SHAPE_RANGE) * scale
        for anchor, direction in members:
            centres.append(landmarks[list(anchor)].mean(0))
            vectors.append(np.array(direction, dtype=np.float64) * amount)
            sigmas.append(sigma * scale)
    return Bumps(np.array(centres), np.array(vectors), np.array(sigmas), np.zeros(len(centres), int))


def _appearance(rng: np.random.Generator, photo: np.ndarray) -> np.ndarray:
    gamma, contrast = rng.uniform(0.7, 1.4), rng.uniform(0.8, 1.2)
    brightness, side_light = rng.uniform(-20, 20), rng.uniform(-0.15, 0.15)
    x = np.linspace(-1.0, 1.0, photo.shape[1], dtype=np.float32)[None, :]
    lit = 255.0 * (photo / 255.0) ** gamma * (1.0 + side_light * x)
    return np.clip(contrast * (lit - 128.0) + 128.0 + brightness, 0, 255).astype(np.float32)


def make_subject(rng: np.random.Generator, source: IdentitySource) -> Subject:
    """A new identity drawn from `rng`, derived from `source` (identities.subject_source)."""
    photo, photo_landmarks = source_face(source)
    shape = _identity_bumps(rng, photo_landmarks)
    ones = np.ones(1)
    # similarity: canonical image -> frame
    scale = FRAME_IOD / iod(photo_landmarks) * rng.uniform(0.92, 1.08)
    angle = np.deg2rad(rng.uniform(-5.0, 5.0))
    target = np.array(FACE_CENTRE) + rng.uniform(-6.0, 6.0, size=2)
    rotation = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    to_frame = np.hstack([rotation, (target - rotation @ photo_landmarks.mean(0))[:, None]])
    to_photo = cv2.invertAffineTransform(to_frame)
    # identity warp: the frame shows photo point u - F(u) at the pixel whose similarity preimage is u
    grid_in_photo = pixel_grid(FRAME_HEIGHT, FRAME_WIDTH) @ to_photo[:, :2].T + to_photo[:, 2]
    identity_map = shape.field(grid_in_photo, ones).astype(np.float32)
    # neutral landmarks: solve u - F(u) = q for each photo landmark q, then map u into the frame
    u = photo_landmarks.copy()
    for _ in range(100):
        u_next = photo_landmarks + shape.field(u, ones)
        done = np.abs(u_next - u).max() < 1e-9
        u = u_next
        if done:
            break
    landmarks = u @ to_frame[:, :2].T + to_frame[:, 2]
    return Subject(source, _appearance(rng, photo), to_photo, identity_map, landmarks, iod(landmarks))


def neutral_sample(subject: Subject, points: np.ndarray) -> np.ndarray:
    """The neutral face S at frame points [H, W, 2] -> float32 [H, W] (one bilinear interpolation of
    the canonical image; the identity field is itself bilinearly sampled from its pixel grid)."""
    points = points.astype(np.float32)
    in_photo = points @ subject.to_photo[:, :2].T.astype(np.float32) + subject.to_photo[:, 2].astype(np.float32)
    shift = cv2.remap(subject.identity_map, points[..., 0], points[..., 1], cv2.INTER_LINEAR,
                      borderMode=cv2.BORDER_REPLICATE)
    source = in_photo - shift
    return cv2.remap(subject.photo, source[..., 0], source[..., 1], cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REFLECT)
