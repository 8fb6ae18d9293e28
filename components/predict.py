"""`mol predict`: run a trained MOL model on a video file or a folder of frames.

The input goes through the same steps as training data: one face alignment per video (144x144
grayscale), clips of 8 frames with stride N // 8 and the fixed evaluation crop at (8, 8) to 128x128
(components/vision/clips.py), and `normalize_video`. The video's class is the softmax of the mean of
its clips' logits.

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
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from components.errors import UserError, redact
from components.io import check_output, progress_bar, write_json, write_npz
from components.reports.prediction import write_pictures
from components.tracking.pyfunc import fetch_model_file
from components.tracking.runs import DEFAULT_DB
from components.training.checkpoint import (OFFICIAL_CLASS_NAMES, class_names, generic_class_names, load_model,
                                            load_official_checkpoint)
from components.training.devices import bf16_autocast, native_bf16, pick_device, precision_label
from components.training.scoring import probabilities
from components.vision.clips import clip_indices, crop_clips, eval_offsets
from components.vision.face import AlignedVideo, align_frames
from components.vision.frames import RejectedVideo, read_frames
from mol_model.clips import CLIP_LENGTH
from mol_model.normalize import normalize_video

OFFICIAL_SUFFIXES = {".pth", ".pt"}
REGISTERED_MODEL = "models:/mol-mer@champion"


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
    out = check_output(Path(out) if out is not None else Path("predictions") / (input.stem or "input"))
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
    offsets = eval_offsets(len(clips))  # [S, 2]
    video, _, reference = crop_clips(aligned.frames[clips], None, aligned.landmarks[clips],
                                     offsets)  # [S,8,128,128], [S,8,68,2]
    to_crop = aligned.transforms[clips]  # [S, 8, 2, 3]: source pixels -> pixels of the 128 crop
    to_crop[..., 2] -= offsets[:, None, :]
    timings["align"] = time.perf_counter() - tick
    tick = time.perf_counter()
    logits, flow, landmarks = run_model(predictor, video, batch_size, progress)
    timings["model"] = time.perf_counter() - tick

    names = predictor.class_names
    video_probs = probabilities(logits.mean(axis=0))  # [C]
    clip_probs = probabilities(logits)  # [S, C]
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



# ---- the training pipeline's preprocessing ----

def align_input(frames: list[np.ndarray], input: Path) -> AlignedVideo:
    """`mol align`'s alignment (one similarity transform per video), with a no-face video as a UserError."""
    try:
        return align_frames(frames)
    except RejectedVideo as e:
        raise UserError(f"{input}: {e}; pass a video showing one frontal face") from None



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
        with fetch_model_file(model) as path:
            network, names = _load_model_file(path, target, classes)
    else:
        path = Path(model)
        if path.is_dir():
            path = _model_file_in(path)
        if not path.is_file():
            raise UserError(f"model {model} does not exist; pass a model file from `mol train`, an MLflow "
                            "models:/ URI, or an official .pth checkpoint")
        if path.suffix.lower() in OFFICIAL_SUFFIXES:
            if classes is None:
                raise UserError(f"{path.name} is an official MOL checkpoint, which does not record its class "
                                "count; pass --classes 3 or --classes 5 (and --class-names for 5)")
            network = load_official_checkpoint(path, classes).to(target)
            names = OFFICIAL_CLASS_NAMES.get(classes) or generic_class_names(classes)
        else:
            network, names = _load_model_file(path, target, classes)
        model = str(path)
    if class_names is not None:
        if len(class_names) != len(names):
            raise UserError(f"--class-names gives {len(class_names)} names but the model has {len(names)} classes")
        names = class_names
    return Predictor(network, list(names), redact(model), target)


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


def _load_model_file(path: Path, device: torch.device, classes: int | None = None) -> tuple[torch.nn.Module, list[str]]:
    network, config = load_model(path, device)
    if classes is not None and classes != config["num_classes"]:  # --classes is for .pth files, which lack it
        raise UserError(f"--classes {classes} does not match the model, which records {config['num_classes']} "
                        "classes itself; drop --classes (it is only for official .pth checkpoints)")
    return network, class_names(config)


def run_model(predictor: Predictor, video: np.ndarray, batch_size: int = 4,
              progress: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """uint8 clips [S, 8, 128, 128] -> logits [S, C], flow [S, 7, 2, 128, 128], landmarks [S, 7, 68, 2]."""
    outputs = []
    starts = range(0, len(video), batch_size)
    with torch.inference_mode(), bf16_autocast(predictor.device):  # bf16 only in the flow decoder
        for first in progress_bar(starts, desc="predict", unit="batch", enabled=progress, leave=False, delay=1):
            batch = torch.from_numpy(np.ascontiguousarray(video[first:first + batch_size]))[:, None]  # [B,1,8,H,W]
            out = predictor.model(normalize_video(batch).to(predictor.device))
            outputs.append([t.float().cpu().numpy() for t in (out.logits, out.flow, out.landmarks)])
    return tuple(np.concatenate(parts) for parts in zip(*outputs))


def _named(probabilities: np.ndarray, names: list[str]) -> dict[str, float]:
    return {name: round(float(p), 6) for name, p in zip(names, probabilities)}


def _split_names(text: str | None) -> list[str] | None:
    if text is None:
        return None
    names = [name.strip() for name in text.split(",")]
    if not all(names) or len(set(names)) != len(names):
        raise UserError(f"--class-names '{text}' must be distinct non-empty names separated by commas")
    return names



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

