"""`mol synth`: the embedded synthetic micro-expression data set, written in the CASME II layout.

    OUT_DIR/CASME2_RAW_selected/sub01/EP01_01f/img46.jpg ...   frames, numbered from OnsetFrame
    OUT_DIR/CASME2-coding-synthetic.xlsx                        the CASME II coding sheet (Sheet1)
    OUT_DIR/ground_truth/sub01__EP01_01f.npz                    true landmarks + the warp behind the flow
    OUT_DIR/synth.json                                          the settings, and each subject's real faces
    OUT_DIR/subjects.png                                        one picture per subject (synthetic/gallery.py)

so `mol ingest --dataset casme2 --root OUT_DIR/CASME2_RAW_selected --annotations
OUT_DIR/CASME2-coding-synthetic.xlsx` reads it. Each subject derives from one real face photograph shipped
with a dependency, or from a morph between two (synthetic/identities.py: the sheet's `Real faces` column
and synth.json's `identities` say which), reshaped and relit (synthetic/faces.py); each video carries its
emotion as facial action units rising from onset to apex and falling to offset, plus head drift, blinks,
flicker, sensor noise and JPEG (synthetic/motion.py, synthetic/render.py). Everything is drawn from the
seed; each clip has its own random stream, so a rerun skips finished clips (those with a ground-truth file)
and still produces the same bytes.
"""
from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

from components.config import DIFFICULTY_PX, SynthSettings, add_params_argument, params_from_args
from components.errors import UserError
from components.io import check_output, progress_bar, write_json
from components.synthetic.faces import FRAME_HEIGHT, FRAME_WIDTH, make_subject
from components.synthetic.gallery import write_gallery
from components.synthetic.identities import subject_source
from components.synthetic.render import FRAMES_FOLDER, plan_clip, subject_emotions, write_clip
from components.synthetic.sheet import SHEET_FILE, write_sheet
from components.synthetic.truth import GROUND_TRUTH_FORMAT, ground_truth_path

SETTINGS_FILE = "synth.json"


@dataclass
class SynthSummary:
    out_dir: str
    frames_root: str
    annotations: str
    clips: int
    frames: int
    rendered: int          # clips rendered by this call (the rest already existed)
    per_emotion: dict[str, int]
    identities: dict[str, str]  # subject folder -> the real faces it derives from (the sheet's Real faces)
    seconds: float


def _check_settings(out_dir: Path, settings: dict) -> None:
    """A folder holds one set: refuse to mix clips made with other settings."""
    path = out_dir / SETTINGS_FILE
    if path.is_file():
        try:
            previous = json.loads(path.read_text())
        except (ValueError, OSError):
            previous = f"an unreadable {SETTINGS_FILE}"
        if previous != settings:
            raise UserError(f"{out_dir} holds a synthetic set made with other settings ({previous}); "
                            "pass another OUT_DIR or delete that folder")
    elif (out_dir / FRAMES_FOLDER).exists():
        raise UserError(f"{out_dir} already holds {FRAMES_FOLDER} but no {SETTINGS_FILE}; pass another OUT_DIR")
    else:
        write_json(path, settings)



def synth(out_dir: str | Path, settings: SynthSettings = SynthSettings()) -> SynthSummary:
    """Write the synthetic data set to `out_dir` (finished clips are kept); return its counts."""
    s = settings
    out = check_output(out_dir, flag="OUT_DIR")
    recorded = dict(format=GROUND_TRUTH_FORMAT, subjects=s.subjects, videos_per_subject=s.videos_per_subject,
                    seed=s.seed, difficulty=s.difficulty, frames=[s.frames_min, s.frames_max],
                    frame_size=[FRAME_HEIGHT, FRAME_WIDTH],
                    identities={f"sub{n:02d}": subject_source(n).weights() for n in range(1, s.subjects + 1)})
    out.mkdir(parents=True, exist_ok=True)
    _check_settings(out, recorded)

    start, plans, rendered = time.perf_counter(), [], 0
    with progress_bar(total=s.subjects * s.videos_per_subject, desc="synth", unit="clip") as progress:
        for subject_number in range(1, s.subjects + 1):
            emotions, subject_rng = subject_emotions(s.seed, subject_number, s.videos_per_subject)
            subject = None  # built only if one of its clips is missing
            for video, emotion in enumerate(emotions, start=1):
                plan, clip_rng = plan_clip(s.seed, subject_number, video, emotion, (s.frames_min, s.frames_max))
                plans.append(plan)
                if not ground_truth_path(out, plan.subject_folder, plan.video_id).is_file():
                    subject = subject or make_subject(subject_rng, subject_source(subject_number))
                    write_clip(out, plan, subject, clip_rng, DIFFICULTY_PX[s.difficulty])
                    rendered += 1
                progress.update()
    write_sheet(out / SHEET_FILE, plans)
    write_gallery(out, plans)
    return SynthSummary(out_dir=str(out), frames_root=str(out / FRAMES_FOLDER), annotations=str(out / SHEET_FILE),
                        clips=len(plans), frames=sum(p.n_frames for p in plans), rendered=rendered,
                        per_emotion=dict(Counter(p.emotion for p in plans)),
                        identities={f"sub{n:02d}": subject_source(n).label for n in range(1, s.subjects + 1)},
                        seconds=round(time.perf_counter() - start, 2))


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out_dir", metavar="OUT_DIR", help="folder to write the data set into")
    add_params_argument(parser)
    SynthSettings.add_arguments(parser)


def run(args: argparse.Namespace) -> int:
    summary = synth(args.out_dir, SynthSettings.from_args(args, params_from_args(args)))
    print(json.dumps(asdict(summary), indent=2))
    print(f"next: mol ingest --dataset casme2 --root {summary.frames_root} --annotations {summary.annotations} "
          "--out MANIFEST.csv")
    return 0
