"""The real faces behind the synthetic subjects, and new faces between them.

Real faces: every photograph of a real human face that an installed dependency ships (loaded offline):
- `astronaut`: `skimage.data.astronaut()` (scikit-image; Eileen Collins, NASA portrait),
- `grace_hopper`: `matplotlib.cbook.get_sample_data("grace_hopper.jpg")` (matplotlib; Grace Hopper, US Navy).
Looked at and left out: scikit-image's `lfw_subset` (100 real faces, but 25x25 pixels: about 8 px between
the eyes, so in the 240x240 frame they would be 6x blown up and told apart by their blur alone), its
`camera` (a man behind a camera: dlib finds no face); `scipy.datasets.face` is a raccoon and needs a download.

Each photograph is brought into one canonical image (CANON_SIZE square, grayscale) by a similarity from
its dlib landmarks: the eyes level, CANON_IOD pixels apart, the mean landmark at CANON_CENTRE. So every
face, real or morphed, lands with the same size and centre, and the frame's similarity (faces.py) treats
them alike.

A morph between real faces (its blend weights summing to 1) is a new face with the weighted mean of their
landmarks: each canonical photograph is warped onto those landmarks piecewise-affinely (a Delaunay
triangulation of the 68 landmarks plus 8 points on the image border, which stay put) and the warped
textures are blended with the same weights.

Which face each subject derives from is fixed by its number (`subject_source`): the cycle SOURCE_CYCLE
takes every real face PHOTO_REPEATS times in turn, then the morphs between each pair at MORPH_WEIGHTS. With
the two faces: astronaut, grace_hopper, astronaut, grace_hopper, astronaut, grace_hopper, then 1/3 and 2/3
of the way from astronaut to grace_hopper (subjects 1-8; subject 9 starts again). So the default 8 subjects
hold 3 subjects of each real person (a cross-person test trains on 3 people of one face and tests on 3 of
the other) and 2 new faces between them; any 2 subjects hold both people; adding subjects never changes the
source of the first ones.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from itertools import combinations
from typing import Callable

import cv2
import numpy as np

from components.errors import UserError
from mol_model.metrics import eye_centres

CANON_SIZE = 384                # side of the canonical image, pixels
CANON_IOD = 64.0                # eyes this far apart: above the frame's (52 px +- 8 %), so rendering never enlarges
CANON_CENTRE = (192.0, 200.0)   # where the mean landmark lands

PHOTO_REPEATS = 3               # subjects per real face in each cycle
MORPH_WEIGHTS = (1 / 3, 2 / 3)  # share of the second face in the morphs of each pair


def _astronaut() -> np.ndarray:
    from skimage import data

    return cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2GRAY)


def _grace_hopper() -> np.ndarray:
    from matplotlib import cbook

    return cv2.imread(str(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)), cv2.IMREAD_GRAYSCALE)


# name -> (where it ships, loader of its uint8 grayscale image)
PHOTOS: dict[str, tuple[str, Callable[[], np.ndarray]]] = {
    "astronaut": ("scikit-image's skimage.data.astronaut()", _astronaut),
    "grace_hopper": ("matplotlib's sample data grace_hopper.jpg", _grace_hopper),
}


@dataclass(frozen=True)
class IdentitySource:
    """What a subject's face is made of: real faces with their blend weights (one face: the photograph)."""
    blend: tuple[tuple[str, float], ...]  # (("astronaut", 1.0),) or (("astronaut", 2/3), ("grace_hopper", 1/3))

    @property
    def faces(self) -> tuple[str, ...]:
        """The real people this face derives from."""
        return tuple(name for name, _ in self.blend)

    @property
    def label(self) -> str:
        """`astronaut`, or `astronaut 67% + grace_hopper 33%` for a morph (the coding sheet's cell)."""
        if len(self.blend) == 1:
            return self.blend[0][0]
        return " + ".join(f"{name} {round(100 * weight)}%" for name, weight in self.blend)

    def weights(self) -> dict[str, float]:
        """{real face: blend weight} (synth.json's record)."""
        return {name: round(weight, 4) for name, weight in self.blend}


def source_cycle() -> list[IdentitySource]:
    """The sources of subjects 1, 2, ... in turn (see the module's docstring)."""
    names = list(PHOTOS)
    photos = [IdentitySource(((name, 1.0),)) for name in names] * PHOTO_REPEATS
    morphs = [IdentitySource(((a, 1.0 - w), (b, w))) for a, b in combinations(names, 2) for w in MORPH_WEIGHTS]
    return photos + morphs


def subject_source(subject: int) -> IdentitySource:
    """The source of subject number `subject` (1-based), independent of how many subjects the set has."""
    cycle = source_cycle()
    return cycle[(subject - 1) % len(cycle)]


@functools.lru_cache(maxsize=None)
def photo_landmarks(name: str) -> tuple[np.ndarray, np.ndarray]:
    """A real face's photograph (uint8 grayscale, as shipped) and its dlib landmarks float64 [68, 2]."""
    from components.vision.face import detect_landmarks

    where, load = PHOTOS[name]
    gray = load()
    landmarks = None if gray is None else detect_landmarks(gray)
    if landmarks is None:
        raise UserError(f"dlib found no face in {where}; reinstall that package and dlib-bin")
    return gray, landmarks.astype(np.float64)


def canonical_similarity(landmarks: np.ndarray) -> np.ndarray:
    """[2, 3] similarity taking a face with these landmarks to the canonical image: eyes level,
    CANON_IOD apart, mean landmark at CANON_CENTRE."""
    left, right = eye_centres(landmarks)
    dx, dy = right - left
    scale, angle = CANON_IOD / np.hypot(dx, dy), -np.arctan2(dy, dx)
    rotation = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return np.hstack([rotation, (np.array(CANON_CENTRE) - rotation @ landmarks.mean(0))[:, None]])


@functools.lru_cache(maxsize=None)
def canonical_face(name: str) -> tuple[np.ndarray, np.ndarray]:
    """A real face in the canonical image: float32 [CANON_SIZE, CANON_SIZE] and landmarks float64 [68, 2]."""
    gray, landmarks = photo_landmarks(name)
    matrix = canonical_similarity(landmarks)
    scale = float(np.hypot(*matrix[:, 0]))
    image = gray.astype(np.float32)
    if scale < 1.0:  # shrinking: smooth first, so fine texture does not alias
        image = cv2.GaussianBlur(image, (0, 0), 0.5 * np.sqrt(1.0 / scale ** 2 - 1.0))
    canonical = cv2.warpAffine(image, matrix, (CANON_SIZE, CANON_SIZE), flags=cv2.INTER_CUBIC,
                               borderMode=cv2.BORDER_REFLECT)
    return np.clip(canonical, 0, 255), landmarks @ matrix[:, :2].T + matrix[:, 2]


def border_points() -> np.ndarray:
    """[8, 2]: the canonical image's corners and edge midpoints (fixed points of every morph)."""
    e = CANON_SIZE - 1.0
    return np.array([[0, 0], [e / 2, 0], [e, 0], [e, e / 2], [e, e], [e / 2, e], [0, e], [0, e / 2]])


def piecewise_affine_map(source: np.ndarray, target: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """float32 [CANON_SIZE, CANON_SIZE, 2]: for every pixel of the target geometry, where to read the source
    image, affine inside each triangle (vertex indices [T, 3]) that takes target points onto source points."""
    index = np.zeros((CANON_SIZE, CANON_SIZE), np.int32)  # 0: no triangle (left unmoved)
    affines = [np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])]
    for number, corners in enumerate(triangles, start=1):
        affines.append(cv2.getAffineTransform(target[corners].astype(np.float32), source[corners].astype(np.float32)))
        cv2.fillConvexPoly(index, np.round(target[corners]).astype(np.int32), number)
    per_pixel = np.array(affines)[index]  # [S, S, 2, 3]
    ys, xs = np.mgrid[0:CANON_SIZE, 0:CANON_SIZE].astype(np.float64)
    return np.stack([per_pixel[..., k, 0] * xs + per_pixel[..., k, 1] * ys + per_pixel[..., k, 2] for k in (0, 1)],
                    axis=-1).astype(np.float32)


@functools.lru_cache(maxsize=None)
def source_face(source: IdentitySource) -> tuple[np.ndarray, np.ndarray]:
    """The source's face in the canonical image: float32 [CANON_SIZE, CANON_SIZE] and landmarks float64 [68, 2]
    (a morph's landmarks are the weighted mean of its faces' landmarks)."""
    from scipy.spatial import Delaunay

    faces = [canonical_face(name) for name in source.faces]
    if len(faces) == 1:
        return faces[0]
    weights = np.array([weight for _, weight in source.blend])
    points = [np.vstack([landmarks, border_points()]) for _, landmarks in faces]
    blended = np.tensordot(weights, np.array(points), axes=1)
    triangles = Delaunay(blended).simplices
    texture = np.zeros((CANON_SIZE, CANON_SIZE), np.float32)
    for weight, (image, _), own in zip(weights, faces, points):
        where = piecewise_affine_map(own, blended, triangles)
        texture += weight * cv2.remap(image, where[..., 0], where[..., 1], cv2.INTER_LINEAR,
                                      borderMode=cv2.BORDER_REFLECT)
    return texture, blended[:68]
