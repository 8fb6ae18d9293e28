"""Bad input (issue 17): silent wrong input (truncated or odd-sized frames, bad sheet cells, a flag a model
file would ignore, bad values at pipeline compile) and tracebacks (an output of the wrong kind, damaged
sheets, model files, resume states, folds and params files): each is a reject with its reason or one line
with exit status 2, never a traceback. benchmarks/probe.py measures the same over many more cases."""
from __future__ import annotations

import json
import os

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import save_file

from components.cli import main
from components.config import TrainSettings
from components.training.checkpoint import CONFIG_KEY, save_model
from components.vision.frames import RejectedVideo, read_gray
from mol_model import MOL

from cli_failures import fails
from face_video import manifest_row, write_manifest
from fixtures_datasets import MMEW_HEADER, write_frames, write_plain_sheet

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """A 3-class model file as `mol train` writes it, and its tensors."""
    torch.manual_seed(0)
    model = MOL(num_classes=3)
    path = tmp_path_factory.mktemp("model") / "model.safetensors"
    save_model(path, model, {"num_classes": 3, "neighbors": 4, "mer_input": "official"})
    return path, {k: v.contiguous() for k, v in model.state_dict().items()}


# ---------------------------------------------------------------------------------------------- silent wrong input

def jpeg_frames(folder, sizes: list[int]) -> list:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for n, size in enumerate(sizes, start=10):
        image = np.random.default_rng(n).integers(0, 255, (size, size), dtype=np.uint8)
        assert cv2.imwrite(str(folder / f"img{n}.jpg"), image)
        paths.append(folder / f"img{n}.jpg")
    return paths


@pytest.mark.parametrize("fault", ["truncated", "mixed sizes"])
def test_a_damaged_clip_is_rejected_at_align_and_refused_by_predict(fault, tmp_path, capsys):
    paths = jpeg_frames(tmp_path / "frames", [64] * 7 + [48 if fault == "mixed sizes" else 64])
    if fault == "truncated":
        paths[3].write_bytes(paths[3].read_bytes()[:-300])  # a copy cut short: OpenCV would decode it grey
        with pytest.raises(RejectedVideo, match="truncated frame img13.jpg"):
            read_gray(paths[3])
    write_manifest(tmp_path / "manifest.csv", [manifest_row("t/s1/v", "frames", 8)])
    assert main(["align", "--manifest", str(tmp_path / "manifest.csv"), "--out", str(tmp_path / "a"), "--workers", "1"]) == 0
    expected = "truncated frame img13.jpg" if fault == "truncated" else "img17.jpg is 48x48 but img10.jpg is 64x64"
    [reason] = pd.read_csv(tmp_path / "a" / "rejects.csv")["reason"].tolist()
    assert expected in reason
    assert expected in fails(capsys, "predict", tmp_path / "frames", "--model", "none.safetensors", "--out",
                             tmp_path / "p")


def test_bad_frame_cells_reject_their_rows_and_a_slash_apex_stays_unknown(tmp_path):
    for video in ("EP01", "EP02", "EP03", "EP04", "EP05"):
        write_frames(tmp_path / "root" / "sub01" / video, [f"img{n}.jpg" for n in range(1, 11)])
    cells = {"EP01": ("abc", 3, 10), "EP02": (1, 3, 9.5), "EP03": (-3, 3, 10), "EP04": (1, 3, 1e30),
             "EP05": (1, "/", 10)}
    sheet = "Subject,Filename,OnsetFrame,ApexFrame,OffsetFrame,Estimated Emotion\n" + "".join(
        f"1,{video},{a},{b},{c},happiness\n" for video, (a, b, c) in cells.items())
    (tmp_path / "sheet.csv").write_text(sheet)
    assert main(["ingest", "--dataset", "casme2", "--root", str(tmp_path / "root"), "--annotations",
                 str(tmp_path / "sheet.csv"), "--out", str(tmp_path / "m.csv")]) == 0
    manifest, rejects = pd.read_csv(tmp_path / "m.csv"), pd.read_csv(tmp_path / "rejects.csv")
    assert manifest["video_id"].tolist() == ["EP05"] and manifest["apex"].isna().all()
    reasons = dict(zip(rejects["video_id"], rejects["reason"]))
    assert "OnsetFrame 'abc' is not a frame number" in reasons["EP01"]
    assert "OffsetFrame '9.5' is not a whole frame number" in reasons["EP02"]
    assert "'-3' is outside" in reasons["EP03"] and "OffsetFrame" in reasons["EP04"]


def test_a_bad_frame_cell_rejects_its_row_in_the_other_sheet_adapters_too(tmp_path):
    """MMEW reads its own sheet layout through the same `frame_cells`: a text onset is a reject, not a crash."""
    micro = tmp_path / "MMEW" / "Micro_Expression"
    for folder in ("S01-01-001", "S01-01-002"):
        write_frames(micro / "happiness" / folder, [f"{n}.jpg" for n in range(1, 13)])
    write_plain_sheet(tmp_path / "MMEW" / "MMEW_Micro_Exp.xlsx", MMEW_HEADER, [
        ("S01", "S01-01-001", "three", 7, 12, "12", "happiness", ""), ("S01", "S01-01-002", 1, 7, 12, "12", "happiness", "")])
    assert main(["ingest", "--dataset", "mmew", "--root", str(tmp_path / "MMEW"), "--classes", "7", "--out",
                 str(tmp_path / "m.csv")]) == 0
    assert pd.read_csv(tmp_path / "m.csv")["video_id"].tolist() == ["S01-01-002"]
    [reason] = pd.read_csv(tmp_path / "rejects.csv")["reason"].tolist()
    assert "OnsetFrame 'three' is not a frame number" in reason


def test_classes_flag_that_a_model_file_would_ignore_is_refused(weights, frames_folder, tmp_path, capsys):
    line = fails(capsys, "predict", frames_folder, "--model", weights[0], "--classes", 5, "--out", tmp_path / "p")
    assert "records 3 classes" in line


@pytest.mark.parametrize("override", ["data.dataset=foo", "data.classes=7", "split.mode=bogus", "train.lr=fast",
                                      "kubeflow.gpus_per_fold=-1"])
def test_pipeline_compile_validates_every_value(override, tmp_path, capsys):
    value = override.split("=")[1]
    line = fails(capsys, "pipeline", "compile", "--param", override, "--out", tmp_path / "p.yaml")
    assert value in line and not (tmp_path / "p.yaml").exists()


# ---------------------------------------------------------------------------------------------- tracebacks

@pytest.mark.parametrize("stage", ["ingest", "split", "synth", "align", "labels", "train", "evaluate", "predict",
                                   "pipeline"])
def test_an_output_of_the_wrong_kind_fails_before_any_work(stage, tmp_path, capsys):
    (tmp_path / "a_file").write_text("x")
    (tmp_path / "a_folder").mkdir()
    file_out = stage in ("ingest", "split", "pipeline")
    wrong = tmp_path / ("a_folder" if file_out else "a_file")
    argv = {"ingest": ["ingest", "--dataset", "folder", "--root", tmp_path, "--out", wrong],
            "split": ["split", "--manifest", "m.csv", "--out", wrong],
            "synth": ["synth", wrong],
            "align": ["align", "--manifest", "m.csv", "--out", wrong],
            "labels": ["labels", "--manifest", "m.csv", "--aligned", tmp_path, "--out", wrong],
            "train": ["train", "--clips", tmp_path, "--folds", "f.json", "--all", "--no-mlflow", "--out", wrong],
            "evaluate": ["evaluate", "--runs", tmp_path, "--no-mlflow", "--out", wrong],
            "predict": ["predict", tmp_path, "--out", wrong],
            "pipeline": ["pipeline", "compile", "--out", wrong]}[stage]
    line = fails(capsys, *argv)
    assert str(wrong) in line and ("is a folder" in line if file_out else "is a file" in line)
    under = fails(capsys, *argv[:-1], tmp_path / "a_file" / "out")  # a parent that is a file
    assert "is a file, not a folder" in under


def test_pipeline_compile_out_must_be_yaml(tmp_path, capsys):
    assert "must end with .yaml" in fails(capsys, "pipeline", "compile", "--out", tmp_path / "pipeline.txt")


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root may write anywhere")
def test_an_output_in_a_folder_nobody_may_write_fails_at_once(tmp_path, capsys):
    (tmp_path / "locked").mkdir(mode=0o555)
    line = fails(capsys, "split", "--manifest", "m.csv", "--out", tmp_path / "locked" / "sub" / "folds.json")
    assert "may not write" in line


@pytest.mark.parametrize("content, expected", [(b"", "is empty"), ("Subject,Filename\nSchl\xfcssel,a\n".encode("latin-1"),
                                                                     "not UTF-8")])
def test_unreadable_annotation_sheets(content, expected, tmp_path, capsys):
    (tmp_path / "sheet.csv").write_bytes(content)
    (tmp_path / "root").mkdir()
    assert expected in fails(capsys, "ingest", "--dataset", "casme2", "--root", tmp_path / "root", "--annotations",
                             tmp_path / "sheet.csv", "--out", tmp_path / "m.csv")


@pytest.mark.parametrize("damage", ["missing tensor", "reshaped tensor", "num_classes missing", "num_classes text",
                                    "num_classes 0", "config not JSON", "neighbors 0"])
def test_damaged_model_files(damage, weights, frames_folder, tmp_path, capsys):
    tensors, config = dict(weights[1]), {"num_classes": 3, "neighbors": 4, "mer_input": "official"}
    name = next(iter(tensors))
    if damage == "missing tensor":
        del tensors[name]
    elif damage == "reshaped tensor":
        tensors[name] = tensors[name].reshape(-1)
    else:
        tensors = {name: tensors[name]}  # the configuration is refused before any tensor is read
        config = {"num_classes missing": {"neighbors": 4}, "num_classes text": {**config, "num_classes": "three"},
                  "num_classes 0": {**config, "num_classes": 0}, "neighbors 0": {**config, "neighbors": 0},
                  "config not JSON": "{num_classes: 3"}[damage]
    save_file(tensors, str(tmp_path / "m.safetensors"),
              metadata={CONFIG_KEY: config if isinstance(config, str) else json.dumps(config)})
    line = fails(capsys, "predict", frames_folder, "--model", tmp_path / "m.safetensors", "--out", tmp_path / "p")
    assert "m.safetensors" in line and len(line) < 600


def test_resume_state_with_a_bad_tensor(run_inputs, tmp_path, capsys):
    from components.train import fold_made_from
    from components.training.data import clip_identities

    folds = json.loads((run_inputs / "folds.json").read_text())
    spec = folds["folds"][0]
    identity = fold_made_from(spec, folds, clip_identities(run_inputs / "clips", {*spec["train"], *spec["test"]}))
    state = tmp_path / "runs" / "fold_00" / "resume" / "state.safetensors"
    state.parent.mkdir(parents=True)
    meta = {"config": TrainSettings(batch_size=1, steps=2).as_dict(), "param_groups": [], "optim_scalars": {},
            "step": 1, "log": [], "best": None, "run_id": None, "seconds": 1.0, "made_from": identity}
    save_file({"model.encoder.0.weight": torch.zeros(3)}, str(state), metadata={"resume": json.dumps(meta)})
    line = fails(capsys, "train", "--clips", run_inputs / "clips", "--folds", run_inputs / "folds.json", "--fold", 0,
                 "--out", tmp_path / "runs", "--no-mlflow", "--batch-size", 1, "--steps", 2, "--threads", 1)
    assert "does not fit" in line and str(state.parent) in line


@pytest.mark.parametrize("edit, expected", [
    (lambda d: d["folds"][0].pop("train"), "fold 0 lacks train"),
    (lambda d: d.update(folds={"0": {}}), "folds is not a list"),
    (lambda d: d.update(num_classes="2"), "num_classes is '2'"),
    (lambda d: d["folds"][1].update(test="s2"), "fold 1's test is not a list")])
def test_damaged_folds_files(edit, expected, run_inputs, tmp_path, capsys):
    document = json.loads((run_inputs / "folds.json").read_text())
    edit(document)
    (tmp_path / "folds.json").write_text(json.dumps(document))
    assert expected in fails(capsys, "train", "--clips", run_inputs / "clips", "--folds", tmp_path / "folds.json",
                             "--all", "--out", tmp_path / "runs", "--no-mlflow")


@pytest.mark.parametrize("value", [0, 300])
def test_neighbors_out_of_range(value, run_inputs, tmp_path, capsys):
    assert "train.neighbors" in fails(capsys, "train", "--clips", run_inputs / "clips", "--folds",
                                      run_inputs / "folds.json", "--fold", 0, "--out", tmp_path, "--neighbors", value)


@pytest.mark.parametrize("text, expected", [(b"train:\n  lr: fast\n", "train.lr is 'fast'"),
                                            (b"kubeflow:\n  gpus_per_fold: -1\n", "outside >= 0"),
                                            (b"train:\n  lr: 1e-4 # \xe9t\xe9\n", "not UTF-8")])
def test_bad_params_files(text, expected, tmp_path, capsys):
    (tmp_path / "params.yaml").write_bytes(text)
    assert expected in fails(capsys, "params", tmp_path / "params.yaml")
    assert expected in fails(capsys, "split", "--manifest", "m.csv", "--out", tmp_path / "f.json", "--params",
                             tmp_path / "params.yaml")
