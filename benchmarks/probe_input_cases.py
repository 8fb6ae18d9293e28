"""The cases of `mol bench probe` (benchmarks/probe.py) for silent wrong input and tracebacks: damaged
frames, sheet cells, model files, folds and params files, manifests, outputs of the wrong kind."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd

from benchmarks.probe import Base, Case, Probe
from benchmarks.probe_cases import (case_registry, current_made_from, frames_copy, hand_made_run, in_out, manifest_copy,
                                    train_argv)

CASES: list[Case] = []
case = case_registry(CASES)
MODEL = {"num_classes": 5, "neighbors": 4, "mer_input": "official"}


# ---------------------------------------------------------------------------------------------- helpers

def one_sample_manifest(base: Base, work: Path, frames: Path) -> Path:
    """A manifest of the first sample only, its frames in `frames`, the whole folder used."""
    def edit(table):
        table.drop(table.index[1:], inplace=True)
        table.loc[:, ["frames_dir", "onset", "apex", "offset"]] = [str(frames), "", "", ""]
    return manifest_copy(base, work, edit)


def sheet_csv(base: Base, work: Path, column: str, value) -> Path:
    """The synthetic coding sheet as CSV, the first row's `column` set to `value`."""
    table = pd.read_excel(base.sheet, dtype=object)
    table[column] = table[column].astype(object)
    table.loc[0, column] = value
    table.to_csv(work / "sheet.csv", index=False)
    return work / "sheet.csv"


def ingest_argv(base: Base, sheet: Path) -> list:
    return ["ingest", "--dataset", "casme2", "--root", base.frames, "--annotations", sheet, "--out", "m.csv"]


def reject_reason(work: Path, text: str):
    def check(result) -> str:
        reasons = pd.read_csv(work / "rejects.csv")["reason"].tolist() if (work / "rejects.csv").is_file() else []
        return "" if any(text in str(r) for r in reasons) else f"no reject saying {text!r} (rejects: {reasons})"
    return check


def aligned_reject(work: Path, text: str):
    def check(result) -> str:
        return reject_reason(work / "aligned", text)(result)
    return check


def model_variant(base: Base, work: Path, config, drop: bool = False, reshape: bool = False) -> Path:
    """A model file with the given configuration (a dict, or raw text), its tensors damaged as asked."""
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(base.model))
    name = next(n for n in tensors if n.endswith(".weight"))  # a BatchNorm step counter may be absent: torch fills it
    if drop:
        del tensors[name]
    if reshape:
        tensors[name] = tensors[name].reshape(-1).contiguous()
    if not (drop or reshape):
        tensors = {name: tensors[name]}  # a configuration refused before the tensors are read
    text = config if isinstance(config, str) else json.dumps(config)
    save_file(tensors, str(work / "m.safetensors"), metadata={"mol_config": text})
    return work / "m.safetensors"


# ---------------------------------------------------------------------------------------------- silent input

def damaged_clip(base: Base, work: Path, damage) -> Path:
    frames = frames_copy(base, work)
    damage(sorted(frames.iterdir()))
    return frames


def truncate(paths):
    paths[3].write_bytes(paths[3].read_bytes()[:-400])


def shrink(paths):
    import cv2

    image = cv2.imread(str(paths[-1]))
    cv2.imwrite(str(paths[-1]), cv2.resize(image, (image.shape[1] // 2, image.shape[0] // 2)))


for _fault, _damage, _reason in (("truncated-jpeg", truncate, "truncated frame"),
                                 ("mixed-frame-sizes", shrink, "must share one size")):
    @case("silent input", f"align-{_fault}")
    def _(work, base, damage=_damage, reason=_reason):
        frames = damaged_clip(base, work, damage)
        return Probe(["align", "--manifest", one_sample_manifest(base, work, frames), "--out", "aligned",
                      "--workers", 1], expect_error=False, check=aligned_reject(work, reason))

    @case("silent input", f"predict-{_fault}")
    def _(work, base, damage=_damage, reason=_reason):
        frames = damaged_clip(base, work, damage)
        return Probe(["predict", frames, "--model", base.model, "--out", "p"], check=lambda r: in_out(r, reason))


for _column, _value, _reason in (("OnsetFrame", "abc", "is not a frame number"),
                                 ("OffsetFrame", 12.5, "is not a whole frame number"),
                                 ("OnsetFrame", -4, "is outside"),
                                 ("ApexFrame", "1e30", "is outside"),
                                 ("OnsetFrame", 5000, "only 0 frames between")):
    @case("silent input", f"ingest-{_column}-{_value}")
    def _(work, base, column=_column, value=_value, reason=_reason):
        return Probe(ingest_argv(base, sheet_csv(base, work, column, value)), expect_error=False,
                     check=reject_reason(work, reason))


@case("silent input", "ingest-apex-slash-stays-unknown")
def _(work, base):
    def check(result) -> str:
        table = pd.read_csv(work / "m.csv", dtype=str, keep_default_na=False)
        return "" if len(table) == 4 and table["apex"].tolist().count("") == 1 else "the '/' apex row was not kept"
    return Probe(ingest_argv(base, sheet_csv(base, work, "ApexFrame", "/")), expect_error=False, check=check)


@case("silent input", "predict-classes-with-a-model-file")
def _(work, base):
    return Probe(["predict", frames_copy(base, work), "--model", base.model, "--classes", 3, "--out", "p"])


for _override in ("data.dataset=foo", "data.classes=7", "split.mode=bogus", "train.steps=0",
                  "execution.device=gpu9"):
    @case("silent input", f"pipeline-compile-{_override}")
    def _(work, base, override=_override):
        return Probe(["pipeline", "compile", "--params", base.params, "--param", override,
                      "--out", "p.yaml"], check=lambda r: in_out(r, override.split("=")[1]))


# ---------------------------------------------------------------------------------------------- tracebacks

def _out_cases():
    def argv(stage: str, base: Base, out) -> list:
        return {"ingest": ["ingest", "--dataset", "folder", "--root", base.frames, "--out", out],
                "split": ["split", "--manifest", base.manifest, "--out", out],
                "synth": ["synth", out, "--subjects", 1],
                "align": ["align", "--manifest", base.manifest, "--out", out],
                "labels": ["labels", "--manifest", base.manifest, "--aligned", base.aligned, "--out", out],
                "train": train_argv(base, out),
                "evaluate": ["evaluate", "--runs", "runs", "--no-mlflow", "--out", out],
                "predict": ["predict", base.frames, "--model", base.model, "--out", out],
                "pipeline": ["pipeline", "compile", "--params", base.params, "--out", out]}[stage]

    for stage in ("ingest", "split", "synth", "align", "labels", "train", "evaluate", "predict", "pipeline"):
        wants_file = stage in ("ingest", "split", "pipeline")

        @case("traceback", f"{stage}-out-of-the-wrong-kind")
        def _(work, base, stage=stage, wants_file=wants_file):
            (work / "taken").mkdir() if wants_file else (work / "taken").write_text("a file")
            return Probe(argv(stage, base, "taken"))

        @case("traceback", f"{stage}-out-under-a-file")
        def _(work, base, stage=stage):
            (work / "a_file").write_text("x")
            return Probe(argv(stage, base, "a_file/out" + (".csv" if stage in ("ingest", "split") else "")))


_out_cases()


@case("traceback", "pipeline-compile-out-not-yaml")
def _(work, base):
    return Probe(["pipeline", "compile", "--params", base.params, "--out", "pipeline.txt"])


@case("traceback", "ingest-empty-csv-sheet")
def _(work, base):
    (work / "sheet.csv").write_bytes(b"")
    return Probe(ingest_argv(base, work / "sheet.csv"))


@case("traceback", "ingest-non-utf8-csv-sheet")
def _(work, base):
    (work / "sheet.csv").write_bytes("Subject,Filename\nSchl\xfcssel,x\n".encode("latin-1"))
    return Probe(ingest_argv(base, work / "sheet.csv"))


for _name, _config, _kwargs in (("tensor-missing", MODEL, {"drop": True}), ("tensor-reshaped", MODEL, {"reshape": True}),
                                ("num-classes-missing", {"neighbors": 4}, {}),
                                ("num-classes-text", {**MODEL, "num_classes": "five"}, {}),
                                ("num-classes-zero", {**MODEL, "num_classes": 0}, {}),
                                ("config-not-json", "{num_classes: 5", {}),
                                ("neighbors-zero", {**MODEL, "neighbors": 0}, {}),
                                ("mer-input-unknown", {**MODEL, "mer_input": "psychic"}, {})):
    @case("traceback", f"predict-model-{_name}")
    def _(work, base, config=_config, kwargs=_kwargs):
        return Probe(["predict", frames_copy(base, work), "--model", model_variant(base, work, config, **kwargs),
                      "--out", "p"])


@case("traceback", "train-resume-state-with-a-bad-tensor")
def _(work, base):
    import torch
    from safetensors.torch import save_file

    from components.config import TrainSettings

    state = work / "runs" / "fold_00" / "resume" / "state.safetensors"
    state.parent.mkdir(parents=True)
    meta = {"config": TrainSettings(batch_size=1, steps=2).as_dict(), "param_groups": [], "optim_scalars": {},
            "step": 1, "log": [], "best": None, "run_id": None, "seconds": 1.0, "made_from": current_made_from(base)}
    save_file({"model.frame_encoder.0.weight": torch.zeros(3)}, str(state), metadata={"resume": json.dumps(meta)})
    return Probe(["train", "--clips", base.clips, "--folds", base.folds, "--fold", 0, "--out", "runs",
                  "--batch-size", 1, "--steps", 2, "--no-mlflow"], check=lambda r: in_out(r, "does not fit"))


for _name, _edit in (("fold-without-train", lambda d: d["folds"][0].pop("train")),
                     ("folds-not-a-list", lambda d: d.update(folds={"0": d["folds"][0]})),
                     ("num-classes-text", lambda d: d.update(num_classes="5")),
                     ("test-not-a-list", lambda d: d["folds"][0].update(test="s1"))):
    @case("traceback", f"train-folds-{_name}")
    def _(work, base, edit=_edit):
        document = json.loads(base.folds.read_text())
        edit(document)
        (work / "folds.json").write_text(json.dumps(document))
        return Probe(train_argv(base, "runs", work / "folds.json"))


@case("traceback", "train-folds-json-is-a-list")
def _(work, base):
    (work / "folds.json").write_text("[1, 2]")
    return Probe(train_argv(base, "runs", work / "folds.json"))


for _value in (0, 1000):
    @case("traceback", f"train-neighbors-{_value}")
    def _(work, base, value=_value):
        return Probe(train_argv(base, "runs", None, "--neighbors", value))


@case("traceback", "train-fold-out-of-range")
def _(work, base):
    argv = train_argv(base)
    argv[argv.index("--fold") + 1] = 99
    return Probe(argv)


for _name, _text in (("lr-text", b"train:\n  lr: fast\n"), ("gpus-negative", b"kubeflow:\n  gpus_per_fold: -1\n"),
                     ("not-utf8", b"train:\n  lr: 1e-4  # \xe9t\xe9\n"), ("not-a-mapping", b"- 1\n- 2\n"),
                     ("unknown-key", b"train:\n  learning_rate: 0.1\n")):
    @case("traceback", f"params-{_name}")
    def _(work, base, text=_text):
        (work / "params.yaml").write_bytes(text)
        return Probe(["pipeline", "compile", "--params", "params.yaml", "--out", "p.yaml"])


@case("traceback", "align-manifest-not-utf8")
def _(work, base):
    (work / "m.csv").write_bytes(base.manifest.read_bytes().replace(b"casme2/", b"casme\xe92/", 1))
    return Probe(["align", "--manifest", "m.csv", "--out", "aligned"])


@case("traceback", "align-manifest-columns-missing")
def _(work, base):
    (work / "m.csv").write_text("sample_id,frames_dir\na,b\n")
    return Probe(["align", "--manifest", "m.csv", "--out", "aligned"])


@case("traceback", "labels-aligned-file-damaged")
def _(work, base):
    aligned = Path(shutil.copytree(base.aligned, work / "aligned"))
    damaged = next(aligned.glob("*.npz"))
    damaged.write_bytes(damaged.read_bytes()[:1000])
    return Probe(["labels", "--manifest", manifest_copy(base, work), "--aligned", aligned, "--out", "clips",
                  "--workers", 1, "--flow", "farneback"], expect_error=False,
                 check=reject_reason(work / "clips", "unreadable"))


@case("traceback", "train-clip-file-damaged")
def _(work, base):
    clips = Path(shutil.copytree(base.clips, work / "clips"))
    for path in clips.glob("*.npz"):
        path.write_bytes(path.read_bytes()[:2000])
    argv = train_argv(base)
    argv[argv.index("--clips") + 1] = clips
    return Probe(argv)


@case("traceback", "evaluate-metrics-not-json")
def _(work, base):
    runs = hand_made_run(work, planned=2, finished=2)
    (runs / "fold_01" / "metrics.json").write_text("{not json")
    return Probe(["evaluate", "--runs", runs, "--out", "e", "--no-mlflow"])


@case("traceback", "predict-a-single-image")
def _(work, base):
    return Probe(["predict", next(frames_copy(base, work).iterdir()), "--model", base.model, "--out", "p"])


@case("traceback", "predict-a-file-that-is-not-a-video")
def _(work, base):
    (work / "clip.mp4").write_bytes(b"not a video at all")
    return Probe(["predict", work / "clip.mp4", "--model", base.model, "--out", "p"])


@case("traceback", "split-one-subject")
def _(work, base):
    manifest = manifest_copy(base, work, lambda t: t.drop(t.index[t["subject"] != t["subject"][0]], inplace=True))
    return Probe(["split", "--manifest", manifest, "--out", "folds.json"])
