"""The training data: clip files (`mol labels` output) read into memory as one indexable set of clips,
the batches of each step with their crops, and the held-out validation subjects.

A clip file holds each clip once at the aligned 144x144 size (frames, the flow of its consecutive pairs,
landmarks). A batch gathers clips uncropped, with the crop offset of each (`offsets`): the trainer cuts the
crops after moving the batch to its device (components/vision/clips.py). Training clips get a fresh random
crop at every use, or one of N fixed crops per clip (`train.crops`, the official recipe); evaluation clips
the fixed centre crop, so test clips never see random crops (a fault of the official code).

Arrays stay per sample, as stored (uint8 frames, float16 flow): a batch gathers its clips from them,
so no concatenated copy of the whole data set is ever made.
"""
from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from components.errors import UserError
from components.io import progress_bar, sample_file_stem, stored_made_from
from components.vision.clips import CLIP_ARRAYS, crop_clips, eval_offsets, random_offsets, sample_key
from mol_model.clips import CLIP_LENGTH

PICTURED_VIDEOS = 2  # test videos whose first clip is kept in samples.npz for `mol evaluate`'s pictures
CROP_STREAM = 1  # keeps the crops' random numbers apart from the batch sampler's, which share (seed, step)


@dataclass
class ClipSet:
    """The clips of some samples. Clip i is clip `clip_number[i]` of sample `clip_sample[i]`."""
    sample_ids: list[str]
    labels: np.ndarray          # int64 [n_samples]
    subjects: list[str]         # [n_samples]
    frames: list[np.ndarray]    # per sample: uint8 [C, T, 144, 144]
    flows: list[np.ndarray]     # per sample: float16 [C, T-1, 2, 144, 144]
    landmarks: list[np.ndarray]  # per sample: float32 [C, T, 68, 2], aligned coordinates
    missing: list[str] = field(default_factory=list)  # requested samples without a clip file

    def __post_init__(self) -> None:
        counts = [len(f) for f in self.frames]
        self.clip_sample = np.repeat(np.arange(len(counts)), counts)  # [N]
        self.clip_number = np.concatenate([np.arange(c) for c in counts]) if counts else np.zeros(0, int)

    def __len__(self) -> int:
        return len(self.clip_sample)

    @property
    def clip_labels(self) -> np.ndarray:  # int64 [N]
        return self.labels[self.clip_sample]

    def subset(self, positions: list[int]) -> ClipSet:
        """The samples at `positions` (sharing their arrays, no copy)."""
        def pick(items: list) -> list:
            return [items[i] for i in positions]

        return ClipSet(pick(self.sample_ids), self.labels[positions], pick(self.subjects), pick(self.frames),
                       pick(self.flows), pick(self.landmarks))

    def mean_shape(self) -> np.ndarray:
        """The mean landmark shape over every clip and frame, float32 [68, 2] (aligned coordinates): what
        the landmark baseline predicts."""
        return np.average([lm.mean(axis=(0, 1)) for lm in self.landmarks], axis=0,
                          weights=[len(lm) for lm in self.landmarks]).astype(np.float32)

    def batch(self, indices: np.ndarray, offsets: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Gather clips uncropped, dtypes as stored: video uint8 [B,T,144,144], flow [B,T-1,2,144,144],
        landmarks [B,T,68,2], label int64 [B], and offsets [B,2] (x, y) of their crops (default: the
        evaluation crop). `cropped` cuts them."""
        picks = [(self.clip_sample[i], self.clip_number[i]) for i in indices]
        return {"video": np.stack([self.frames[s][c] for s, c in picks]),
                "flow": np.stack([self.flows[s][c] for s, c in picks]),
                "landmarks": np.stack([self.landmarks[s][c] for s, c in picks]),
                "label": self.labels[[s for s, _ in picks]],
                "offsets": eval_offsets(len(picks)) if offsets is None else offsets}

    def training_offsets(self, indices: np.ndarray, seed: int, step: int, crops: int) -> np.ndarray:
        """Crop offsets [B, 2] of the clips `indices` in training step `step`, a pure function of (seed, step),
        so a resumed run crops exactly as an uninterrupted one: a fresh random crop (crops=0), or one of the
        clip's `crops` fixed crops, which depend only on (seed, sample, clip) as the official recipe's."""
        key = [seed, step, CROP_STREAM]
        if crops == 0:
            return random_offsets(key, len(indices))
        choices = np.random.default_rng(key).integers(0, crops, len(indices))
        return np.stack([random_offsets([seed, sample_key(self.sample_ids[self.clip_sample[i]]),
                                         int(self.clip_number[i])], crops)[choice]
                         for i, choice in zip(indices, choices)])


def cropped(batch: dict) -> dict:
    """A batch of `ClipSet.batch` (NumPy, or moved to a device) with its clips cut at their offsets:
    video [B,T,128,128], flow [B,T-1,2,128,128], landmarks moved into the crop."""
    video, flow, landmarks = crop_clips(batch["video"], batch["flow"], batch["landmarks"], batch["offsets"])
    return {**batch, "video": video, "flow": flow, "landmarks": landmarks}


def clip_path(clips_dir: str | Path, sample_id: str) -> Path:
    return Path(clips_dir) / f"{sample_file_stem(sample_id)}.npz"


def clip_identities(clips_dir: str | Path, sample_ids: set[str]) -> dict[str, str]:
    """sample_id -> what its clip file was made from (`mol labels` stores it), 'missing' without a file,
    or the file's size for a file without that record: part of what a fold is made from."""
    identities = {}
    for sid in sorted(sample_ids):
        path = clip_path(clips_dir, sid)
        identities[sid] = stored_made_from(path) or (f"size {path.stat().st_size}" if path.is_file() else "missing")
    return identities


def check_clips_dir(clips_dir: str | Path) -> None:
    folder = Path(clips_dir)
    if not folder.is_dir() or not any(folder.glob("*.npz")):
        raise UserError(f"clips folder {folder} holds no .npz clip files; create them with "
                        f"`mol labels --out {folder}`")


def flow_backend(clips_dir: str | Path, sample_ids: list[str]) -> str:
    """The flow-label backend (`mol labels --flow`) of these samples' clip files ('a+b' if they differ)."""
    methods = set()
    for sid in sample_ids:
        path = clip_path(clips_dir, sid)
        if path.is_file():
            with np.load(path, allow_pickle=False) as data:  # reads just this member
                methods.add(str(data["flow_method"]) if "flow_method" in data.files else "unknown")
    return "+".join(sorted(methods)) or "unknown"


def _read_sample(path: Path, num_classes: int) -> tuple[int, str, list[np.ndarray]]:
    """(label, subject, [frames, flow, landmarks]) of one clip file, shapes checked."""
    try:
        with np.load(path, allow_pickle=False) as data:
            absent = [k for k in (*CLIP_ARRAYS, "label", "subject") if k not in data.files]
            if absent:
                raise UserError(f"clip file {path} lacks {absent}; recreate it with `mol labels`")
            label, subject = int(data["label"]), str(data["subject"])
            frames, flow, landmarks = (data[k] for k in CLIP_ARRAYS)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
        raise UserError(f"clip file {path} is not a readable .npz ({e}); recreate it with `mol labels`") from None
    n = len(frames) if frames.ndim == 4 else 0
    if (frames.dtype != np.uint8 or n == 0 or frames.shape[1] != CLIP_LENGTH
            or flow.shape != (n, CLIP_LENGTH - 1, 2, *frames.shape[2:]) or landmarks.shape != (n, CLIP_LENGTH, 68, 2)):
        raise UserError(f"clip file {path} has inconsistent arrays (frames {frames.dtype} {frames.shape}, "
                        f"flow {flow.shape}, landmarks {landmarks.shape}); recreate it with `mol labels`")
    if not 0 <= label < num_classes:
        raise UserError(f"clip file {path} has label {label}, outside the {num_classes} classes of the folds; "
                        "split and label from the same manifest")
    return label, subject, [frames, flow, landmarks]


def load_clips(clips_dir: str | Path, sample_ids: list[str], num_classes: int, desc: str = "clips") -> ClipSet:
    """Read the clips of each sample. Samples without a clip file (rejected by `mol align`/`mol labels`)
    are skipped and listed in `.missing`."""
    sample_ids = list(sample_ids)
    found, missing = [], []
    for sid in sample_ids:
        (found if clip_path(clips_dir, sid).is_file() else missing).append(sid)
    labels, subjects, arrays = [], [], []
    for sid in progress_bar(found, desc=desc, unit="file", leave=False):
        label, subject, views = _read_sample(clip_path(clips_dir, sid), num_classes)
        labels.append(label)
        subjects.append(subject)
        arrays.append(views)
    frames, flows, landmarks = (list(a) for a in zip(*arrays)) if arrays else ([], [], [])
    return ClipSet(found, np.asarray(labels, dtype=np.int64), subjects, frames, flows, landmarks, missing)


# ---- batches ----

class BatchSampler:
    """Indices of the clips of step t, a pure function of (seed, t): resuming needs only the step.

    `none`: epochs of shuffled clips laid end to end, cut into batches (every clip once per epoch).
    `sampler`: each batch drawn with replacement, clip weights 1/(clips of its class): balanced classes.
    """

    def __init__(self, clip_labels: np.ndarray, batch_size: int, seed: int, balanced: bool):
        self.n, self.batch_size, self.seed, self.balanced = len(clip_labels), batch_size, seed, balanced
        counts = np.bincount(clip_labels)
        self.weights = 1.0 / counts[clip_labels]
        self.weights /= self.weights.sum()
        self._epoch, self._order = -1, np.zeros(0, int)

    def _permutation(self, epoch: int) -> np.ndarray:
        if epoch != self._epoch:
            self._epoch, self._order = epoch, np.random.default_rng([self.seed, epoch]).permutation(self.n)
        return self._order

    def batch(self, step: int) -> np.ndarray:  # [B]
        if self.balanced:
            return np.random.default_rng([self.seed, step]).choice(self.n, self.batch_size, p=self.weights)
        positions = range(step * self.batch_size, (step + 1) * self.batch_size)
        return np.array([self._permutation(p // self.n)[p % self.n] for p in positions])


def class_weights(clip_labels: np.ndarray, num_classes: int) -> torch.Tensor:
    """Cross-entropy weights n / (classes present * n_c): every present class weighs the same in the loss."""
    counts = np.bincount(clip_labels, minlength=num_classes).astype(np.float64)
    weights = np.where(counts > 0, counts.sum() / (np.count_nonzero(counts) * np.maximum(counts, 1)), 1.0)
    return torch.tensor(weights, dtype=torch.float32)


def hold_out_validation(clips_dir: str | Path, train_set: ClipSet, count: int, seed: int, fold: int,
                        num_classes: int) -> tuple[ClipSet, ClipSet, list[str]]:
    """Move `count` whole training subjects (chosen by seed and fold) into a validation set, which is read
    with the evaluation crop. Returns (remaining training set, validation set, validation subjects)."""
    subjects = sorted(set(train_set.subjects))
    if count >= len(subjects):
        raise UserError(f"--val-subjects {count} leaves no training subject (fold {fold} has {len(subjects)})")
    chosen = sorted(subjects[i] for i in np.random.default_rng([seed, fold]).choice(len(subjects), count,
                                                                                    replace=False))
    held = [s in chosen for s in train_set.subjects]
    val_ids = [sid for sid, h in zip(train_set.sample_ids, held) if h]
    val_set = load_clips(clips_dir, val_ids, num_classes, desc=f"fold {fold} validation clips")
    return train_set.subset([i for i, h in enumerate(held) if not h]), val_set, chosen


def sample_clips(clips: ClipSet, videos: int = PICTURED_VIDEOS) -> np.ndarray:
    """Indices [K] of the first clip of the first `videos` samples: the clips kept for pictures."""
    return np.flatnonzero(clips.clip_number == 0)[:videos]

