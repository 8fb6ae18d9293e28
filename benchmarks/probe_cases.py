"""The cases of `mol bench probe` (benchmarks/probe.py) for security, data loss and stale results, and the
helpers every case uses (the input cases are in benchmarks/probe_input_cases.py). Each case builds its
inputs in its own folder from the shared base and returns the `Probe` to run: the `mol` command, whether a
refusal is due, and the check of a result that must be right (a reject with its reason, an output redone)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.probe import SECRET, Base, Case, Probe

CASES: list[Case] = []


def case_registry(cases: list[Case]):
    """A decorator `@case(kind, name)` that adds the case its function builds to `cases`."""
    def case(kind: str, name: str):
        def register(build):
            cases.append(Case(name, kind, build))
            return build
        return register
    return case


case = case_registry(CASES)


# ---------------------------------------------------------------------------------------------- helpers

def in_out(result, *needles: str) -> str:
    """'' when every needle is in the command's output, else what is missing."""
    text = result.stdout + result.stderr
    missing = [n for n in needles if n not in text]
    return f"output lacks {missing}" if missing else ""


def manifest_copy(base: Base, work: Path, edit=None) -> Path:
    """The base manifest with absolute frame folders (so it can live in `work`), after `edit(table)`."""
    table = pd.read_csv(base.manifest, dtype=str, keep_default_na=False)
    table["frames_dir"] = [str((base.manifest.parent / d).resolve()) for d in table["frames_dir"]]
    if edit:
        edit(table)
    table.to_csv(work / "manifest.csv", index=False)
    return work / "manifest.csv"


def first_sample(base: Base) -> tuple[str, Path]:
    row = pd.read_csv(base.manifest, dtype=str, keep_default_na=False).iloc[0]
    return row["sample_id"], (base.manifest.parent / row["frames_dir"]).resolve()


def stem(sample_id: str) -> str:
    return sample_id.replace("/", "__")


def frames_copy(base: Base, work: Path) -> Path:
    """One synthetic clip's frames, copied (a folder `mol predict` reads, or a clip to damage)."""
    _, source = first_sample(base)
    return Path(shutil.copytree(source, work / "frames"))


def fold_result(k: int, subject: str, samples: str, label: int) -> dict:
    """A finished fold's metrics.json as `mol train` writes it (the keys evaluate reads)."""
    cm = [[1, 0], [0, 0]] if label == 0 else [[0, 0], [0, 1]]
    prediction = {"sample_id": f"d/{subject}/1", "subject": subject, "label": label, "pred": label,
                  "probabilities": [0.5, 0.5], "clip_predictions": [label]}
    return {"fold": k, "test_subject": subject, "status": "done", "selection": "final", "num_classes": 2,
            "class_names": ["neg", "pos"], "n_test_clips": 1, "n_test_videos": 1, "flow_epe": 1.0,
            "landmark_nme": 0.1, "collapsed": False, "predictions": [prediction], "config": {},
            "video": {"confusion_matrix": cm, "uf1": 1.0, "uar": 1.0},
            "clip": {"confusion_matrix": cm, "uf1": 1.0, "uar": 1.0}, "made_from": {"samples": samples}}


def hand_made_run(work: Path, planned: int = 3, finished: int = 2, stale: tuple[int, ...] = ()) -> Path:
    """RUNS with a fold plan of `planned` folds, the first `finished` with a result (`stale` ones made
    from other samples than the plan lists)."""
    from components.data.folds import read_fold_plan, write_fold_plan

    runs = work / "runs"
    spec = [{"fold": k, "test_subject": f"s{k}", "train": ["d/x/1"], "test": [f"d/s{k}/1"]} for k in range(planned)]
    write_fold_plan(runs, {"num_classes": 2, "class_names": ["neg", "pos"], "folds": spec})
    plan = read_fold_plan(runs)
    for k in range(finished):
        samples = "other samples" if k in stale else plan[k]["samples"]
        (runs / f"fold_{k:02d}").mkdir()
        (runs / f"fold_{k:02d}" / "metrics.json").write_text(json.dumps(fold_result(k, f"s{k}", samples, k % 2)))
        pictured_clip(runs / f"fold_{k:02d}" / "samples.npz", f"d/s{k}/1")
    return runs


def pictured_clip(path: Path, sample_id: str) -> None:
    """A fold's samples.npz as `mol train` keeps it: one clip with labels and predictions."""
    rng = np.random.default_rng(0)
    flow = rng.normal(0, 1, (1, 7, 2, 128, 128)).astype(np.float16)
    landmarks = rng.uniform(30, 100, (1, 8, 68, 2)).astype(np.float32)
    np.savez(path, frames=rng.integers(0, 255, (1, 8, 128, 128), dtype=np.uint8), label_flow=flow, pred_flow=flow,
             label_landmarks=landmarks, pred_landmarks=landmarks[:, 1:], sample_ids=np.array([sample_id]))


def sqlite_store(work: Path) -> dict:
    return {"MOL_TRACKING": "on", "MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlflow.db'}"}


def tracking_down(base: Base, scheme: str = "http") -> dict:
    return {"MOL_TRACKING": "on", "MLFLOW_TRACKING_URI": f"{scheme}://probe:{SECRET}@127.0.0.1:{base.closed_port}"}


def train_argv(base: Base, out="runs", folds=None, *extra, tracked: bool = False) -> list:
    """`mol train` of fold 0 on the base clips, one step of one clip (the probe's schedule)."""
    return ["train", "--clips", base.clips, "--folds", folds or base.folds, "--fold", 0, "--out", out,
            "--batch-size", 1, "--steps", 1, *([] if tracked else ["--no-mlflow"]), *extra]


def finished_fold(base: Base, work: Path, made_from: dict | None, status: str = "done") -> Path:
    """RUNS/fold_00 holding a finished result (metrics.json, a model file) of the probe's schedule."""
    from components.config import TrainSettings

    fold = work / "runs" / "fold_00"
    fold.mkdir(parents=True)
    metrics = {"fold": 0, "test_subject": "x", "status": status, "reason": "no test clip files",
               "config": TrainSettings(batch_size=1, steps=1).as_dict(), "made_from": made_from}
    (fold / "metrics.json").write_text(json.dumps(metrics))
    (fold / "model.safetensors").write_bytes(b"the first run's model")
    return fold


def current_made_from(base: Base) -> dict:
    from components.train import fold_made_from
    from components.training.data import clip_identities

    folds = json.loads(base.folds.read_text())
    spec = folds["folds"][0]
    return fold_made_from(spec, folds, clip_identities(base.clips, {*spec["train"], *spec["test"]}))


# ---------------------------------------------------------------------------------------------- security

@case("security", "train-tracking-server-down-with-password")
def _(work, base):
    return Probe(train_argv(base, "runs", None, "--parent-run-id", "0123abcd", tracked=True), env=tracking_down(base),
                 check=lambda r: in_out(r, "unreachable"))


@case("security", "train-tracking-server-answers-404")
def _(work, base):
    env = {"MOL_TRACKING": "on", "MLFLOW_TRACKING_URI": f"http://probe:{SECRET}@127.0.0.1:{base.http_404_port}"}
    return Probe(train_argv(base, tracked=True), env=env, check=lambda r: in_out(r, "answered HTTP 404"))


@case("security", "train-parent-run-missing-in-a-live-store")
def _(work, base):
    return Probe(train_argv(base, "runs", None, "--parent-run-id", "0123abcd", tracked=True), env=sqlite_store(work),
                 check=lambda r: in_out(r, "does not exist"))


@case("security", "evaluate-tracking-server-down-with-password")
def _(work, base):
    return Probe(["evaluate", "--runs", hand_made_run(work, 2, 2), "--out", "e"], env=tracking_down(base, "https"),
                 check=lambda r: in_out(r, "unreachable"))


@case("security", "predict-registry-down-with-password")
def _(work, base):
    return Probe(["predict", frames_copy(base, work), "--out", "p", "--no-pictures"], env=tracking_down(base))


@case("security", "predict-model-uri-with-password")
def _(work, base):
    return Probe(["predict", frames_copy(base, work), "--out", "p", "--model",
                  f"https://probe:{SECRET}@127.0.0.1:{base.closed_port}/model"])


@case("security", "predict-pickled-checkpoint")
def _(work, base):
    import torch

    class Payload:
        def __reduce__(self):
            return (print, ("code from a checkpoint",))

    torch.save({"weights": Payload()}, work / "evil.pth")
    return Probe(["predict", frames_copy(base, work), "--model", "evil.pth", "--classes", 5, "--out", "p"],
                 check=lambda r: "advises weights_only" if "weights_only" in r.stderr else in_out(r, "refused"))


# ---------------------------------------------------------------------------------------------- data loss

@case("data loss", "train-fold-held-by-another-run")
def _(work, base):
    fold = finished_fold(base, work, current_made_from(base))
    return Probe(train_argv(base), guard=[fold / "metrics.json", fold / "model.safetensors"], hold=fold,
                 check=lambda r: in_out(r, "in use by"))


@case("data loss", "train-rerun-on-a-finished-fold")
def _(work, base):
    fold = finished_fold(base, work, current_made_from(base))
    return Probe(train_argv(base), expect_error=False, guard=[fold / "metrics.json", fold / "model.safetensors"],
                 check=lambda r: in_out(r, "is finished"))


@case("data loss", "align-output-held-by-another-run")
def _(work, base):
    out = Path(shutil.copytree(base.aligned, work / "aligned"))
    kept = next(out.glob("*.npz"))
    return Probe(["align", "--manifest", manifest_copy(base, work), "--out", out, "--workers", 1, "--force"],
                 guard=[kept], hold=out, check=lambda r: in_out(r, "in use by"))


@case("data loss", "labels-output-held-by-another-run")
def _(work, base):
    out = Path(shutil.copytree(base.clips, work / "clips"))
    kept = next(out.glob("*.npz"))
    return Probe(["labels", "--manifest", manifest_copy(base, work), "--aligned", base.aligned, "--out", out,
                  "--workers", 1, "--force", "--flow", "farneback"], guard=[kept], hold=out)


@case("data loss", "align-lock-left-by-a-killed-run")
def _(work, base):
    out = Path(shutil.copytree(base.aligned, work / "aligned"))
    (out / ".mol.lock").write_text(json.dumps({"command": "mol align", "pid": 999999, "host": "gone",
                                               "since": "earlier"}))
    return Probe(["align", "--manifest", manifest_copy(base, work), "--out", out, "--workers", 1],
                 expect_error=False, check=lambda r: "lock file left" if (out / ".mol.lock").exists() else "")


@case("data loss", "align-partial-file-of-a-killed-run")
def _(work, base):
    out = Path(shutil.copytree(base.aligned, work / "aligned"))
    partial = out / f".{next(out.glob('*.npz')).name}.k1ll3d_0.npz"
    partial.write_bytes(b"half")
    return Probe(["align", "--manifest", manifest_copy(base, work), "--out", out, "--workers", 1],
                 expect_error=False, check=lambda r: "partial file left" if partial.exists() else "")


@case("data loss", "labels-partial-file-of-a-killed-run")
def _(work, base):
    out = Path(shutil.copytree(base.clips, work / "clips"))
    partial = out / f".{next(out.glob('*.npz')).name}.abcdefgh.npz"
    partial.write_bytes(b"half")
    return Probe(["labels", "--manifest", manifest_copy(base, work), "--aligned", base.aligned, "--out", out,
                  "--workers", 1, "--flow", "farneback"], expect_error=False,
                 check=lambda r: "partial file left" if partial.exists() else "")


# ---------------------------------------------------------------------------------------------- stale results

@case("stale results", "align-after-the-onset-changed")
def _(work, base):
    out = Path(shutil.copytree(base.aligned, work / "aligned"))
    sample, _ = first_sample(base)

    def edit(table):
        table.loc[0, "onset"] = str(int(table.loc[0, "onset"]) + 1)

    manifest = manifest_copy(base, work, edit)
    onset = int(pd.read_csv(manifest).loc[0, "onset"])

    def check(result) -> str:
        with np.load(out / f"{stem(sample)}.npz") as aligned:
            first = int(aligned["frame_numbers"][0])
        return "" if first == onset else f"aligned file still starts at frame {first}, the onset is now {onset}"
    return Probe(["align", "--manifest", manifest, "--out", out, "--workers", 1], expect_error=False, check=check)


@case("stale results", "labels-after-the-label-changed")
def _(work, base):
    out = Path(shutil.copytree(base.clips, work / "clips"))
    sample, _ = first_sample(base)

    def edit(table):
        table.loc[0, "label"] = str((int(table.loc[0, "label"]) + 1) % 5)

    manifest = manifest_copy(base, work, edit)
    label = int(pd.read_csv(manifest).loc[0, "label"])

    def check(result) -> str:
        with np.load(out / f"{stem(sample)}.npz") as clip:
            return "" if int(clip["label"]) == label else f"clip file keeps label {int(clip['label'])}, not {label}"
    return Probe(["labels", "--manifest", manifest, "--aligned", base.aligned, "--out", out, "--workers", 1,
                  "--flow", "farneback"], expect_error=False, check=check)


@case("stale results", "labels-after-align-was-redone")
def _(work, base):
    aligned = Path(shutil.copytree(base.aligned, work / "aligned"))
    out = Path(shutil.copytree(base.clips, work / "clips"))
    sample, _ = first_sample(base)
    path = aligned / f"{stem(sample)}.npz"
    with np.load(path) as stored:
        arrays = {k: stored[k] for k in stored.files}
    np.savez(path, **{**arrays, "frames": 255 - arrays["frames"], "made_from": np.array("realigned")})
    return Probe(["labels", "--manifest", manifest_copy(base, work), "--aligned", aligned, "--out", out,
                  "--workers", 1, "--flow", "farneback"], expect_error=False,
                 check=lambda r: in_out(r, "labelled 1 "))


@case("stale results", "train-after-the-folds-changed")
def _(work, base):
    finished_fold(base, work, {"samples": "an older folds file", "clips": "x"})
    return Probe(train_argv(base), expect_error=False, check=lambda r: in_out(r, "training the fold again"))


@case("stale results", "train-skipped-fold-after-its-clips-appeared")
def _(work, base):
    made_from = {**current_made_from(base), "clips": "no clip files then"}
    finished_fold(base, work, made_from, status="skipped")
    return Probe(train_argv(base), expect_error=False, check=lambda r: in_out(r, "training the fold again"))


@case("stale results", "evaluate-registers-from-an-unfinished-run")
def _(work, base):
    runs = hand_made_run(work, planned=3, finished=2)
    return Probe(["evaluate", "--runs", runs, "--out", "e"], env=sqlite_store(work),
                 check=lambda r: in_out(r, "fold 2 (s2) is not in the pooled score", "--allow-incomplete"))


@case("stale results", "evaluate-names-an-unfinished-fold")
def _(work, base):
    runs = hand_made_run(work, planned=3, finished=2)

    def check(result) -> str:
        metrics = json.loads((work / "e" / "metrics.json").read_text())
        return "" if metrics["unfinished_folds"] == [2] else f"unfinished_folds is {metrics['unfinished_folds']}"
    return Probe(["evaluate", "--runs", runs, "--out", "e", "--no-mlflow"], expect_error=False, check=check)


@case("stale results", "evaluate-a-fold-trained-on-other-samples")
def _(work, base):
    runs = hand_made_run(work, planned=2, finished=2, stale=(1,))
    return Probe(["evaluate", "--runs", runs, "--out", "e", "--no-mlflow"], expect_error=False,
                 check=lambda r: in_out(r, "fold 1 (s1) is not in the pooled score"))
