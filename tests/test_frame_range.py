"""A manifest row that names a frame range inside a longer folder (a micro-expression inside a CAS(ME)^3
long video): the manifest helpers, and align, labels and predict on a real face."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from components.align import align
from components.config import LabelsSettings
from components.data import MANIFEST_COLUMNS, list_frames, read_manifest, sample_range
from components.labels import labels
from components.predict import predict
from components.training.checkpoint import save_model
from components.vision.clips import eval_crops
from mol_model import MOL

from face_video import manifest_row, write_manifest, write_video

FIRST, LENGTH = 10, 40  # the long video: img10.png ... img49.png
RANGES = {"test/s1/v_14": (14, 29), "test/s1/v_30": (30, 47)}  # two micro-expressions in it, 16 and 18 frames

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_list_frames_and_sample_range(tmp_path):
    for name in ("img3.jpg", "img10.jpg", "img11.jpg", "img13.jpg", "img20.jpg"):
        (tmp_path / name).write_bytes(b"x")
    assert [p.name for p in list_frames(tmp_path, 10, 13)] == ["img10.jpg", "img11.jpg", "img13.jpg"]
    assert [p.name for p in list_frames(tmp_path, None, 10)] == ["img3.jpg", "img10.jpg"]
    assert [p.name for p in list_frames(tmp_path, 11)] == ["img11.jpg", "img13.jpg", "img20.jpg"]
    row = pd.Series({"first_frame": 10, "last_frame": 13, "onset": 11, "offset": 12})
    assert sample_range(row) == (10, 13)  # the range names the sample's frames
    row = pd.Series({"first_frame": pd.NA, "last_frame": pd.NA, "onset": 11, "offset": pd.NA})
    assert sample_range(row) == (11, None)  # whole-folder data sets: cut at the annotation, as before


def test_a_manifest_written_before_the_range_columns_reads_as_whole_folders(tmp_path):
    write_manifest(tmp_path / "old.csv", [manifest_row("test/s1/a", "a", 9)])  # the 12 original columns
    table = read_manifest(tmp_path / "old.csv")
    assert list(table.columns) == MANIFEST_COLUMNS
    assert table["first_frame"].isna().all() and table["last_frame"].dtype == "Int64"


@pytest.fixture(scope="module")
def long_video(tmp_path_factory):
    root = tmp_path_factory.mktemp("range")
    folder = write_video(root / "spNO.1" / "v" / "color", LENGTH, first=FIRST)
    rows = [{**manifest_row(sid, "spNO.1/v/color", last - first + 1, first=first), "first_frame": first,
             "last_frame": last} for sid, (first, last) in RANGES.items()]
    manifest = root / "manifest.csv"
    pd.DataFrame(rows, columns=MANIFEST_COLUMNS).to_csv(manifest, index=False)
    align(manifest, root / "aligned", workers=1)
    labels(manifest, root / "aligned", root / "clips", LabelsSettings(flow="farneback"), workers=1)
    return root, folder


def test_align_and_labels_take_only_the_range(long_video):
    root, _ = long_video
    for sample_id, (first, last) in RANGES.items():
        stem = sample_id.replace("/", "__")
        with np.load(root / "aligned" / f"{stem}.npz") as aligned:
            assert aligned["frame_numbers"].tolist() == list(range(first, last + 1))
            assert aligned["frames"].shape == (last - first + 1, 144, 144)
        with np.load(root / "clips" / f"{stem}.npz") as clips:
            assert clips["frames"].shape[:2] == ((last - first + 1) // 8, 8)


def test_predict_on_the_same_range_gives_the_training_clips(long_video, tmp_path):
    root, folder = long_video
    torch.manual_seed(0)
    model = tmp_path / "model.safetensors"
    save_model(model, MOL(num_classes=3), {"num_classes": 3, "neighbors": 4, "mer_input": "official",
                                           "class_names": ["surprise", "positive", "negative"]})
    first, last = RANGES["test/s1/v_14"]
    result = predict(folder, model=str(model), out=tmp_path / "out", device="cpu", start=first, end=last,
                     pictures=False, progress=False)
    assert result["frames"]["first"] == first and result["frames"]["last"] == last
    with np.load(tmp_path / "out" / "outputs.npz") as saved, np.load(root / "clips" / "test__s1__v_14.npz") as clips:
        video, _, _ = eval_crops(clips["frames"], None, clips["landmarks"])
        np.testing.assert_array_equal(saved["video"], video)
