"""`mol predict`: run a trained MOL model on a video file or a folder of frames.

The input goes through the same steps as training data: one face alignment per video (144x144
grayscale), clips of 8 frames with stride N // 8, the fixed evaluation crop at (8, 8) to 128x128,
and `normalize_video`. The video's class is the softmax of the mean of its clips' logits.

Model sources (`--model`): a model file from `mol train` (`.safetensors`, or the run folder holding
`model.safetensors`), an MLflow model URI (`models:/mol-mer@champion`, the default when a tracking
store is present), or a checkpoint of the official code (`.pth`/`.pt` state dict, with `--classes`).

Writes to OUT: prediction.json, outputs.npz (clips, logits, predicted flow and landmarks), and the
pictures of one clip: flow_color.png, flow_arrows.png, landmarks.png, clip.gif (or .mp4),
summary.png and the self-contained summary.html.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

from components import visualize as vis
from components.align import AlignedVideo, RejectedVideo, align_frames, read_gray
from components.checkpoint import load_model
from components.datasets import frame_number, list_frames
from components.devices import bf16_autocast, native_bf16, pick_device, precision_label
from components.datasets.manifest import IMAGE_SUFFIXES
from components.errors import UserError
from components.fileio import atomic_path, write_json, write_npz, write_text
from components.labels import CLIP_LENGTH, CROP_SIZE, EVAL_OFFSET, clip_indices
from components.tracking import DEFAULT_DB, tracking_uri
from mol_model import MOL, load_official_state_dict
from mol_model.normalize import normalize_video

OFFICIAL_SUFFIXES = {".pth", ".pt"}
REGISTERED_MODEL = "models:/mol-mer@champion"
# Class order of the official code's 3-class data (surprise, positive, negative folders in that order).
# Its 5-class order depends on the data set (CASME II vs SAMM), so 5-class files need --class-names.
OFFICIAL_CLASS_NAMES = {3: ["surprise", "positive", "negative"]}
ZOOM = 3  # pictures show the 128x128 crop enlarged this much


@dataclass
class Predictor:
    model: torch.nn.Module  # MOL in eval mode on `device`
    class_names: list[str]
    source: str  # what was loaded, for the report
    device: torch.device


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", help="a video file (mp4, avi, ...) or a folder of frames (ordered by the number "
                                      "in their names)")
    parser.add_argument("--model", default=None,
                        help="model file from `mol train` (runs/fold_00/model.safetensors or its folder), an "
                             f"MLflow URI ({REGISTERED_MODEL}: the default when mlflow.db is here or "
                             "MLFLOW_TRACKING_URI is set), or an official MOL checkpoint (.pth/.pt, needs --classes)")
    parser.add_argument("--out", default=None,
                        help="folder for prediction.json and the pictures (default: predictions/<input name>)")
    parser.add_argument("--start", "--onset", dest="start", type=int, default=None,
                        help="first frame to use (frame number: the number in the file names for a folder, "
                             "0-based position for a video); default: the first")
    parser.add_argument("--end", "--offset", dest="end", type=int, default=None,
                        help="last frame to use (inclusive, numbered as --start); default: the last")
    parser.add_argument("--format", choices=["text", "json"], default="text",
                        help="stdout: a readable summary (text, default) or the prediction as JSON (json)")
    parser.add_argument("--device", default="auto",
                        help="torch device: auto (CUDA when available, else CPU; default), cpu, cuda, cuda:1, mps")
    parser.add_argument("--classes", type=int, choices=[3, 5], default=None,
                        help="class count of an official .pth checkpoint (it does not record it)")
    parser.add_argument("--class-names", default=None,
                        help="comma-separated class names in the model's output order; needed for a 5-class "
                             "official checkpoint, optional otherwise (overrides the names in the model file)")
    parser.add_argument("--batch-size", type=int, default=4, help="clips per forward pass (default 4)")
    parser.add_argument("--animation", choices=["gif", "mp4", "none"], default="gif",
                        help="animated clip with overlays: clip.gif (default), clip.mp4, or none")
    parser.add_argument("--no-pictures", dest="pictures", action="store_false",
                        help="write only prediction.json and outputs.npz (faster)")


def run(args: argparse.Namespace) -> int:
    result = predict(args.input, model=args.model, out=args.out, start=args.start, end=args.end,
                     device=args.device, classes=args.classes, class_names=_split_names(args.class_names),
                     batch_size=args.batch_size, pictures=args.pictures, animation=args.animation,
                     progress=args.format == "text")
    print(json.dumps(result, indent=2) if args.format == "json" else format_text(result))
    return 0


def predict(input: str | Path, model: str | None = None, out: str | Path | None = None,
            start: int | None = None, end: int | None = None, device: str = "auto",
            classes: int | None = None, class_names: list[str] | None = None, batch_size: int = 4,
            pictures: bool = True, animation: str = "gif", progress: bool = True) -> dict:
    """Predict the micro-expression of one video; writes OUT and returns the prediction (as in prediction.json)."""
    timings: dict[str, float] = {}
    tick = time.perf_counter()
    input = Path(input)
    out = Path(out) if out is not None else Path("predictions") / (input.stem or "input")
    if batch_size < 1:
        raise UserError(f"--batch-size must be at least 1 (got {batch_size})")
    if animation not in {"gif", "mp4", "none"}:
        raise UserError(f"unknown animation format '{animation}'; choose gif, mp4 or none")
    frames, numbers = read_frames(input, start, end)  # N x [H, W] uint8, [N]
    if len(frames) < CLIP_LENGTH:
        raise UserError(f"{input} has only {len(frames)} frame(s) in the chosen range; a clip needs at least "
                        f"{CLIP_LENGTH}: widen --start/--end or pass a longer video")
    timings["read"] = time.perf_counter() - tick

    tick = time.perf_counter()
    predictor = load_predictor(model, classes, class_names, device)
    timings["load_model"] = time.perf_counter() - tick

    tick = time.perf_counter()
    aligned = align_input(frames, input)  # frames [N, 144, 144], landmarks [N, 68, 2]
    clips = clip_indices(len(frames))  # [S, 8] frame indices
    video, reference = eval_crop(aligned.frames[clips], aligned.landmarks[clips])  # [S,8,128,128], [S,8,68,2]
    to_crop = aligned.transforms[clips]  # [S, 8, 2, 3]: source pixels -> pixels of the 128 crop
    to_crop[..., 2] -= EVAL_OFFSET
    timings["align"] = time.perf_counter() - tick
    tick = time.perf_counter()
    logits, flow, landmarks = run_model(predictor, video, batch_size, progress)
    timings["model"] = time.perf_counter() - tick

    names = predictor.class_names
    video_probs = _softmax(logits.mean(axis=0))  # [C]
    clip_probs = _softmax(logits)  # [S, C]
    best = int(video_probs.argmax())
    shown = int(clip_probs[:, best].argmax())  # the clip most sure of the video's class gets the pictures
    result = {
        "input": str(input),
        "model": predictor.source,
        "class_names": names,
        "predicted_class": names[best],
        "predicted_index": best,
        "probabilities": _named(video_probs, names),
        "frames": {"count": len(frames), "first": int(numbers[0]), "last": int(numbers[-1]),
                   "stride": len(frames) // CLIP_LENGTH, "without_face": aligned.interpolated},
        "clips": [{"clip": j, "frame_numbers": [int(numbers[i]) for i in clips[j]],
                   "predicted_class": names[int(clip_probs[j].argmax())],
                   "probabilities": _named(clip_probs[j], names)} for j in range(len(clips))],
        "picture_clip": shown,
        "device": str(predictor.device),
        "precision": precision_label(native_bf16(predictor.device)),
        "out": str(out),
        "files": {"prediction": "prediction.json", "outputs": "outputs.npz"},
    }
    write_npz(out / "outputs.npz", compressed=True, video=video, reference_landmarks=reference,
              logits=logits, flow=flow.astype(np.float16), landmarks=landmarks, transforms=to_crop,
              frame_numbers=np.asarray(numbers)[clips], class_names=np.array(names))
    if pictures:
        tick = time.perf_counter()
        result["files"].update(write_pictures(out, result, video[shown], flow[shown], landmarks[shown],
                                              reference[shown], video_probs, clip_probs, animation))
        timings["pictures"] = time.perf_counter() - tick
    result["seconds"] = {k: round(v, 3) for k, v in timings.items()}
    write_json(out / "prediction.json", result)
    return result


# ---- input ----

def read_frames(input: Path, start: int | None, end: int | None) -> tuple[list[np.ndarray], list[int]]:
    """The grayscale frames numbered start..end (inclusive) of a video file or a folder of frames,
    with their frame numbers. Folders: the number in each file name; videos: 0-based position."""
    if start is not None and end is not None and start > end:
        raise UserError(f"--start {start} is after --end {end}; give a first frame not after the last")
    if input.is_dir():
        frames, numbers = _read_folder(input, start, end)
    elif input.is_file():
        if input.suffix.lower() in IMAGE_SUFFIXES:
            raise UserError(f"{input} is a single image; pass a video file or a folder of frames")
        frames, numbers = _read_video(input, start, end)
    else:
        raise UserError(f"{input} does not exist; pass a video file or a folder of frames")
    if not frames:
        raise UserError(f"{input} has no frames between {start if start is not None else 'the first'} and "
                        f"{end if end is not None else 'the last'}; check --start/--end")
    return frames, numbers


def _in_range(number: int, start: int | None, end: int | None) -> bool:
    return (start is None or number >= start) and (end is None or number <= end)


def _read_folder(folder: Path, start: int | None, end: int | None) -> tuple[list[np.ndarray], list[int]]:
    paths = list_frames(folder)
    if not paths:
        raise UserError(f"{folder} holds no image files with a frame number in their names; pass a folder "
                        "of frames (e.g. img001.jpg, img002.jpg, ...) or a video file")
    paths = [p for p in paths if _in_range(frame_number(p), start, end)]
    try:
        return [read_gray(p) for p in paths], [frame_number(p) for p in paths]
    except RejectedVideo as e:
        raise UserError(f"{folder}: {e}; remove or replace that file") from None


def _read_video(path: Path, start: int | None, end: int | None) -> tuple[list[np.ndarray], list[int]]:
    capture = cv2.VideoCapture(str(path))
    frames, numbers = [], []
    try:
        if not capture.isOpened():
            raise UserError(f"{path} is not a video OpenCV can read; pass an mp4/avi file or a folder of frames")
        position = 0
        while end is None or position <= end:
            ok, frame = capture.read()
            if not ok:
                break
            if _in_range(position, start, end):
                frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) if frame.ndim == 3 else frame)
                numbers.append(position)
            position += 1
    finally:
        capture.release()
    if position == 0:
        raise UserError(f"{path} holds no readable video frames; pass an mp4/avi file or a folder of frames")
    return frames, numbers


# ---- the training pipeline's preprocessing ----

def align_input(frames: list[np.ndarray], input: Path) -> AlignedVideo:
    """`mol align`'s alignment (one similarity transform per video), with a no-face video as a UserError."""
    try:
        return align_frames(frames)
    except RejectedVideo as e:
        raise UserError(f"{input}: {e}; pass a video showing one frontal face") from None


def eval_crop(frames: np.ndarray, landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The fixed evaluation crop of `mol labels`: [..., 144, 144] frames -> [..., 128, 128], landmarks
    [..., 68, 2] moved into the crop."""
    x, y = EVAL_OFFSET
    return frames[..., y:y + CROP_SIZE, x:x + CROP_SIZE], landmarks - np.array(EVAL_OFFSET, np.float32)


# ---- the model ----

def tracking_store_present() -> bool:
    return bool(os.environ.get("MLFLOW_TRACKING_URI")) or Path(DEFAULT_DB).is_file()


def load_predictor(model: str | None, classes: int | None = None, class_names: list[str] | None = None,
                   device: str = "auto") -> Predictor:
    """Load a model from any of the three sources (see the module docstring)."""
    target = pick_device(device)
    if model is None:
        if not tracking_store_present():
            raise UserError("no --model given and no MLflow tracking store here (no mlflow.db, MLFLOW_TRACKING_URI "
                            "unset); pass --model runs/fold_00/model.safetensors or an MLflow models:/ URI")
        model = REGISTERED_MODEL
    if _is_uri(model):
        network, names = _load_mlflow(model, target)
    else:
        path = Path(model)
        if path.is_dir():
            path = _model_file_in(path)
        if not path.is_file():
            raise UserError(f"model {model} does not exist; pass a model file from `mol train`, an MLflow "
                            "models:/ URI, or an official .pth checkpoint")
        if path.suffix.lower() in OFFICIAL_SUFFIXES:
            network, names = _load_official(path, classes, target)
        else:
            network, names = _load_model_file(path, target)
        model = str(path)
    if class_names is not None:
        if len(class_names) != len(names):
            raise UserError(f"--class-names gives {len(class_names)} names but the model has {len(names)} classes")
        names = class_names
    return Predictor(network, list(names), model, target)


def _is_uri(model: str) -> bool:
    return model.startswith(("models:/", "runs:/")) or "://" in model


def _model_file_in(folder: Path) -> Path:
    """A run folder's model file: model.safetensors, else its only .safetensors file."""
    if (folder / "model.safetensors").is_file():
        return folder / "model.safetensors"
    candidates = sorted(folder.glob("*.safetensors"))
    if len(candidates) != 1:
        raise UserError(f"{folder} holds {len(candidates)} .safetensors files; pass the model file itself")
    return candidates[0]


def _load_model_file(path: Path, device: torch.device) -> tuple[torch.nn.Module, list[str]]:
    network, config = load_model(path, device)
    return network, config.get("class_names") or _generic_names(int(config["num_classes"]))


def _load_official(path: Path, classes: int | None, device: torch.device) -> tuple[torch.nn.Module, list[str]]:
    if classes is None:
        raise UserError(f"{path.name} is an official MOL checkpoint, which does not record its class count; "
                        "pass --classes 3 or --classes 5 (and --class-names for 5)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)  # weights only: no code is unpickled
    except Exception as e:  # torch raises pickle, zip and runtime errors alike for a bad file
        raise UserError(f"{path} is not a readable PyTorch state dict ({str(e).splitlines()[0]})") from None
    if not isinstance(state, dict):
        raise UserError(f"{path} holds a {type(state).__name__}, not a state dict of the official MOL code")
    network = MOL(num_classes=classes)
    try:
        load_official_state_dict(network, state)
    except ValueError as e:
        raise UserError(f"{path}: {e} (is --classes {classes} right?)") from None
    return network.to(device).eval(), OFFICIAL_CLASS_NAMES.get(classes) or _generic_names(classes)


def _load_mlflow(uri: str, device: torch.device) -> tuple[torch.nn.Module, list[str]]:
    """Fetch an MLflow model's artifacts and load the safetensors model file inside (never a pickle)."""
    import mlflow  # imported here: it takes seconds, and only this model source needs it
    from mlflow.exceptions import MlflowException

    store = tracking_uri()
    with tempfile.TemporaryDirectory(prefix="mol-predict-") as tmp:
        try:
            local = Path(mlflow.artifacts.download_artifacts(
                artifact_uri=uri, dst_path=tmp, tracking_uri=store,
                registry_uri=os.environ.get("MLFLOW_REGISTRY_URI") or store))
        except MlflowException as e:
            raise UserError(f"cannot fetch MLflow model {uri} from {store} ({e.message.splitlines()[0]}); "
                            "check the name and alias, or pass --model with a model file") from None
        files = sorted(local.rglob("*.safetensors")) if local.is_dir() else [local]
        if not files or files[0].suffix != ".safetensors":
            raise UserError(f"MLflow model {uri} holds no .safetensors model file (only pyfunc models logged by "
                            "components.pyfunc.log_pyfunc_model do); register it again or pass --model")
        return _load_model_file(files[0], device)


def run_model(predictor: Predictor, video: np.ndarray, batch_size: int = 4,
              progress: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """uint8 clips [S, 8, 128, 128] -> logits [S, C], flow [S, 7, 2, 128, 128], landmarks [S, 7, 68, 2]."""
    outputs = []
    starts = range(0, len(video), batch_size)
    with torch.inference_mode(), bf16_autocast(predictor.device):  # bf16 only in the flow decoder
        for first in tqdm(starts, "predict", unit="batch", disable=not progress, leave=False, delay=1):
            batch = torch.from_numpy(np.ascontiguousarray(video[first:first + batch_size]))[:, None]  # [B,1,8,H,W]
            out = predictor.model(normalize_video(batch).to(predictor.device))
            outputs.append([t.float().cpu().numpy() for t in (out.logits, out.flow, out.landmarks)])
    return tuple(np.concatenate(parts) for parts in zip(*outputs))


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def _named(probabilities: np.ndarray, names: list[str]) -> dict[str, float]:
    return {name: round(float(p), 6) for name, p in zip(names, probabilities)}


def _generic_names(count: int) -> list[str]:
    return [f"class_{i}" for i in range(count)]


def _split_names(text: str | None) -> list[str] | None:
    if text is None:
        return None
    names = [name.strip() for name in text.split(",")]
    if not all(names) or len(set(names)) != len(names):
        raise UserError(f"--class-names '{text}' must be distinct non-empty names separated by commas")
    return names


# ---- pictures ----

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
    figure = vis.prediction_summary_figure(frames, landmarks, flow, video_probs, result["class_names"], title,
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
    write_text(out / "summary.html", vis.summary_html(title, video_probs, result["class_names"], images,
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


def write_bytes(path: Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


# ---- stdout ----

def format_text(result: dict) -> str:
    probabilities = result["probabilities"]
    width = max(len(name) for name in probabilities)
    frames = result["frames"]
    lines = [f"{Path(result['input']).name}: {result['predicted_class']} "
             f"(p = {probabilities[result['predicted_class']]:.3f})"]
    lines += [f"  {name:<{width}}  {p:.3f}  {'#' * round(40 * p)}" for name, p in probabilities.items()]
    lines.append(f"{len(result['clips'])} clip(s) of 8 frames from frames {frames['first']}..{frames['last']} "
                 f"(stride {frames['stride']}); per clip:")
    for clip in result["clips"]:
        p = clip["probabilities"][clip["predicted_class"]]
        lines.append(f"  clip {clip['clip']} (frames {', '.join(map(str, clip['frame_numbers']))}): "
                     f"{clip['predicted_class']} {p:.3f}")
    if frames["without_face"]:
        lines.append(f"note: no face detected in {frames['without_face']} frame(s); their landmarks were interpolated")
    lines.append(f"model: {result['model']}")
    lines.append(f"wrote {', '.join(str(Path(result['out']) / f) for f in result['files'].values())}")
    return "\n".join(lines)
