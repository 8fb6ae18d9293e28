"""Motion of the synthetic faces: smooth displacement fields, facial action units, head motion, and
the exact optical flow and landmark positions they imply.

Geometry of one clip (all points are (x, y) pixels of the frame):

    frame_t(p) = S(M_t(p)),   M_t(p) = R_t(p - D_t(p))

S is the subject's neutral face (see faces.py), D_t the facial deformation at frame t (a sum of
Gaussian bumps, each a displacement vector at a landmark, scaled by the frame's expression or blink
amplitude) and R_t the rigid head pose (rotation about the face centre plus translation). So M_t is a
backward map: it tells which point of the neutral face is seen at pixel p.

The content at pixel p of frame t is the neutral point M_t(p); frame t+1 shows it at
M_{t+1}^{-1}(M_t(p)). The forward flow, the quantity TV-L1 estimates from frame t to t+1, is

    flow_t(p) = M_{t+1}^{-1}(M_t(p)) - p,    so that  frame_t(p) = frame_{t+1}(p + flow_t(p)).

(and likewise between any two frames, e.g. the strided frames of an 8-frame clip).

M^{-1} is exact up to a numerical solve: R^{-1} is closed-form, and y - D(y) = w is solved by Newton's
method with the bumps' analytic Jacobian (to 1e-6 px, in 3-4 steps). The solution is unique because
the bumps are wide enough for their amplitudes that p - D(p) never folds: det(I - grad D) stays above
0.3 even with expression and blink both at full strength on the easy setting (tests check it).
Landmarks are carried the same way: landmark k of frame t is M_t^{-1}(L_k) for the neutral landmark L_k.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BUMP_RADIUS = 5.0   # a bump is evaluated within this many sigmas (beyond: < 4e-6 of its peak)
INVERSE_TOL = 1e-6  # pixels
NEWTON_STEPS = 20


@dataclass
class Bumps:
    """A displacement field: sum_j vectors_j * exp(-|p - centres_j|^2 / (2 sigmas_j^2))."""
    centres: np.ndarray  # [J, 2] pixels
    vectors: np.ndarray  # [J, 2] pixels at amplitude 1
    sigmas: np.ndarray   # [J] pixels
    channel: np.ndarray  # [J] int: which amplitude track scales the bump (0 expression, 1 blink)

    @staticmethod
    def concat(parts: list[Bumps]) -> Bumps:
        return Bumps(*(np.concatenate([getattr(p, f) for p in parts]) for f in
                       ("centres", "vectors", "sigmas", "channel")))

    def field(self, points: np.ndarray, weights: np.ndarray, slack: float | None = None,
              jacobian: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """D(points) [..., 2] with each bump scaled by weights[channel]; with `jacobian`, also
        dD/dp [..., 2, 2] (row = component of D, column = coordinate).

        With `slack`, points must be laid out as the pixel grid ([H, W, 2], each within `slack` px of
        its own pixel); a bump is then evaluated only in its window of the grid, which is much faster.
        """
        xs, ys = np.ascontiguousarray(points[..., 0]), np.ascontiguousarray(points[..., 1])
        out = np.zeros((2,) + xs.shape)
        jac = np.zeros((2, 2) + xs.shape) if jacobian else None
        for (cx, cy), (vx, vy), sigma, channel in zip(self.centres, self.vectors, self.sigmas, self.channel):
            weight = weights[channel]
            if weight == 0:
                continue
            # `...` (every point) when the points are not on the grid
            window = _window(xs.shape, (cx, cy), BUMP_RADIUS * sigma + slack) if slack is not None else ...
            dx, dy = xs[window] - cx, ys[window] - cy
            g = np.exp((dx * dx + dy * dy) * (-0.5 / (sigma * sigma)))
            gx, gy = g * (weight * vx), g * (weight * vy)
            out[0][window] += gx
            out[1][window] += gy
            if jacobian:
                dx, dy = dx / (-sigma * sigma), dy / (-sigma * sigma)
                jac[0, 0][window] += gx * dx
                jac[0, 1][window] += gx * dy
                jac[1, 0][window] += gy * dx
                jac[1, 1][window] += gy * dy
        out = np.moveaxis(out, 0, -1)
        return (out, np.moveaxis(jac, (0, 1), (-2, -1))) if jacobian else out


def _window(shape: tuple[int, ...], centre: tuple[float, float], radius: float) -> tuple[slice, slice]:
    """The rows and columns of the grid within `radius` of `centre` (clipped to the grid)."""
    height, width = shape[:2]
    x0, x1 = max(int(np.floor(centre[0] - radius)), 0), min(int(np.ceil(centre[0] + radius)) + 1, width)
    y0, y1 = max(int(np.floor(centre[1] - radius)), 0), min(int(np.ceil(centre[1] + radius)) + 1, height)
    return slice(y0, max(y0, y1)), slice(x0, max(x0, x1))


def _solve_2x2(matrix: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """x with matrix @ x = rhs, for stacks of 2x2 systems: matrix [..., 2, 2], rhs [..., 2]."""
    a, b, c, d = matrix[..., 0, 0], matrix[..., 0, 1], matrix[..., 1, 0], matrix[..., 1, 1]
    det = a * d - b * c
    return np.stack([(d * rhs[..., 0] - b * rhs[..., 1]) / det, (a * rhs[..., 1] - c * rhs[..., 0]) / det], -1)


def pixel_grid(height: int, width: int) -> np.ndarray:
    """[H, W, 2] float64: the (x, y) position of every pixel."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    return np.stack([xs, ys], axis=-1)


def rotate(points: np.ndarray, angle: float, centre: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """centre + Rot(angle) (points - centre) + shift, for points [..., 2]."""
    cos, sin = np.cos(angle), np.sin(angle)
    rel = points - centre
    return np.stack([cos * rel[..., 0] - sin * rel[..., 1], sin * rel[..., 0] + cos * rel[..., 1]], -1) + centre + shift


# ---------------------------------------------------------------- facial action units
# A bump of an action unit sits at the mean of some landmarks (dlib's 68-point numbering; the face's
# right is the image's left), shifted by `offset`; it moves by `move` at full intensity. Offsets,
# moves and sigmas are in units of the inter-ocular distance (IOD) except `move`, which is relative:
# the largest move of an expression is scaled to the difficulty's apex amplitude in pixels.

@dataclass(frozen=True)
class AUBump:
    anchor: tuple[int, ...]
    move: tuple[float, float]
    sigma: float
    offset: tuple[float, float] = (0.0, 0.0)


def _mirror_pairs() -> np.ndarray:
    """MIRROR[k]: the landmark on the other half of the face from landmark k (dlib 68 points)."""
    pairs = [(i, 16 - i) for i in range(8)] + [(17 + i, 26 - i) for i in range(5)] + [(31, 35), (32, 34)] \
        + [(36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46)] \
        + [(48, 54), (49, 53), (50, 52), (55, 59), (56, 58), (60, 64), (61, 63), (65, 67)]
    mirror = np.arange(68)
    for a, b in pairs:
        mirror[a], mirror[b] = b, a
    return mirror


MIRROR = _mirror_pairs()


def _pair(anchor: tuple[int, ...], move, sigma, offset=(0.0, 0.0)) -> list[AUBump]:
    """A bump on the face's right half (image left) and its mirror image on the left half."""
    return [AUBump(anchor, move, sigma, offset),
            AUBump(tuple(int(MIRROR[k]) for k in anchor), (-move[0], move[1]), sigma, (-offset[0], offset[1]))]


ACTION_UNITS: dict[int, list[AUBump]] = {
    1: _pair((21,), (0.1, -1.0), 0.13, (0.0, -0.05)),                                  # inner brow raiser
    2: _pair((18,), (-0.1, -1.0), 0.14, (0.0, -0.05)),                                 # outer brow raiser
    4: _pair((20, 21), (0.45, 0.8), 0.15),                                             # brow lowerer
    5: _pair((37, 38), (0.0, -0.5), 0.09),                                             # upper lid raiser
    6: _pair((40, 41), (0.0, -0.7), 0.2, (0.0, 0.35)) + _pair((40, 41), (0.0, -0.4), 0.08),  # cheek raiser
    7: _pair((40, 41), (0.0, -0.8), 0.09),                                             # lid tightener
    9: _pair((31,), (0.15, -0.8), 0.1) + _pair((21,), (0.0, 0.4), 0.12),               # nose wrinkler
    10: [AUBump((50,), (0.0, -1.0), 0.1), AUBump((51,), (0.0, -0.8), 0.1),
         AUBump((52,), (0.0, -1.0), 0.1)],                                             # upper lip raiser
    12: _pair((48,), (-0.6, -0.8), 0.12),                                              # lip corner puller
    14: _pair((48,), (0.6, -0.1), 0.08),                                               # dimpler
    15: _pair((48,), (0.0, 1.0), 0.12),                                                # lip corner depressor
    17: [AUBump((57, 8), (0.0, -1.0), 0.2), AUBump((57,), (0.0, -0.5), 0.1)],          # chin raiser
    26: [AUBump((8,), (0.0, 1.0), 0.35), AUBump((57,), (0.0, 0.8), 0.15)],             # jaw drop
}

# The 5 CASME II emotions as action-unit intensities; `others` picks one of its mixes per video.
EMOTIONS: dict[str, list[dict[int, float]]] = {
    "happiness": [{6: 0.6, 12: 1.0}],
    "surprise": [{1: 1.0, 2: 0.8, 5: 0.5, 26: 0.6}],
    "disgust": [{9: 1.0, 10: 0.7, 4: 0.4}],
    "repression": [{14: 0.8, 15: 0.8, 17: 1.0}],
    "others": [{4: 1.0}, {7: 1.0}, {4: 0.7, 7: 0.7}],
}

BLINK = _pair((37, 38), (0.0, 1.0), 0.09)  # upper lids down; amplitude in pixels


def landmark_bumps(parts: list[AUBump], landmarks: np.ndarray, iod: float, scales: np.ndarray,
                   channel: int) -> Bumps:
    """Place action-unit bumps on a face: landmarks [68, 2] pixels, scales [J] pixels per unit move."""
    centres = np.array([landmarks[list(b.anchor)].mean(0) + np.array(b.offset) * iod for b in parts])
    vectors = np.array([b.move for b in parts], dtype=np.float64) * scales[:, None]
    sigmas = np.array([b.sigma * iod for b in parts])
    return Bumps(centres, vectors, sigmas, np.full(len(parts), channel))


def raised_cosine(n: int, start: int, peak: int, end: int) -> np.ndarray:
    """[n] profile: 0 up to `start`, rising smoothly to 1 at `peak`, back to 0 at `end`, 0 after."""
    t = np.arange(n, dtype=np.float64)
    rise = 0.5 - 0.5 * np.cos(np.pi * (t - start) / max(peak - start, 1))
    fall = 0.5 + 0.5 * np.cos(np.pi * (t - peak) / max(end - peak, 1))
    return np.where(t < start, 0.0, np.where(t <= peak, rise, np.where(t <= end, fall, 0.0)))


# ---------------------------------------------------------------- one clip's motion

@dataclass
class ClipMotion:
    bumps: Bumps           # facial deformation, in frame pixels
    amplitude: np.ndarray  # [N, C] weight of each bump channel per frame
    pose: np.ndarray       # [N, 3] head rotation (radians) and translation x, y (pixels) per frame
    centre: np.ndarray     # [2] centre of the head rotation

    @property
    def n_frames(self) -> int:
        return len(self.amplitude)

    def to_neutral(self, t: int, points: np.ndarray, slack: float | None = None) -> np.ndarray:
        """M_t(points): the neutral-face point seen at each frame point."""
        return rotate(points - self.bumps.field(points, self.amplitude[t], slack),
                      self.pose[t, 0], self.centre, self.pose[t, 1:])

    def from_neutral(self, t: int, points: np.ndarray, grid: np.ndarray | None = None) -> np.ndarray:
        """M_t^{-1}(points): where frame t shows each neutral-face point. With `grid` (the pixel grid,
        when points are laid out on it) bumps are evaluated in windows."""
        w = rotate(points - self.centre - self.pose[t, 1:], -self.pose[t, 0], np.zeros(2), self.centre)
        y = w.copy()
        for _ in range(NEWTON_STEPS):  # solve y - D(y) = w
            slack = None if grid is None else float(np.abs(y - grid).max()) + 1.0
            d, jac = self.bumps.field(y, self.amplitude[t], slack, jacobian=True)
            residual = y - d - w
            step = _solve_2x2(np.eye(2) - jac, residual)
            y = y - step
            if float(np.abs(step).max()) < INVERSE_TOL:
                return y
        raise RuntimeError(f"the inverse warp of frame {t} did not converge")

    def flow(self, start: int, end: int, grid: np.ndarray) -> np.ndarray:
        """Flow from frame `start` to frame `end` at every pixel: [H, W, 2] pixels (x, y)."""
        return self.from_neutral(end, self.to_neutral(start, grid, slack=0.0), grid) - grid

    def landmarks(self, neutral: np.ndarray) -> np.ndarray:
        """[N, 68, 2]: the neutral landmarks as seen in every frame."""
        return np.stack([self.from_neutral(t, neutral) for t in range(self.n_frames)])
