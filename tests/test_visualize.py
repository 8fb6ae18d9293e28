"""The picture functions: colour convention, arrows and landmarks where they belong, files that open."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image

from components.reports import drawing as vis
from components.reports.prediction import prediction_summary_figure, summary_html
from components.reports.samples import flow_samples_figure, landmark_samples_figure


def uniform_flow(dx: float, dy: float, size: int = 8) -> np.ndarray:
    flow = np.zeros((2, size, size), np.float32)
    flow[0], flow[1] = dx, dy
    return flow


@pytest.mark.parametrize("dx, dy, rgb", [
    (1, 0, (255, 0, 0)),      # +x (right): hue 0, red
    (0, 1, (128, 255, 0)),    # +y (down, image rows): hue 90, yellow-green
    (-1, 0, (0, 255, 255)),   # -x: hue 180, cyan
    (0, -1, (128, 0, 255)),   # -y (up): hue 270, violet
    (1, 1, (255, 191, 0)),    # down-right: hue 45, orange
])
def test_flow_colour_hue_follows_direction(dx, dy, rgb):
    color = vis.flow_to_color(uniform_flow(dx, dy))
    assert color.shape == (8, 8, 3) and color.dtype == np.uint8
    np.testing.assert_allclose(color[0, 0], rgb, atol=1)


def test_flow_colour_brightness_is_magnitude_on_a_shared_scale():
    assert (vis.flow_to_color(uniform_flow(0, 0)) == 0).all()  # no motion: black
    half = vis.flow_to_color(uniform_flow(0.5, 0), max_magnitude=1.0)
    np.testing.assert_allclose(half[0, 0], (128, 0, 0), atol=1)
    clipped = vis.flow_to_color(uniform_flow(3.0, 0), max_magnitude=1.0)
    np.testing.assert_allclose(clipped[0, 0], (255, 0, 0), atol=1)

    # default scale: the 99th percentile of the magnitudes, so one outlier does not darken the rest
    flow = np.zeros((2, 20, 20), np.float32)
    flow[0] = np.linspace(0, 1, 400).reshape(20, 20)
    flow[0, 19, 19] = 50.0  # an outlier
    assert vis.flow_scale(flow) == pytest.approx(np.percentile(flow[0], 99)) and vis.flow_scale(flow) < 1
    color = vis.flow_to_color(flow)
    assert color[19, 19, 0] == 255 and color[10, 0, 0] > 120  # motion of 0.5 px stays half bright
    sparse = np.zeros((2, 20, 20), np.float32)
    sparse[0, 0, 0] = 2.0  # fewer than 1% of the pixels move: the scale is their maximum
    assert vis.flow_scale(sparse) == 2.0 and vis.flow_scale(np.zeros((2, 4, 4))) == 0.0
    assert vis.flow_scale(np.stack([flow, sparse])) == pytest.approx(vis.flow_scale(flow, sparse))


def test_colour_wheel_is_the_legend_of_flow_to_color():
    wheel = vis.color_wheel(65)
    assert wheel.shape == (65, 65, 3)
    assert (wheel[32, 32] == 0).all()  # centre: no motion
    assert (wheel[0, 0] == 255).all()  # outside the disc: white
    np.testing.assert_allclose(wheel[32, 64], vis.flow_to_color(uniform_flow(1, 0))[0, 0], atol=2)
    np.testing.assert_allclose(wheel[64, 32], vis.flow_to_color(uniform_flow(0, 1))[0, 0], atol=2)


def test_arrows_are_drawn_only_where_the_face_moves():
    gray = np.zeros((64, 64), np.uint8)
    flow = np.zeros((2, 64, 64), np.float32)
    flow[0, 32:64, 32:64] = 0.4  # the lower-right quarter moves right by 0.4 px
    arrows = vis.draw_flow_arrows(gray, flow, step=8, zoom=2)
    assert arrows.shape == (128, 128, 3) and arrows.std() > 0
    drawn = arrows.max(axis=2) > 0
    assert drawn[64:, 64:].sum() > 100  # arrows in the moving quarter ...
    assert not drawn[:56, :].any() and not drawn[:, :56].any()  # ... and nowhere else
    # the largest motion draws 0.9 step of arrow: the one from grid point (36, 36), at (72.5, 72.5)
    # after 2x zoom, reaches 0.9 * 8 * 2 = 14.4 px to the right
    ys, xs = np.nonzero(drawn[66:80, 66:88])
    assert xs.min() + 66 in (72, 73) and 13 <= xs.max() - xs.min() <= 16
    unmoved = vis.draw_flow_arrows(gray, np.zeros_like(flow), step=8)
    assert (unmoved == 0).all()


def test_landmarks_are_drawn_at_their_coordinates_in_their_colours():
    gray = np.full((32, 32), 40, np.uint8)
    points = np.full((68, 2), 5.0, np.float32)
    other = np.full((68, 2), 25.0, np.float32)
    image = vis.draw_landmarks(gray, np.stack([points, other]), [vis.GREEN, vis.RED], zoom=3)
    assert image.shape == (96, 96, 3)
    at = vis.zoom_points(np.array([[5.0, 5.0], [25.0, 25.0]]), 3).round().astype(int)
    assert tuple(image[at[0, 1], at[0, 0]]) == vis.GREEN
    assert tuple(image[at[1, 1], at[1, 0]]) == vis.RED
    assert (image[48, 48] == 40).all()  # far from both: the frame itself
    one = vis.draw_landmarks(gray, points)  # one set, default colour, RGB out, input untouched
    assert one.shape == (32, 32, 3) and tuple(one[5, 5]) == vis.GREEN and (gray == 40).all()


def test_tile_and_caption_sizes():
    a = np.zeros((10, 20, 3), np.uint8)
    grid = vis.tile([a, a, a], columns=2, gap=2)
    assert grid.shape == (22, 42, 3) and (grid[12:, 22:] == 255).all()  # the missing fourth cell is white
    captioned = vis.caption(a, "hello", height=18)
    assert captioned.shape == (28, 20, 3) and captioned[:18].max() == 255


def distinct_frames(n: int) -> list[np.ndarray]:
    frames = []
    for k in range(n):
        frame = np.zeros((48, 64, 3), np.uint8)
        cv2.circle(frame, (8 + 6 * k, 24), 5, (255, 200, 0), -1)
        frames.append(frame)
    return frames


def test_gif_and_mp4_hold_every_frame(tmp_path):
    frames = distinct_frames(6)
    vis.save_gif(frames, tmp_path / "clip.gif", fps=5)
    with Image.open(tmp_path / "clip.gif") as gif:
        assert gif.n_frames == 6 and gif.size == (64, 48)
        assert gif.info["duration"] == 200 and gif.info["loop"] == 0
    vis.save_mp4(frames, tmp_path / "clip.mp4", fps=5)
    capture = cv2.VideoCapture(str(tmp_path / "clip.mp4"))
    read = 0
    while capture.read()[0]:
        read += 1
    capture.release()
    assert read == 6
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.gif", "clip.mp4"]  # no temp files left


def read_png(path) -> np.ndarray:
    image = cv2.imread(str(path))
    assert image is not None
    return image


def synthetic_sample(n: int, seed: int = 0):
    """Frames with a moving blob; 'truth' flow, a noisy 'label' and a worse 'prediction' of it."""
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 255, size=(n, 64, 64), dtype=np.uint8)
    truth = np.zeros((n, 2, 64, 64), np.float32)
    truth[:, 0, 20:40, 20:40] = 0.5
    label = truth + rng.normal(0, 0.05, truth.shape).astype(np.float32)
    pred = truth + np.float32(0.25)  # every pixel off by (0.25, 0.25): EPE 0.354 against the truth
    return frames, label, pred, truth


def test_flow_samples_figure_compares_label_prediction_and_truth(tmp_path):
    frames, label, pred, truth = synthetic_sample(2)
    figure = flow_samples_figure(frames, label, pred, truth, names=["a", "b"], path=tmp_path / "flow.png")
    assert len(figure.axes) == 2 * 5  # frame, label, prediction, truth, wheel per row
    titles = [ax.get_title() for ax in figure.axes]
    assert f"EPE vs truth {np.hypot(0.25, 0.25):.3f} px" in titles[2]
    image = read_png(tmp_path / "flow.png")
    assert image.shape[0] > 200 and image.std() > 10
    without_truth = flow_samples_figure(frames[:1], label[:1], pred[:1])
    assert len(without_truth.axes) == 4


def test_landmark_samples_figure_reports_nme(tmp_path):
    frames = np.full((3, 64, 64), 90, np.uint8)
    truth = np.random.default_rng(1).uniform(10, 54, size=(3, 68, 2)).astype(np.float32)
    truth[:, 36:42] = (20.0, 30.0)  # eye centres 20 px apart
    truth[:, 42:48] = (40.0, 30.0)
    pred = truth + np.float32([2.0, 0.0])  # 2 px off everywhere: NME 2 / 20 = 0.1
    figure = landmark_samples_figure(frames, truth, pred, truth, path=tmp_path / "ldm.png")
    assert "NME 0.100" in figure.axes[0].get_title()
    image = read_png(tmp_path / "ldm.png")
    assert image.std() > 10


def test_summary_figure_and_html_are_self_contained(tmp_path):
    frames = np.random.default_rng(0).integers(0, 255, size=(8, 128, 128), dtype=np.uint8)
    landmarks = np.random.default_rng(1).uniform(0, 128, size=(7, 68, 2)).astype(np.float32)
    flow = np.random.default_rng(2).normal(0, 0.3, size=(7, 2, 128, 128)).astype(np.float32)
    probs = np.array([0.2, 0.7, 0.1])
    figure = prediction_summary_figure(frames, landmarks, flow, probs, ["neg", "pos", "sur"], "title",
                                           clip_probabilities=np.array([[0.3, 0.6, 0.1]]))
    png = vis.figure_png(figure)
    decoded = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    assert decoded.shape[1] > 1000 and decoded.std() > 10
    page = summary_html("a <title>", probs, ["neg", "pos", "sur"], [("Summary", png, "image/png")],
                            table=[["clip", "class"], [0, "pos"]], notes=["note & more"])
    assert "data:image/png;base64," in page and "a &lt;title&gt;" in page and "note &amp; more" in page
    assert 'src="http' not in page and "<link" not in page  # nothing fetched from elsewhere
    assert page.count('class="bar') == 3 and 'class="bar best" style="width:70.0%"' in page
