"""The pictures and the page of one prediction (`mol predict`): the clip the model is most confident about,
with its predicted flow (colours and arrows), dlib's and MOL's landmarks, an animation, a summary figure
and a self-contained HTML page."""
from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Sequence

import numpy as np
from matplotlib.figure import Figure

from components.io import write_bytes, write_text
from components.reports import drawing as vis
from components.reports.drawing import GREEN, RED, color_wheel, draw_landmarks, flow_scale, flow_to_color, show

ZOOM = 3  # pictures show the 128x128 crop enlarged this much


def write_pictures(out: Path, result: dict, frames: np.ndarray, flow: np.ndarray, landmarks: np.ndarray,
                   reference: np.ndarray, video_probs: np.ndarray, clip_probs: np.ndarray,
                   animation: str) -> dict[str, str]:
    """The pictures of one clip: frames [8, 128, 128], flow [7, 2, 128, 128], predicted landmarks
    [7, 68, 2] (frames 2..8), dlib's aligned landmarks [8, 68, 2]. Returns {kind: file name}."""
    largest = vis.flow_scale(flow)  # one colour scale and one arrow scale for the clip's 7 pairs
    scale = vis.arrow_scale(flow, step=8)
    pairs = [f"{t + 1}-{t + 2}" for t in range(len(flow))]
    color_panels = [vis.caption(vis.to_rgb(vis.flow_to_color(f, largest), ZOOM), f"flow {p}")
                    for f, p in zip(flow, pairs)]
    color_panels.append(vis.caption(vis.to_rgb(vis.color_wheel(128), ZOOM), f"rim = {largest:.3f} px"))
    arrow_panels = [vis.caption(vis.draw_flow_arrows(frames[t], flow[t], step=8, scale=scale, zoom=ZOOM),
                                f"flow {pairs[t]} (arrows x{scale:.2g})") for t in range(len(flow))]
    landmark_panels = [vis.caption(_frame_overlay(frames, landmarks, reference, t), f"frame {t + 1}")
                       for t in range(len(frames))]
    strips = {"flow_color": color_panels, "flow_arrows": arrow_panels, "landmarks": landmark_panels}
    strips = {kind: vis.tile(panels, columns=4) for kind, panels in strips.items()}
    files = {}
    for kind, image in strips.items():
        vis.save_png(image, out / f"{kind}.png")
        files[kind] = f"{kind}.png"

    if animation != "none":
        clip = [_animation_frame(frames, flow, landmarks, reference, largest, scale, t) for t in range(len(frames))]
        files["animation"] = f"clip.{animation}"
        (vis.save_gif if animation == "gif" else vis.save_mp4)(clip, out / files["animation"], fps=3)

    title = (f"{Path(result['input']).name}: {result['predicted_class']} "
             f"(p = {video_probs.max():.2f}; clip {result['picture_clip']} shown)")
    figure = prediction_summary_figure(frames, landmarks, flow, video_probs, result["class_names"], title,
                                           clip_probs, reference)
    summary_png = vis.figure_png(figure)
    write_bytes(out / "summary.png", summary_png)
    files["summary_png"] = "summary.png"
    images = [("Summary", summary_png, "image/png"),
              ("Landmarks (green: dlib on the aligned frames, red: MOL's prediction)",
               vis.png_bytes(strips["landmarks"]), "image/png"),
              ("Predicted flow as colour (hue = direction, brightness = speed; the wheel is the legend)",
               vis.png_bytes(strips["flow_color"]), "image/png"),
              ("Predicted flow as arrows (magnified)", vis.png_bytes(strips["flow_arrows"]), "image/png")]
    if animation == "gif":
        images.append(("Clip with overlays", (out / files["animation"]).read_bytes(), "image/gif"))
    write_text(out / "summary.html", summary_html(title, video_probs, result["class_names"], images,
                                                      _clip_table(result), _notes(result)))
    files["summary_html"] = "summary.html"
    return files


def _frame_overlay(frames: np.ndarray, landmarks: np.ndarray, reference: np.ndarray, t: int,
                   flow: np.ndarray | None = None, scale: float = 1.0) -> np.ndarray:
    """Frame t enlarged ZOOM times: flow arrows (if `flow`), dlib's landmarks (green) and, from the second
    frame on, MOL's predicted landmarks (red)."""
    image = vis.draw_flow_arrows(frames[t], flow, scale=scale, zoom=ZOOM) if flow is not None \
        else vis.to_rgb(frames[t], ZOOM)
    sets, colors = ([reference[t], landmarks[t - 1]], [vis.GREEN, vis.RED]) if t else ([reference[0]], [vis.GREEN])
    return vis.draw_landmarks(image, vis.zoom_points(np.stack(sets), ZOOM), colors)


def _animation_frame(frames: np.ndarray, flow: np.ndarray, landmarks: np.ndarray, reference: np.ndarray,
                     largest: float, scale: float, t: int) -> np.ndarray:
    """Frame t with both landmark sets and the arrows of the flow into it, beside that flow's colours."""
    incoming = flow[t - 1] if t else None
    face = _frame_overlay(frames, landmarks, reference, t, incoming, scale)
    colors = vis.to_rgb(vis.flow_to_color(incoming, largest), ZOOM) if t else np.zeros_like(face)
    label = f"frame {t + 1}/{len(frames)}" + (f", flow {t}-{t + 1}" if t else "")
    return vis.caption(vis.tile([face, colors]), label)


def _clip_table(result: dict) -> list[list]:
    header = ["clip", "frames", "predicted", *result["class_names"]]
    stride = result["frames"]["stride"]
    return [header] + [[c["clip"], f"{c['frame_numbers'][0]}..{c['frame_numbers'][-1]} (every {stride})",
                        c["predicted_class"], *(f"{p:.3f}" for p in c["probabilities"].values())]
                       for c in result["clips"]]


def _notes(result: dict) -> list[str]:
    frames = result["frames"]
    return [f"input: {result['input']}", f"model: {result['model']}",
            f"frames {frames['first']}..{frames['last']} ({frames['count']}), {frames['without_face']} without "
            "a detected face (landmarks interpolated)",
            "video probabilities = softmax of the mean of the clip logits"]



# ---- the summary figure and page ----

def probabilities_axes(ax, probabilities: np.ndarray, class_names: Sequence[str],
                       clip_probabilities: np.ndarray | None = None) -> None:
    """Horizontal bars of the video's class probabilities; dots for each clip's."""
    order = np.arange(len(class_names))
    best = int(np.argmax(probabilities))
    ax.barh(order, probabilities, color=["tab:red" if c == best else "tab:gray" for c in order])
    if clip_probabilities is not None:
        for clip in clip_probabilities:
            ax.plot(clip, order, "k.", markersize=4, alpha=0.6)
    ax.set_yticks(order, labels=list(class_names))
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("probability (bars: video, dots: clips)", fontsize=8)


def prediction_summary_figure(frames: np.ndarray, landmarks: np.ndarray, flow: np.ndarray,
                              probabilities: np.ndarray, class_names: Sequence[str], title: str,
                              clip_probabilities: np.ndarray | None = None,
                              reference_landmarks: np.ndarray | None = None) -> Figure:
    """One page: class probabilities, the clip's 8 frames with predicted landmarks (red; dlib's in green
    when `reference_landmarks` [8, 68, 2] is given) and the 7 predicted flows as colours.

    frames [8, H, W] uint8; landmarks [7, 68, 2] (frames 1..7); flow [7, 2, H, W]."""
    figure = Figure(figsize=(16, 8), layout="constrained")
    top, bottom = figure.subfigures(2, 1, height_ratios=[1, 2])  # separate layouts: bars do not shift the grid
    probabilities_axes(top.add_subplot(top.add_gridspec(1, 8)[0, 1:7]), probabilities, class_names, clip_probabilities)
    grid = bottom.subplots(2, 8)
    largest = flow_scale(flow)
    for t in range(len(frames)):
        sets, colors = [], []
        if reference_landmarks is not None:
            sets.append(reference_landmarks[t])
            colors.append(GREEN)
        if t > 0:
            sets.append(landmarks[t - 1])
            colors.append(RED)
        image = draw_landmarks(frames[t], np.stack(sets), colors, zoom=2) if sets else frames[t]
        show(grid[0, t], image, f"frame {t + 1}")
    for t in range(len(flow)):
        show(grid[1, t], flow_to_color(flow[t], largest), f"flow {t + 1}\u2192{t + 2}")
    show(grid[1, len(flow)], color_wheel(), f"colour wheel\nrim = {largest:.3f} px")
    figure.suptitle(title, fontsize=12)
    return figure


def summary_html(title: str, probabilities: np.ndarray, class_names: Sequence[str],
                 images: Sequence[tuple[str, bytes, str]], table: Sequence[Sequence[str]] = (),
                 notes: Sequence[str] = ()) -> str:
    """A self-contained HTML page: probability bars, then each (heading, PNG or GIF bytes, mime type)
    image embedded as base64, then a table (first row = header) and notes."""
    esc = html.escape
    best = int(np.argmax(probabilities))
    bars = "".join(
        f'<tr><td>{esc(name)}</td><td><div class="bar{" best" if c == best else ""}" '
        f'style="width:{100 * p:.1f}%"></div></td><td>{p:.3f}</td></tr>'
        for c, (name, p) in enumerate(zip(class_names, probabilities)))
    pictures = "".join(
        f'<h2>{esc(heading)}</h2><img alt="{esc(heading)}" src="data:{mime};base64,'
        f'{base64.b64encode(data).decode("ascii")}">' for heading, data, mime in images)
    rows = "".join("<tr>" + "".join(f"<{'th' if i == 0 else 'td'}>{esc(str(cell))}</{'th' if i == 0 else 'td'}>"
                                    for cell in row) + "</tr>" for i, row in enumerate(table))
    note_items = "".join(f"<li>{esc(n)}</li>" for n in notes)
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{esc(title)}</title><style>
body {{ font-family: sans-serif; margin: 2em; max-width: 1400px; }}
table {{ border-collapse: collapse; }} td, th {{ padding: 2px 8px; text-align: left; }}
.probs td:nth-child(2) {{ width: 320px; }} .bar {{ background: #999; height: 14px; }} .bar.best {{ background: #d33; }}
.clips th, .clips td {{ border-bottom: 1px solid #ddd; }} img {{ max-width: 100%; image-rendering: pixelated; }}
</style></head><body>
<h1>{esc(title)}</h1>
<table class="probs">{bars}</table>
{pictures}
{f'<h2>Clips</h2><table class="clips">{rows}</table>' if rows else ""}
{f"<ul>{note_items}</ul>" if note_items else ""}
</body></html>
"""
