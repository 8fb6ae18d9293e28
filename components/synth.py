"""`mol synth`: the embedded synthetic micro-expression data set, written in the CASME II layout.

    OUT_DIR/CASME2_RAW_selected/sub01/EP01_01f/img46.jpg ...   frames, numbered from OnsetFrame
    OUT_DIR/CASME2-coding-synthetic.xlsx                        the CASME II coding sheet (Sheet1)
    OUT_DIR/ground_truth/sub01__EP01_01f.npz                    true landmarks + the warp behind the flow
    OUT_DIR/synth.json                                          the settings the set was made with

so `mol ingest --dataset casme2 --root OUT_DIR/CASME2_RAW_selected --annotations
OUT_DIR/CASME2-coding-synthetic.xlsx` reads it. Subjects are reshaped and relit versions of one real
photograph (synth_faces); each video carries its emotion as facial action units rising from onset to
apex and falling to offset, plus head drift, blinks, flicker, sensor noise and JPEG (synth_motion).
Everything is drawn from the seed; each clip has its own random stream, so a rerun skips finished
clips (those with a ground-truth file) and still produces the same bytes.
"""
from __future__ import annotations

import argparse
import datetime
import io
import json
import re
import time
import zipfile
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
import openpyxl
from tqdm import tqdm

from components.datasets.samples import MIN_FRAMES
from components.errors import UserError
from components.fileio import atomic_path, write_json, write_npz
from components.synth_faces import FRAME_HEIGHT, FRAME_WIDTH, Subject, make_subject, neutral_sample
from components.synth_motion import (ACTION_UNITS, BLINK, EMOTIONS, Bumps, ClipMotion, landmark_bumps,
                                     pixel_grid, raised_cosine)

FRAMES_FOLDER = "CASME2_RAW_selected"
SHEET_FILE = "CASME2-coding-synthetic.xlsx"
GROUND_TRUTH_FOLDER = "ground_truth"
SETTINGS_FILE = "synth.json"
GROUND_TRUTH_FORMAT = 1

# largest facial displacement at apex, frame pixels (the face's inter-ocular distance is about 52 px)
DIFFICULTY_PX = {"easy": 3.0, "medium": 1.5, "hard": 0.75}
EMOTION_ORDER = ("happiness", "surprise", "disgust", "repression", "others")
CASME2_HEADER = ["Subject", "Filename", None, "OnsetFrame", "ApexFrame", "OffsetFrame", None,
                 "Action Units", "Estimated Emotion"]
FIXED_TIME = datetime.datetime(2014, 5, 8)  # sheet timestamps: fixed, so the file's bytes follow the seed

BLINK_CHANCE = 0.3
BLINK_PX = (1.5, 3.0)         # upper-lid travel of a (partial) blink
BLINK_FRAMES = (6, 14)
POSE_OFFSET_PX, POSE_OFFSET_DEG = 2.0, 1.0   # per video: where the head rests
DRIFT_PX, DRIFT_DEG, WALK_PX = 0.6, 0.25, 0.02  # within a video: slow drift plus a random walk per frame
FLICKER, GAIN_JITTER = 0.015, 0.002        # 100 Hz mains flicker at 200 fps alternates frame by frame
NOISE_SIGMA = (1.0, 2.5)                   # grey levels
JPEG_QUALITY = (85, 95)


@dataclass(frozen=True)
class ClipPlan:
    subject: int
    video: int
    emotion: str
    action_units: dict[int, float]
    n_frames: int
    onset: int
    apex_index: int

    @property
    def subject_folder(self) -> str:
        return f"sub{self.subject:02d}"

    @property
    def video_id(self) -> str:
        return f"EP{self.video:02d}_01f"

    @property
    def apex(self) -> int:
        return self.onset + self.apex_index

    @property
    def offset(self) -> int:
        return self.onset + self.n_frames - 1


@dataclass
class SynthSummary:
    out_dir: str
    frames_root: str
    annotations: str
    clips: int
    frames: int
    rendered: int          # clips rendered by this call (the rest already existed)
    per_emotion: dict[str, int]
    seconds: float


def ground_truth_path(out_dir: str | Path, subject_folder: str, video_id: str) -> Path:
    return Path(out_dir) / GROUND_TRUTH_FOLDER / f"{subject_folder}__{video_id}.npz"


# ---------------------------------------------------------------- plans and random streams

def subject_emotions(seed: int, subject: int, videos: int) -> tuple[list[str], np.random.Generator]:
    """Each subject gets the 5 emotions in turn (a shuffled order), so classes stay balanced; the
    returned stream then draws the subject's identity."""
    rng = np.random.default_rng([seed, subject])
    order = rng.permutation(len(EMOTION_ORDER))
    return [EMOTION_ORDER[order[v % len(order)]] for v in range(videos)], rng


def plan_clip(seed: int, subject: int, video: int, emotion: str,
              frames: tuple[int, int]) -> tuple[ClipPlan, np.random.Generator]:
    """The clip's sheet row; the returned stream then draws its motion and nuisances."""
    rng = np.random.default_rng([seed, subject, video])
    n_frames = int(rng.integers(frames[0], frames[1] + 1))
    mixes = EMOTIONS[emotion]
    plan = ClipPlan(subject, video, emotion, mixes[int(rng.integers(len(mixes)))], n_frames,
                    onset=int(rng.integers(1, 300)),
                    apex_index=int(np.clip(round(rng.uniform(0.3, 0.6) * (n_frames - 1)), 1, n_frames - 2)))
    return plan, rng


def make_motion(plan: ClipPlan, subject: Subject, rng: np.random.Generator, apex_px: float) -> ClipMotion:
    """Expression (channel 0) and blink (channel 1) bumps with their per-frame amplitudes, and the head pose."""
    parts, weights = [], []
    for au, intensity in plan.action_units.items():
        jitter = intensity * rng.uniform(0.8, 1.2)
        for part in ACTION_UNITS[au]:
            parts.append(part)
            weights.append(jitter * rng.uniform(0.85, 1.15))  # a little asymmetry
    expression = landmark_bumps(parts, subject.landmarks, subject.iod, np.array(weights), channel=0)
    # scale so that the largest displacement anywhere at apex is the difficulty's (jittered) amplitude
    peak = np.linalg.norm(expression.field(pixel_grid(FRAME_HEIGHT, FRAME_WIDTH), np.ones(1), slack=0.0), axis=-1).max()
    expression.vectors *= apex_px * rng.uniform(0.8, 1.25) / peak
    blink = landmark_bumps(BLINK, subject.landmarks, subject.iod, np.full(len(BLINK), rng.uniform(*BLINK_PX)), 1)

    n = plan.n_frames
    amplitude = np.zeros((n, 2))
    amplitude[:, 0] = raised_cosine(n, 0, plan.apex_index, n - 1)
    if rng.random() < BLINK_CHANCE:
        length = min(int(rng.integers(*BLINK_FRAMES)), n - 1)
        start = int(rng.integers(0, n - length))
        amplitude[:, 1] = raised_cosine(n, start, start + length // 2, start + length)

    ramp = np.linspace(0.0, 1.0, n)[:, None]
    angle = np.deg2rad(rng.uniform(-POSE_OFFSET_DEG, POSE_OFFSET_DEG) + rng.uniform(-DRIFT_DEG, DRIFT_DEG) * ramp)
    shift = (rng.uniform(-POSE_OFFSET_PX, POSE_OFFSET_PX, 2) + rng.uniform(-DRIFT_PX, DRIFT_PX, 2) * ramp
             + np.cumsum(rng.normal(0.0, WALK_PX, (n, 2)), axis=0))
    return ClipMotion(Bumps.concat([expression, blink]), amplitude, np.hstack([angle, shift]),
                      subject.landmarks.mean(0))


# ---------------------------------------------------------------- writing

def render_clip(subject: Subject, motion: ClipMotion) -> np.ndarray:
    """Noise-free frames float32 [N, H, W]: the subject's neutral face seen through the motion."""
    grid = pixel_grid(FRAME_HEIGHT, FRAME_WIDTH)
    return np.stack([neutral_sample(subject, motion.to_neutral(t, grid, slack=0.0)) for t in range(motion.n_frames)])


def camera(frames: np.ndarray, rng: np.random.Generator) -> list[bytes]:
    """Flicker, sensor noise and JPEG: the encoded frames."""
    n = len(frames)
    gain = 1.0 + rng.uniform(0, FLICKER) * (-1.0) ** np.arange(n) + rng.normal(0, GAIN_JITTER, n)
    sigma, quality = rng.uniform(*NOISE_SIGMA), int(rng.integers(JPEG_QUALITY[0], JPEG_QUALITY[1] + 1))
    noisy = frames * gain[:, None, None].astype(np.float32) + sigma * rng.standard_normal(frames.shape, np.float32)
    images = np.clip(np.rint(noisy), 0, 255).astype(np.uint8)
    return [cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])[1].tobytes() for image in images]


def write_clip(out_dir: Path, plan: ClipPlan, subject: Subject, rng: np.random.Generator, apex_px: float) -> None:
    motion = make_motion(plan, subject, rng, apex_px)
    clean = render_clip(subject, motion)
    folder = out_dir / FRAMES_FOLDER / plan.subject_folder / plan.video_id
    for number, encoded in zip(range(plan.onset, plan.offset + 1), camera(clean, rng)):
        with atomic_path(folder / f"img{number}.jpg") as tmp:
            tmp.write_bytes(encoded)
    # written last: its presence marks the clip as complete
    write_npz(ground_truth_path(out_dir, plan.subject_folder, plan.video_id), compressed=True,
              format=np.int64(GROUND_TRUTH_FORMAT),
              frame_numbers=np.arange(plan.onset, plan.offset + 1, dtype=np.int64),
              landmarks=motion.landmarks(subject.landmarks).astype(np.float32),
              emotion=np.str_(plan.emotion), action_units=np.str_(_au_text(plan.action_units)),
              frame_size=np.array([FRAME_HEIGHT, FRAME_WIDTH]),
              bump_centres=motion.bumps.centres, bump_vectors=motion.bumps.vectors,
              bump_sigmas=motion.bumps.sigmas, bump_channel=motion.bumps.channel,
              amplitude=motion.amplitude, pose=motion.pose, pose_centre=motion.centre)


def _au_text(action_units: dict[int, float]) -> str:
    return "+".join(str(au) for au in sorted(action_units))


def write_sheet(path: Path, plans: list[ClipPlan]) -> None:
    """The CASME II coding sheet (Sheet1, header on row 1 with its two blank columns), byte-stable."""
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Sheet1"
    sheet.append(CASME2_HEADER)
    for p in plans:
        sheet.append([f"{p.subject:02d}", p.video_id, None, p.onset, p.apex, p.offset, None,
                      _au_text(p.action_units), p.emotion])
    book.properties.created = FIXED_TIME
    buffer = io.BytesIO()
    book.save(buffer)
    with atomic_path(path) as tmp:
        tmp.write_bytes(_fixed_timestamps(buffer.getvalue()))


def _fixed_timestamps(xlsx: bytes) -> bytes:
    """The same workbook with every zip entry and the document's modified time set to FIXED_TIME."""
    stamp = FIXED_TIME.strftime("%Y-%m-%dT%H:%M:%SZ")
    source, out = zipfile.ZipFile(io.BytesIO(xlsx)), io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            data = source.read(info)
            if info.filename == "docProps/core.xml":
                data = re.sub(rb"(<dcterms:modified[^>]*>)[^<]*", rb"\g<1>" + stamp.encode(), data)
            target.writestr(zipfile.ZipInfo(info.filename, FIXED_TIME.timetuple()[:6]), data,
                            zipfile.ZIP_DEFLATED)
    return out.getvalue()


def _check_settings(out_dir: Path, settings: dict) -> None:
    """A folder holds one set: refuse to mix clips made with other settings."""
    path = out_dir / SETTINGS_FILE
    if path.is_file():
        previous = json.loads(path.read_text())
        if previous != settings:
            raise UserError(f"{out_dir} holds a synthetic set made with other settings ({previous}); "
                            "pass another OUT_DIR or delete that folder")
    elif (out_dir / FRAMES_FOLDER).exists():
        raise UserError(f"{out_dir} already holds {FRAMES_FOLDER} but no {SETTINGS_FILE}; pass another OUT_DIR")
    else:
        write_json(path, settings)


def synth(out_dir: str | Path, subjects: int = 8, videos_per_subject: int = 10, seed: int = 0,
          difficulty: str = "easy", frames: tuple[int, int] = (24, 40)) -> SynthSummary:
    """Write the synthetic data set to `out_dir` (finished clips are kept); return its counts."""
    if difficulty not in DIFFICULTY_PX:
        raise UserError(f"unknown difficulty '{difficulty}'; choose one of {', '.join(DIFFICULTY_PX)}")
    if subjects < 1 or videos_per_subject < 1:
        raise UserError("--subjects and --videos-per-subject must be at least 1")
    low, high = frames
    if not MIN_FRAMES <= low <= high:
        raise UserError(f"--frames MIN MAX needs {MIN_FRAMES} <= MIN <= MAX (got {low} {high})")
    out = Path(out_dir)
    settings = dict(format=GROUND_TRUTH_FORMAT, subjects=subjects, videos_per_subject=videos_per_subject,
                    seed=seed, difficulty=difficulty, frames=[low, high], frame_size=[FRAME_HEIGHT, FRAME_WIDTH])
    out.mkdir(parents=True, exist_ok=True)
    _check_settings(out, settings)

    start, plans, rendered = time.perf_counter(), [], 0
    with tqdm(total=subjects * videos_per_subject, desc="synth", unit="clip") as progress:
        for s in range(1, subjects + 1):
            emotions, subject_rng = subject_emotions(seed, s, videos_per_subject)
            subject = None  # built only if one of its clips is missing
            for v, emotion in enumerate(emotions, start=1):
                plan, clip_rng = plan_clip(seed, s, v, emotion, (low, high))
                plans.append(plan)
                if not ground_truth_path(out, plan.subject_folder, plan.video_id).is_file():
                    subject = subject or make_subject(subject_rng)
                    write_clip(out, plan, subject, clip_rng, DIFFICULTY_PX[difficulty])
                    rendered += 1
                progress.update()
    write_sheet(out / SHEET_FILE, plans)
    return SynthSummary(out_dir=str(out), frames_root=str(out / FRAMES_FOLDER), annotations=str(out / SHEET_FILE),
                        clips=len(plans), frames=sum(p.n_frames for p in plans), rendered=rendered,
                        per_emotion=dict(Counter(p.emotion for p in plans)),
                        seconds=round(time.perf_counter() - start, 2))


# ---------------------------------------------------------------- reading the ground truth

@dataclass
class GroundTruth:
    frame_numbers: np.ndarray  # int64 [N]
    landmarks: np.ndarray      # float32 [N, 68, 2] true positions in the written frames (x, y pixels)
    emotion: str
    action_units: str          # e.g. "6+12"
    motion: ClipMotion         # the warp; flow is computed from it on request
    frame_size: tuple[int, int]  # (H, W)

    def flow(self, start: int, end: int) -> np.ndarray:
        """float32 [2, H, W]: true flow from frame index `start` to `end` (pixels, channel 0 = x), so
        that frame_start(p) shows what frame_end shows at p + flow(p). About 0.1 s per pair."""
        grid = pixel_grid(*self.frame_size)
        return self.motion.flow(start, end, grid).transpose(2, 0, 1).astype(np.float32)

    def consecutive_flow(self) -> np.ndarray:
        """float32 [N-1, 2, H, W]: flow from each frame to the next."""
        return np.stack([self.flow(t, t + 1) for t in range(len(self.frame_numbers) - 1)])


def load_ground_truth(out_dir: str | Path, subject_folder: str, video_id: str) -> GroundTruth:
    """The truth behind one synthetic clip (`sub01`, `EP01_01f`). Flow is not stored (about 10 MB
    per clip as dense float16) but computed exactly from the stored warp (a few kB)."""
    path = ground_truth_path(out_dir, subject_folder, video_id)
    if not path.is_file():
        raise UserError(f"no ground truth {path}; is {out_dir} a `mol synth` output folder?")
    with np.load(path) as f:
        if int(f["format"]) != GROUND_TRUTH_FORMAT:
            raise UserError(f"{path} is ground truth of format {int(f['format'])}; rerun `mol synth` into a new folder")
        motion = ClipMotion(Bumps(f["bump_centres"], f["bump_vectors"], f["bump_sigmas"], f["bump_channel"]),
                            f["amplitude"], f["pose"], f["pose_centre"])
        return GroundTruth(f["frame_numbers"], f["landmarks"], str(f["emotion"]), str(f["action_units"]), motion,
                           tuple(int(v) for v in f["frame_size"]))


# ---------------------------------------------------------------- CLI

def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out_dir", metavar="OUT_DIR", help="folder to write the data set into")
    parser.add_argument("--subjects", type=int, default=8, help="number of synthetic people (default 8)")
    parser.add_argument("--videos-per-subject", type=int, default=10,
                        help="videos per person, emotions taken in turn (default 10: 2 per emotion)")
    parser.add_argument("--seed", type=int, default=0, help="random seed; the same seed gives the same bytes")
    parser.add_argument("--difficulty", choices=list(DIFFICULTY_PX), default="easy",
                        help="largest facial displacement at apex: easy 3 px, medium 1.5 px, hard 0.75 px "
                             "(face about 52 px between the eyes); default easy")
    parser.add_argument("--frames", type=int, nargs=2, metavar=("MIN", "MAX"), default=(24, 40),
                        help="frames per video, drawn between MIN and MAX (default 24 40; real 200 fps "
                             "micro-expressions are about 40 80)")


def run(args: argparse.Namespace) -> int:
    summary = synth(args.out_dir, args.subjects, args.videos_per_subject, args.seed, args.difficulty,
                    tuple(args.frames))
    print(json.dumps(asdict(summary), indent=2))
    print(f"next: mol ingest --dataset casme2 --root {summary.frames_root} --annotations {summary.annotations} "
          "--out MANIFEST.csv")
    return 0
