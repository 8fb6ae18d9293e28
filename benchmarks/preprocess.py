"""`mol bench preprocess`: how fast `mol align` + `mol labels` are per video, against the official
recipe on the same videos in the same run, and how close their flow labels are.

Ours runs as users run it: `--workers` processes (default: one per core) over the batch of videos.
The official way runs as its `dataset.py` does, in one process (OpenCV's own threads), in two passes
per video, because the official script is run once to make the training set and once for the test
set: each pass detects (dlib, upsampled once) and aligns every frame its clips use, then runs TV-L1
on every 128x128 crop, 5 random crops per clip in the training pass and the fixed (8, 8) crop in the
test pass, so each frame pair 6 times. Its TV-L1 runs on the crops of OUR aligned frames at OUR crop
offsets, so the flow difference printed isolates "TV-L1 once per 144x144 pair, then cropped" against
"TV-L1 per crop". Per-run start-up counts on both sides: ours happens inside the stage runs (worker
processes importing and loading dlib's models); the official script's (Python, torch, dlib's models)
is timed in a fresh Python, once per pass. Per-video figures are the batch's wall (or CPU: this
process and its children) time divided by its videos.

`--quality` instead measures label quality against ground truth on the synthetic data set.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from components.align import align
from components.config import DIFFICULTY_PX, AlignSettings, DataSettings, LabelsSettings, SynthSettings
from components.data import frame_number, list_frames, read_manifest, resolve_frames_dir
from components.errors import UserError
from components.ingest import ingest
from components.io import default_workers, sample_file_stem
from components.labels import labels
from components.synth import synth
from components.synthetic.truth import inverse_affine, load_ground_truth, true_aligned_flow
from components.vision.clips import CROP_SIZE, EVAL_OFFSET, clip_indices, eval_crops, random_offsets, sample_key
from components.vision.face import (ALIGN_SIZE, alignment_matrix, detect_faces, detect_landmarks, landmarks_in_box,
                                    predictor_path, transform_points)
from components.vision.flow import FLOW_METHODS
from components.vision.frames import read_gray
from mol_model.metrics import landmark_nme

SYNTH_FRAMES = (16, 24)  # frames per synthetic video: 2-3 clips each, so the runs stay short
TVL1_METHODS = ("tvl1", "tvl1-dis")  # our backends meant to give the official TV-L1 labels
DIS_VS_TVL1 = "tvl1-dis vs tvl1"  # the two compared directly, on full 144x144 frames both
FLOW_TOLERANCE = 0.05  # px, mean |flow difference| allowed between those labels and per-crop TV-L1
INTERIOR_MARGIN = 16  # px from the crop border: inside it, crop-vs-full-frame flow differences are tiny
SPEED_TARGET = 10.0  # per-video speed-up asked of our preprocessing over the official recipe
# what `python dataset.py` (the official preprocessing script) does before its first video
OFFICIAL_TRAIN_CROPS = 5  # the official recipe's random crops per clip (params-paper.yaml train.crops)
OFFICIAL_STARTUP = ("import cv2, dlib, numpy, torch, torch.nn, torch.utils.data; "
                    "dlib.get_frontal_face_detector(); dlib.shape_predictor({path!r})")


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--manifest", default=None,
                        help="measure on the first --videos rows of this manifest (default: a fresh "
                             "synthetic data set from `mol synth`)")
    parser.add_argument("--videos", type=int, default=4,
                        help="videos to process (default 4; with --quality: per difficulty)")
    parser.add_argument("--workers", type=int, default=None,
                        help="our worker processes (default: all cores, as `mol align` and `mol labels`); "
                             "the official recipe always runs in one process")
    parser.add_argument("--frame-size", default=None, metavar="WxH",
                        help="speed run on the synthetic set: place its 240x240 frames in WxH frames (e.g. 640x480, "
                             "CASME II's size) so that full-frame face detection costs what it costs on a real "
                             "data set")
    parser.add_argument("--quality", action="store_true",
                        help="measure flow EPE and landmark error against the synthetic ground truth instead")
    parser.add_argument("--difficulties", default=None,
                        help="with --quality: comma-separated difficulty levels (default: every level)")


def run(args: argparse.Namespace) -> int:
    if args.videos < 1:
        raise UserError(f"--videos must be at least 1 (got {args.videos})")
    if args.frame_size and (args.manifest or args.quality):
        raise UserError("--frame-size applies to the speed run on the synthetic set only; drop it, or "
                        "--manifest and --quality")
    with tempfile.TemporaryDirectory(prefix="mol-bench-") as tmp:
        if args.quality:
            difficulties = args.difficulties.split(",") if args.difficulties else list(DIFFICULTY_PX)
            print(quality_table(Path(tmp), difficulties, args.videos, args.workers))
            return 0
        frame_size = parse_frame_size(args.frame_size) if args.frame_size else None
        manifest = Path(args.manifest) if args.manifest else synthetic_manifest(Path(tmp), args.videos,
                                                                                 frame_size=frame_size)
        print(speed_table(manifest, Path(tmp), args.videos, args.workers))
    return 0


def synthetic_manifest(root: Path, videos: int, difficulty: str = "easy",
                       frame_size: tuple[int, int] | None = None) -> Path:
    """A small synthetic data set (CASME II layout, one subject) read by the CASME II adapter; with
    `frame_size` (W, H) every frame is placed in the middle of a frame that large (edges replicated)."""
    made = synth(root / "synth", SynthSettings(subjects=1, videos_per_subject=videos, seed=0, difficulty=difficulty,
                                               frames_min=SYNTH_FRAMES[0], frames_max=SYNTH_FRAMES[1]))
    if frame_size:
        for path in Path(made.frames_root).rglob("*.jpg"):
            cv2.imwrite(str(path), centred_in(cv2.imread(str(path)), frame_size))
    ingest(DataSettings(dataset="casme2", root=made.frames_root, annotations=made.annotations), root / "manifest.csv")
    return root / "manifest.csv"


def parse_frame_size(text: str) -> tuple[int, int]:
    """'640x480' -> (640, 480)."""
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise UserError(f"--frame-size takes WIDTHxHEIGHT, like 640x480 (got '{text}')") from None
    if width < 240 or height < 240:
        raise UserError(f"--frame-size must be at least 240x240, the synthetic frames' size (got '{text}')")
    return width, height


def centred_in(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """`image` [h, w, 3] in the middle of a (W, H) frame, its edge pixels replicated outwards."""
    (width, height), (h, w) = size, image.shape[:2]
    top, left = (height - h) // 2, (width - w) // 2
    return cv2.copyMakeBorder(image, top, height - h - top, left, width - w - left, cv2.BORDER_REPLICATE)


@dataclasses.dataclass
class Cost:
    wall: float = 0.0  # seconds
    cpu: float = 0.0   # CPU seconds of this process and of the worker processes it waited for

    def __add__(self, other: Cost) -> Cost:
        return Cost(self.wall + other.wall, self.cpu + other.cpu)


def cpu_seconds() -> float:
    """CPU time used so far by this process and by the children it has waited for (worker processes)."""
    used = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    return sum(u.ru_utime + u.ru_stime for u in used)


def timed(function: Callable, *args, **kwargs) -> tuple[object, Cost]:
    wall, cpu = time.perf_counter(), cpu_seconds()
    result = function(*args, **kwargs)
    return result, Cost(time.perf_counter() - wall, cpu_seconds() - cpu)


def speed_table(manifest: Path, work: Path, videos: int, workers: int | None) -> str:
    """Our stages (every flow backend) and the official recipe on the same videos, and the
    difference between our TV-L1 labels and the official way's."""
    table = read_manifest(manifest).head(videos)
    subset = work / "bench_manifest.csv"
    table.assign(frames_dir=[str(resolve_frames_dir(manifest, d).absolute()) for d in table.frames_dir]
                 ).to_csv(subset, index=False)

    _, align_cost = timed(align, subset, work / "aligned", workers=workers, force=True)
    ours = {method: timed(labels, subset, work / "aligned", work / f"clips_{method}", LabelsSettings(flow=method),
                          workers=workers, force=True) for method in FLOW_METHODS}
    n, frames = ours["tvl1"][0]["labelled"], ours["tvl1"][0]["frames"]
    if n == 0:
        raise UserError(f"none of the first {videos} videos of {manifest} could be aligned and labelled; "
                        "check their rejects with `mol align`")
    official = official_way(subset, work)

    processes = min(workers or default_workers(), len(table))
    official_total = official["startup"] + official["align"] + official["flow"]
    rows = [("ours: align (tracked, one transform per video)", processes, align_cost)]
    rows += [(f"ours: labels {m} (flow once per pair)", processes, cost) for m, (_, cost) in ours.items()]
    rows += [("official: start-up of its two runs (imports, dlib models)", 1, official["startup"]),
             ("official: align, training + test pass (every frame twice)", 1, official["align"]),
             ("official: TV-L1 per crop (5 training + 1 test crop)", 1, official["flow"]),
             ("official: total", 1, official_total)]
    lines = [f"preprocess benchmark: {n} videos, {frames} frames, {official['pairs']} clip pairs; load average "
             f"{os.getloadavg()[0]:.1f} (other jobs on the machine slow both sides)",
             "| step | processes | wall s/video | CPU s/video |", "|---|---:|---:|---:|"]
    lines += [f"| {name} | {p} | {cost.wall / n:.2f} | {cost.cpu / n:.2f} |" for name, p, cost in rows]
    lines += ["", "| ours (align + labels) vs official, per video | wall | speed-up (wall) | speed-up (CPU) |",
              "|---|---:|---:|---:|"]
    speedup = {}
    for method, (_, cost) in ours.items():
        mine = align_cost + cost
        speedup[method] = official_total.wall / mine.wall
        lines.append(f"| {method} | {mine.wall / n:.2f} s vs {official_total.wall / n:.2f} s | "
                     f"{speedup[method]:.1f}x | {official_total.cpu / mine.cpu:.1f}x |")
    # The official code as written runs TV-L1 on 10 crops per pair, not 6: its test run also takes 5 random
    # crops per clip (dataset.py builds videoDataset without passing mode_train, which defaults to True).
    as_written = official_total.wall + official["flow"].wall * (2 * OFFICIAL_TRAIN_CROPS / (OFFICIAL_TRAIN_CROPS + 1) - 1)
    lines.append(f"official code as written (its test run also takes {OFFICIAL_TRAIN_CROPS} random crops: TV-L1 "
                 f"{2 * OFFICIAL_TRAIN_CROPS}x per pair), estimated from the measured time per crop: {as_written / n:.2f} s "
                 "per video; ours " + ", ".join(f"{m} {as_written / (align_cost + c).wall:.1f}x" for m, (_, c) in ours.items()))
    lines += ["", f"| flow labels compared on the same crops (px) | mean abs difference | {INTERIOR_MARGIN}+ px "
              "inside the crop: mean | ... 99th percentile | whole crop: 99th percentile | max |", "|---|---:|---:|---:|---:|---:|"]
    for name, d in official["difference"].items():
        compared = name if name == DIS_VS_TVL1 else f"{name} vs official way (TV-L1 per crop)"
        lines.append(f"| {compared} | {d['mean']:.4f} | {d['interior_mean']:.4f} | {d['interior_p99']:.3f} | "
                     f"{d['p99']:.3f} | {d['max']:.2f} |")
    for method in TVL1_METHODS:
        within = official["difference"][method]["mean"] <= FLOW_TOLERANCE
        met = within and speedup[method] >= SPEED_TARGET
        lines.append(f"{method}: labels {'within' if within else 'OUTSIDE'} the {FLOW_TOLERANCE} px tolerance (mean "
                     f"abs difference), {speedup[method]:.1f}x faster per video: the {SPEED_TARGET:.0f}x target is "
                     f"{'met' if met else 'NOT met'}")
    return "\n".join(lines)


def official_startup() -> Cost:
    """The official script's fixed cost per run: Python, its imports and dlib's two models."""
    command = [sys.executable, "-c", OFFICIAL_STARTUP.format(path=str(predictor_path()))]
    return timed(subprocess.run, command, check=True)[1]


def official_align(paths: list[Path]) -> np.ndarray:
    """The official preprocessing of frames: BGR read, dlib on RGB (upsample 1) on every full frame,
    one alignment per frame, grayscale after warping. uint8 [n, 144, 144] (frames with a face)."""
    aligned = []
    for path in paths:
        bgr = cv2.imread(str(path))
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        boxes = detect_faces(rgb, upsample=1)
        if not boxes:  # the official code crashes here; the benchmark just skips the frame
            continue
        matrix = alignment_matrix(landmarks_in_box(rgb, boxes[0]))
        warped = cv2.warpAffine(bgr, matrix, (ALIGN_SIZE, ALIGN_SIZE), borderValue=(128, 128, 128))
        aligned.append(cv2.cvtColor(warped, cv2.COLOR_BGR2GRAY))
    return np.stack(aligned) if aligned else np.zeros((0, ALIGN_SIZE, ALIGN_SIZE), np.uint8)


def crop_flows(clip: np.ndarray, offset: tuple[int, int]) -> np.ndarray:
    """The official flow labels of one 128x128 crop of a clip [8, 144, 144]: a new TV-L1 (default
    parameters) on each consecutive pair, as its compute_TVL1 -> [7, 2, 128, 128]."""
    x, y = offset
    crops = clip[:, y:y + CROP_SIZE, x:x + CROP_SIZE]
    return np.stack([cv2.optflow.DualTVL1OpticalFlow_create().calc(a, b, None).transpose(2, 0, 1)
                     for a, b in zip(crops[:-1], crops[1:])])


def official_way(manifest: Path, work: Path) -> dict:
    """Time the official recipe (training pass, then test pass) on the videos of `manifest` that our
    stages labelled, and compare its flows with our TV-L1 labels on the same crops."""
    startup = official_startup() + official_startup()  # the training run, then the test run
    align_cost, flow_cost, pairs = Cost(), Cost(), 0
    differences: dict[str, list[np.ndarray]] = {name: [] for name in (*TVL1_METHODS, DIS_VS_TVL1)}
    detect_landmarks(np.zeros((64, 64), np.uint8))  # load dlib's models outside the timed part
    for row in read_manifest(manifest).itertuples():
        stem = sample_file_stem(row.sample_id)
        if not (work / "clips_tvl1" / f"{stem}.npz").is_file():
            continue
        with np.load(work / "aligned" / f"{stem}.npz") as ours_aligned:
            frames, numbers = ours_aligned["frames"], set(ours_aligned["frame_numbers"].tolist())
        ours = {}
        for method in TVL1_METHODS:
            with np.load(work / f"clips_{method}" / f"{stem}.npz") as clips_file:
                ours[method] = clips_file["flow"]  # [C, 7, 2, 144, 144]
        paths = [p for p in list_frames(resolve_frames_dir(manifest, row.frames_dir)) if frame_number(p) in numbers]
        clips = clip_indices(len(frames))
        clip_paths = [paths[i] for i in np.sort(clips.ravel())]  # the frames its clips use
        passes = [[(c, tuple(offset)) for c in range(len(clips))  # training pass: 5 random crops per clip
                   for offset in random_offsets([0, sample_key(row.sample_id), c], OFFICIAL_TRAIN_CROPS)],
                  [(c, EVAL_OFFSET) for c in range(len(clips))]]  # test pass: the fixed crop of every clip
        official = []
        for views in passes:
            _, cost = timed(official_align, clip_paths)
            align_cost += cost
            flows, cost = timed(lambda: [crop_flows(frames[clips[c]], tuple(offset)) for c, offset in views])
            flow_cost += cost
            official += flows
        pairs += len(clips) * (clips.shape[1] - 1)

        mine = {m: [flow[c][..., y:y + CROP_SIZE, x:x + CROP_SIZE].astype(np.float32)
                    for views in passes for c, (x, y) in views] for m, flow in ours.items()}
        compared = [(m, mine[m], official) for m in TVL1_METHODS] + [(DIS_VS_TVL1, mine["tvl1-dis"], mine["tvl1"])]
        for name, flows, reference in compared:  # the same crops in the same order
            differences[name] += [np.linalg.norm(a - b, axis=1) for a, b in zip(flows, reference)]  # [7, 128, 128]
    return {"startup": startup, "align": align_cost, "flow": flow_cost, "pairs": pairs,
            "difference": {name: difference_stats(np.stack(d)) for name, d in differences.items()}}


def difference_stats(difference: np.ndarray) -> dict:
    """Summary of |flow difference| [..., 128, 128] (px): whole crop and away from its borders."""
    inside = difference[..., INTERIOR_MARGIN:-INTERIOR_MARGIN, INTERIOR_MARGIN:-INTERIOR_MARGIN]
    return {"values": difference.size, "mean": float(difference.mean()), "p99": float(np.percentile(difference, 99)),
            "max": float(difference.max()), "interior_mean": float(inside.mean()),
            "interior_p99": float(np.percentile(inside, 99))}


# ---- label quality against the synthetic ground truth ----

def quality_table(work: Path, difficulties: list[str], videos: int, workers: int | None) -> str:
    """A markdown table: per difficulty, flow-label EPE per backend and landmark errors."""
    unknown = [d for d in difficulties if d not in DIFFICULTY_PX]
    if unknown:
        raise UserError(f"unknown difficulty {unknown}; choose from {', '.join(DIFFICULTY_PX)}")
    results = {d: label_quality(work / d, d, videos, workers) for d in difficulties}
    columns = ["pairs", "true face motion"] + [f"EPE {m} (face / crop)" for m in FLOW_METHODS] + [
        "landmarks tracked px (NME)", "landmarks detected every frame px (NME)",
        "rigid motion, per-video alignment", "rigid motion, per-frame alignment"]
    lines = ["| difficulty | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for d, r in results.items():
        cells = [f"{r['pairs']}", f"{r['motion_face']:.3f}"]
        cells += [f"{r['epe_face_' + m]:.3f} / {r['epe_' + m]:.3f}" for m in FLOW_METHODS]
        cells += [f"{r['tracked_px']:.2f} ({r['tracked_nme']:.4f})", f"{r['detected_px']:.2f} ({r['detected_nme']:.4f})",
                  f"{r['rigid_video']:.3f}", f"{r['rigid_frame']:.3f}"]
        lines.append(f"| {d} ({DIFFICULTY_PX[d]} px at apex) | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n(flow and motion: mean px per clip pair in aligned 144x144 pixels, on the " \
                              "128x128 evaluation crop; 'face' = inside the hull of the true landmarks)"


def label_quality(root: Path, difficulty: str, videos: int, workers: int | None) -> dict[str, float]:
    """Align and label a fresh synthetic set with every flow backend; compare with the ground truth."""
    manifest = synthetic_manifest(root, videos, difficulty)
    align(manifest, root / "aligned", AlignSettings(), workers=workers)
    for method in FLOW_METHODS:
        labels(manifest, root / "aligned", root / f"clips_{method}", LabelsSettings(flow=method),
               workers=workers)
    totals: dict[str, list[float]] = {}

    def add(name: str, value: float) -> None:
        totals.setdefault(name, []).append(float(value))

    for row in read_manifest(manifest).itertuples():
        stem = sample_file_stem(row.sample_id)
        frames_dir = resolve_frames_dir(manifest, row.frames_dir)
        truth = load_ground_truth(root / "synth", frames_dir.parent.name, row.video_id)
        motion = truth.motion
        with np.load(root / "aligned" / f"{stem}.npz") as aligned:
            landmarks, matrix, numbers = aligned["landmarks"], aligned["transforms"][0], aligned["frame_numbers"]
        index = np.searchsorted(truth.frame_numbers, numbers)  # aligned frame -> ground-truth frame
        true_landmarks = transform_points(truth.landmarks[index].astype(np.float64), matrix)  # [N, 68, 2]

        add("tracked_px", np.linalg.norm(landmarks - true_landmarks, axis=-1).mean())
        add("tracked_nme", landmark_nme(landmarks, true_landmarks))
        paths = [p for p in list_frames(frames_dir) if frame_number(p) in set(numbers.tolist())]
        detected = np.stack([transform_points(detect_landmarks(read_gray(p)), matrix) for p in paths])
        add("detected_px", np.linalg.norm(detected - true_landmarks, axis=-1).mean())
        add("detected_nme", landmark_nme(detected, true_landmarks))

        flows = {}
        for method in FLOW_METHODS:
            with np.load(root / f"clips_{method}" / f"{stem}.npz") as clips:
                flows[method] = eval_crops(clips["frames"], clips["flow"], clips["landmarks"])[1].astype(np.float32)
        raw_landmarks = transform_points(landmarks.astype(np.float64), inverse_affine(matrix))
        for c, clip in enumerate(clip_indices(len(landmarks))):
            for k, (a, b) in enumerate(zip(clip[:-1], clip[1:])):
                true = true_aligned_flow(motion, index[a], index[b], matrix, matrix)  # [2, 128, 128]
                face = face_mask(true_landmarks[a] - EVAL_OFFSET)
                add("motion_face", np.linalg.norm(true, axis=0)[face].mean())
                for method, flow in flows.items():
                    error = np.linalg.norm(flow[c, k] - true, axis=0)
                    add(f"epe_{method}", error.mean())
                    add(f"epe_face_{method}", error[face].mean())
                video_motion, frame_motion = rigid_motion(motion, raw_landmarks, matrix, index, a, b)
                add("rigid_video", video_motion)
                add("rigid_frame", frame_motion)
    result = {name: float(np.mean(values)) for name, values in totals.items()}
    result["pairs"] = len(totals["motion_face"])
    return result


def face_mask(points: np.ndarray) -> np.ndarray:
    """bool [128, 128]: inside the convex hull of 68 landmarks (crop pixels)."""
    mask = np.zeros((CROP_SIZE, CROP_SIZE), np.uint8)
    cv2.fillConvexPoly(mask, cv2.convexHull(np.round(points * 16).astype(np.int32)), 1, shift=4)
    return mask.astype(bool)


def rigid_motion(motion, raw_landmarks: np.ndarray, matrix: np.ndarray, index: np.ndarray, a: int,
                 b: int) -> tuple[float, float]:
    """How far the head's rigid motion alone (no expression) moves the landmarks between aligned
    frames a and b: with one transform per video (the true head drift, kept), and with a transform
    per frame from that frame's tracked landmarks (what `--per-frame` leaves: drift removed, jitter added)."""
    rigid = dataclasses.replace(motion, amplitude=np.zeros_like(motion.amplitude))
    neutral = rigid.to_neutral(index[a], raw_landmarks[a])
    at_a, at_b = rigid.from_neutral(index[a], neutral), rigid.from_neutral(index[b], neutral)
    per_video = np.linalg.norm(transform_points(at_b, matrix) - transform_points(at_a, matrix), axis=-1).mean()
    per_frame = np.linalg.norm(transform_points(at_b, alignment_matrix(raw_landmarks[b]))
                               - transform_points(at_a, alignment_matrix(raw_landmarks[a])), axis=-1).mean()
    return float(per_video), float(per_frame)
