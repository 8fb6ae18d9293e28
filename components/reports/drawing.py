"""Drawing MOL's inputs and outputs: flow colours, flow arrows, landmarks, captions, tiles, and writing
them as PNG, GIF or MP4.

Pure functions on numpy arrays, shared by `mol predict`, `mol evaluate` and notebooks:
images are uint8 (grayscale [H, W] or RGB [H, W, 3]), flows float [2, H, W] in pixels
(channel 0 = x, 1 = y), landmarks float [68, 2] as (x, y) pixels.

Flow colour convention (HSV): hue = direction, measured from +x (right, red) towards +y (down,
yellow-green: image rows grow downward); value = magnitude / `max_magnitude`; saturation 1.
So no motion is black. The default `max_magnitude` is `flow_scale`: the 99th percentile of the
magnitudes, so one outlier pixel (TV-L1 has a few) cannot turn the rest of the picture black.
Overlay colours: GREEN = labels (TV-L1 flow, dlib landmarks), RED = model predictions,
BLUE = ground truth (known only for synthetic data).
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
from matplotlib.figure import Figure

from components.io import atomic_path

RGB = tuple[int, int, int]
GREEN: RGB = (40, 220, 40)
RED: RGB = (255, 50, 50)
BLUE: RGB = (60, 140, 255)
YELLOW: RGB = (255, 230, 0)

# 68-point landmark contours (iBUG layout): (first, last, closed)
FACE_CONTOURS = [(0, 16, False), (17, 21, False), (22, 26, False), (27, 30, False), (31, 35, False),
                 (36, 41, True), (42, 47, True), (48, 59, True), (60, 67, True)]
_SHIFT = 4  # OpenCV drawing with 1/16-pixel precision: sub-pixel landmarks and arrows stay put
_FONT = cv2.FONT_HERSHEY_SIMPLEX


# ---- flow as colour ----

def flow_magnitude(flow: np.ndarray) -> np.ndarray:
    """[..., 2, H, W] -> [..., H, W] end-point length in pixels."""
    return np.hypot(flow[..., 0, :, :], flow[..., 1, :, :])


def flow_scale(*flows: np.ndarray) -> float:
    """A robust largest magnitude of one or more flows [..., 2, H, W]: their 99th percentile (their
    maximum when fewer than 1% of the pixels move). 0 for no motion at all."""
    magnitude = np.concatenate([flow_magnitude(np.asarray(f, np.float32)).ravel() for f in flows])
    return float(np.percentile(magnitude, 99) or magnitude.max())


def flow_to_color(flow: np.ndarray, max_magnitude: float | None = None) -> np.ndarray:
    """[2, H, W] flow -> uint8 RGB [H, W, 3] (hue = direction, value = magnitude / max_magnitude, clipped).

    `max_magnitude` defaults to `flow_scale(flow)`; pass one shared value to compare several flows
    (label vs prediction) on the same scale. All-zero flow is black."""
    flow = np.asarray(flow, dtype=np.float32)
    magnitude = flow_magnitude(flow)
    if max_magnitude is None:
        max_magnitude = flow_scale(flow)
    hue = np.degrees(np.arctan2(flow[1], flow[0])) % 360.0  # 0 = +x, 90 = +y (down)
    value = np.clip(magnitude / max_magnitude, 0.0, 1.0) if max_magnitude > 0 else np.zeros_like(magnitude)
    hsv = np.stack([hue, np.ones_like(hue), value], axis=-1).astype(np.float32)
    rgb = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)  # float HSV: H in [0, 360), S and V in [0, 1]
    return np.round(rgb * 255).astype(np.uint8)


def color_wheel(size: int = 128) -> np.ndarray:
    """The legend: uint8 RGB [size, size, 3], the colour of every direction and magnitude up to the
    rim (= max_magnitude); white outside the disc."""
    centre = (size - 1) / 2
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    flow = np.stack([x - centre, y - centre]) / centre  # [2, size, size], magnitude 1 on the rim
    wheel = flow_to_color(flow, max_magnitude=1.0)
    wheel[flow_magnitude(flow) > 1.0] = 255
    return wheel


# ---- overlays ----

def to_rgb(image: np.ndarray, zoom: int = 1) -> np.ndarray:
    """Grayscale or RGB uint8 -> a new RGB uint8 image, enlarged `zoom` times (each pixel a block:
    the pixels the model sees, not smoothed ones)."""
    image = np.asarray(image)
    rgb = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB) if image.ndim == 2 else image.copy()
    if zoom != 1:
        rgb = cv2.resize(rgb, None, fx=zoom, fy=zoom, interpolation=cv2.INTER_NEAREST)
    return np.ascontiguousarray(rgb, dtype=np.uint8)


def zoom_points(points: np.ndarray, zoom: int) -> np.ndarray:
    """(x, y) pixel coordinates (pixel centres at integers) -> the same places in an image enlarged `zoom` times,
    e.g. to draw landmarks over a picture that `draw_flow_arrows(..., zoom=zoom)` returned."""
    return (np.asarray(points, np.float64) + 0.5) * zoom - 0.5


def _fixed(points: np.ndarray, zoom: int) -> np.ndarray:
    """Pixel coordinates -> OpenCV fixed-point coordinates in an image enlarged `zoom` times."""
    return np.round(zoom_points(points, zoom) * (1 << _SHIFT)).astype(np.int32)


def arrow_scale(flow: np.ndarray, step: int) -> float:
    """Arrow length per pixel of flow [..., 2, H, W] so the largest motions (`flow_scale`) draw arrows of
    about one grid step. Micro-expression flow is often below a pixel, so arrows are drawn magnified."""
    largest = flow_scale(flow)
    return 0.9 * step / largest if largest > 0 else 1.0


def draw_flow_arrows(image: np.ndarray, flow: np.ndarray, step: int = 8, scale: float | None = None,
                     zoom: int = 1, color: RGB = YELLOW, min_fraction: float = 0.05) -> np.ndarray:
    """Arrows of `flow` [2, H, W] on a grid every `step` pixels over `image` (gray or RGB [H, W]).

    Each arrow starts at its grid point and is `scale` times the flow there (default: `arrow_scale`,
    so the long arrows are about one step). Grid points moving less than `min_fraction` of
    `flow_scale` get no arrow. Returns a new RGB image enlarged `zoom` times."""
    canvas = to_rgb(image, zoom)
    flow = np.asarray(flow, np.float32)
    scale = arrow_scale(flow, step) if scale is None else scale
    magnitude = flow_magnitude(flow)
    threshold = max(min_fraction * flow_scale(flow), 1e-6)
    height, width = magnitude.shape
    thickness = max(1, zoom // 2)
    for y in range(step // 2, height, step):
        for x in range(step // 2, width, step):
            if magnitude[y, x] < threshold:
                continue
            start = _fixed([x, y], zoom)
            end = _fixed([x + scale * flow[0, y, x], y + scale * flow[1, y, x]], zoom)
            cv2.arrowedLine(canvas, tuple(int(v) for v in start), tuple(int(v) for v in end), color, thickness,
                            cv2.LINE_AA, _SHIFT, tipLength=0.3)
    return canvas


def draw_landmarks(image: np.ndarray, landmarks: np.ndarray, color: RGB | Sequence[RGB] = GREEN,
                   zoom: int = 1, connect: bool = True) -> np.ndarray:
    """Landmarks [68, 2] (or K sets [K, 68, 2], one colour each) over `image` (gray or RGB).

    Points are dots joined along the face's contours (jaw, brows, nose, eyes, lips).
    Returns a new RGB image enlarged `zoom` times."""
    canvas = to_rgb(image, zoom)
    sets = np.asarray(landmarks, np.float32).reshape(-1, 68, 2)
    colors = [color] * len(sets) if isinstance(color[0], (int, np.integer)) else list(color)
    radius = max(1, zoom) << _SHIFT
    for points, rgb in zip(sets, colors):
        fixed = _fixed(points, zoom)
        if connect:
            for first, last, closed in FACE_CONTOURS:
                cv2.polylines(canvas, [fixed[first:last + 1]], closed, rgb, 1, cv2.LINE_AA, _SHIFT)
        for x, y in fixed:
            cv2.circle(canvas, (int(x), int(y)), radius, rgb, -1, cv2.LINE_AA, _SHIFT)
    return canvas


def caption(image: np.ndarray, text: str, height: int = 18) -> np.ndarray:
    """`image` (RGB) with a black strip on top holding `text` in white."""
    strip = np.zeros((height, image.shape[1], 3), np.uint8)
    cv2.putText(strip, text, (3, height - 5), _FONT, 0.42, (255, 255, 255), 1, cv2.LINE_AA)
    return np.vstack([strip, to_rgb(image)])


def tile(images: Sequence[np.ndarray], columns: int | None = None, gap: int = 2) -> np.ndarray:
    """Images (RGB, same size) in a grid of `columns` (default: one row), on white, `gap` pixels apart."""
    images = [to_rgb(im) for im in images]
    columns = columns or len(images)
    rows = -(-len(images) // columns)
    height, width = images[0].shape[:2]
    grid = np.full((rows * height + (rows - 1) * gap, columns * width + (columns - 1) * gap, 3), 255, np.uint8)
    for i, im in enumerate(images):
        r, c = divmod(i, columns)
        grid[r * (height + gap):r * (height + gap) + height, c * (width + gap):c * (width + gap) + width] = im
    return grid


# ---- files ----

def save_png(image: np.ndarray, path: str | Path) -> None:
    """Write an RGB (or grayscale) uint8 image as PNG, atomically."""
    image = np.asarray(image, np.uint8)
    with atomic_path(path, suffix=".png") as tmp:
        bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if image.ndim == 3 else image
        if not cv2.imwrite(str(tmp), bgr):
            raise OSError(f"could not write {path}")


def png_bytes(image: np.ndarray) -> bytes:
    image = np.asarray(image, np.uint8)
    ok, data = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if image.ndim == 3 else image)
    if not ok:
        raise ValueError("could not encode the image as PNG")
    return data.tobytes()


def save_gif(frames_rgb: Sequence[np.ndarray], path: str | Path, fps: float = 4.0) -> None:
    """An endlessly looping animated GIF of RGB uint8 frames (all the same size), written atomically."""
    from PIL import Image

    images = [Image.fromarray(to_rgb(f)) for f in frames_rgb]
    with atomic_path(path, suffix=".gif") as tmp:
        images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:],
                       duration=int(round(1000 / fps)), loop=0, disposal=1)


def save_mp4(frames_rgb: Sequence[np.ndarray], path: str | Path, fps: float = 4.0) -> None:
    """An MP4 (OpenCV's mp4v codec) of RGB uint8 frames (all the same size), written atomically."""
    height, width = frames_rgb[0].shape[:2]
    with atomic_path(path, suffix=".mp4") as tmp:
        writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
        if not writer.isOpened():
            raise OSError(f"OpenCV cannot write MP4 (mp4v) video to {path}; use a GIF instead")
        for frame in frames_rgb:
            writer.write(cv2.cvtColor(to_rgb(frame), cv2.COLOR_RGB2BGR))
        writer.release()


def save_figure(figure: Figure, path: str | Path, dpi: int = 100) -> None:
    with atomic_path(path, suffix=Path(path).suffix) as tmp:
        figure.savefig(tmp, dpi=dpi, bbox_inches="tight")


def figure_png(figure: Figure, dpi: int = 100) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    return buffer.getvalue()


def show(ax, image: np.ndarray, title: str) -> None:
    """`image` (gray or RGB uint8) on a matplotlib axes, pixels as they are, titled, without axes."""
    ax.imshow(image, cmap="gray" if image.ndim == 2 else None, vmin=0, vmax=255, interpolation="nearest")
    ax.set_title(title, fontsize=8)
    ax.set_axis_off()

