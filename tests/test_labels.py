"""`mol labels`: clip sampling, crops, landmark shifts, flow labels of a known motion, rejects, reruns."""
from __future__ import annotations

import subprocess
import sys
import zipfile

import numpy as np
import pandas as pd
import pytest
import torch

from components.align import align
from components.config import LabelsSettings
from components.labels import labels
from components.vision.clips import clip_indices, crop_clips, eval_offsets, random_offsets
from components.vision.flow import compute_flow

from face_video import SHIFT, astronaut_face, manifest_row, shifted, write_manifest, write_video


def write_aligned(path, n_frames: int, shift=SHIFT) -> None:
    """An `align` output made directly: a 144x144 face region moved by k * shift at frame k, and
    landmarks that move the same way."""
    face = astronaut_face()
    frames = np.stack([shifted(face, k * shift[0], k * shift[1])[60:204, 90:234] for k in range(n_frames)])
    base = np.random.default_rng(0).uniform(20, 120, (68, 2)).astype(np.float32)
    landmarks = np.stack([base + k * np.float32(shift) for k in range(n_frames)])
    np.savez(path, frames=frames, landmarks=landmarks, frame_numbers=np.arange(n_frames) + 100)


def mean_flow(flow: np.ndarray) -> np.ndarray:
    """Mean (x, y) flow over the central 64x64 of [..., 2, H, W] flows."""
    return flow[..., 32:96, 32:96].astype(np.float32).mean(axis=(-1, -2)).reshape(-1, 2).mean(0)


def test_clip_sampling_follows_the_stride():
    clips = clip_indices(20)  # stride 2 -> 2 clips
    assert clips.tolist() == [[0, 2, 4, 6, 8, 10, 12, 14], [1, 3, 5, 7, 9, 11, 13, 15]]
    assert clip_indices(8).tolist() == [list(range(8))]
    assert clip_indices(35).shape == (4, 8) and clip_indices(35)[-1, -1] == 3 + 4 * 7


def test_crops_shift_landmarks_onto_the_same_pixels_in_numpy_and_torch():
    frames = np.zeros((2, 8, 144, 144), np.uint8)
    landmarks = np.zeros((2, 8, 68, 2), np.float32)
    for t in range(8):  # a bright dot per frame, and landmark 0 on it
        x, y = 20 + 10 * t, 100 - 5 * t
        frames[:, t, y, x] = 255
        landmarks[:, t, 0] = (x, y)
    flows = np.random.default_rng(0).normal(size=(2, 7, 2, 144, 144)).astype(np.float16)
    offsets = np.array([[3, 11], [16, 0]])
    video, flow, points = crop_clips(frames, flows, landmarks, offsets)
    assert video.shape == (2, 8, 128, 128) and flow.shape == (2, 7, 2, 128, 128) and points.dtype == np.float32
    for k, (x, y) in enumerate(offsets):
        assert np.array_equal(flow[k], flows[k, ..., y:y + 128, x:x + 128])
        for t in range(8):
            px, py = points[k, t, 0].astype(int)
            assert video[k, t, py, px] == 255
    # the same function on tensors (a GPU crops after the transfer) cuts the same pixels
    as_tensors = crop_clips(*(torch.from_numpy(a) for a in (frames, flows, landmarks)), offsets)
    for a, b in zip((video, flow, points), as_tensors):
        assert torch.is_tensor(b) and np.array_equal(a, b.numpy())


def test_random_offsets_are_a_pure_function_of_their_key():
    a = random_offsets([0, 7], 50)
    assert a.min() >= 0 and a.max() <= 16 and len(np.unique(a)) > 5
    assert np.array_equal(a, random_offsets([0, 7], 50))
    assert not np.array_equal(a, random_offsets([1, 7], 50))
    assert eval_offsets(3).tolist() == [[8, 8]] * 3


@pytest.mark.parametrize("method, tolerance", [("tvl1", 0.06), ("tvl1-dis", 0.06), ("dis", 0.06), ("farneback", 0.06)])
def test_flow_backends_measure_a_known_shift(method, tolerance):
    face = astronaut_face()[60:204, 90:234]
    moved = shifted(astronaut_face(), 1.4, 0.6)[60:204, 90:234]
    flow = compute_flow(face, moved, method)
    assert flow.shape == (2, 144, 144) and flow.dtype == np.float32
    assert np.allclose(mean_flow(flow), [1.4, 0.6], atol=tolerance)


def test_tvl1_dis_gives_the_tvl1_labels_of_a_large_motion():
    """tvl1-dis runs TV-L1 at full resolution only, started from DIS flow. A 5 px motion is beyond one
    linearisation (TV-L1 at that one scale from zero flow finds about 4 px of it), yet its labels are
    those of the official five-scale TV-L1."""
    face = astronaut_face()[60:204, 90:234]
    moved = shifted(astronaut_face(), 4.5, -3.0)[60:204, 90:234]
    official, fast = compute_flow(face, moved, "tvl1"), compute_flow(face, moved, "tvl1-dis")
    assert np.allclose(mean_flow(fast), [4.5, -3.0], atol=0.05)
    assert np.linalg.norm(fast - official, axis=0)[16:-16, 16:-16].mean() < 0.02


def test_clips_crops_and_contract(tmp_path):
    (tmp_path / "aligned").mkdir()
    write_aligned(tmp_path / "aligned" / "test__s7__v.npz", 20)
    write_aligned(tmp_path / "aligned" / "test__s7__short.npz", 7)
    (tmp_path / "aligned" / "test__s7__broken.npz").write_bytes(b"PK\x03\x04 truncated")
    rows = [manifest_row("test/s7/v", "v", 20, label=3, subject="s7"),
            manifest_row("test/s7/short", "short", 7, subject="s7"),
            manifest_row("test/s7/unaligned", "unaligned", 20, subject="s7"),
            manifest_row("test/s7/broken", "broken", 20, subject="s7")]
    manifest = write_manifest(tmp_path / "manifest.csv", rows)

    summary = labels(manifest, tmp_path / "aligned", tmp_path / "clips", LabelsSettings(flow="dis"), workers=1)

    assert summary["labelled"] == 1 and summary["clips"] == 2 and summary["flow_pairs"] == 14
    reasons = dict(pd.read_csv(tmp_path / "clips" / "rejects.csv").values)
    assert reasons["test/s7/short"] == "only 7 frames; an 8-frame clip needs at least 8"
    assert "no aligned file" in reasons["test/s7/unaligned"]
    assert "unreadable" in reasons["test/s7/broken"] and "mol align --force" in reasons["test/s7/broken"]

    with np.load(tmp_path / "aligned" / "test__s7__v.npz") as z:
        frames, landmarks = z["frames"], z["landmarks"]
    with np.load(tmp_path / "clips" / "test__s7__v.npz") as z:
        out = {k: z[k] for k in z.files}
    shapes = {"frames": ((2, 8, 144, 144), np.uint8), "flow": ((2, 7, 2, 144, 144), np.float16),
              "landmarks": ((2, 8, 68, 2), np.float32)}
    for name, (shape, dtype) in shapes.items():
        assert out[name].shape == shape and out[name].dtype == dtype, name
    assert int(out["label"]) == 3 and str(out["subject"]) == "s7" and str(out["sample_id"]) == "test/s7/v"
    assert str(out["flow_method"]) == "dis" and int(out["stride"]) == 2

    clips = clip_indices(20)
    assert np.array_equal(out["frames"], frames[clips]) and np.array_equal(out["landmarks"], landmarks[clips])
    for c, clip in enumerate(clips):  # one flow per consecutive pair of the clip, on the whole aligned frame
        expected = [compute_flow(frames[a], frames[b], "dis") for a, b in zip(clip[:-1], clip[1:])]
        assert np.array_equal(out["flow"][c], np.stack(expected).astype(np.float16))
    # pairs are 2 frames apart: the flow label is twice the per-frame shift
    assert np.allclose(mean_flow(out["flow"][..., 8:136, 8:136]), 2 * np.array(SHIFT), atol=0.15)


def test_a_clip_file_of_another_layout_is_redone(tmp_path):
    (tmp_path / "aligned").mkdir()
    write_aligned(tmp_path / "aligned" / "test__s1__v.npz", 8)
    manifest = write_manifest(tmp_path / "manifest.csv", [manifest_row("test/s1/v", "v", 8)])
    (tmp_path / "clips").mkdir()
    np.savez(tmp_path / "clips" / "test__s1__v.npz", video=np.zeros((1, 8, 128, 128), np.uint8),
             flow_method=np.array("dis"))  # the per-crop layout of earlier versions
    summary = labels(manifest, tmp_path / "aligned", tmp_path / "clips", LabelsSettings(flow="dis"), workers=1)
    assert summary["labelled"] == 1 and summary["skipped_existing"] == 0


def test_rerun_skips_and_a_new_method_redoes(tmp_path):
    (tmp_path / "aligned").mkdir()
    write_aligned(tmp_path / "aligned" / "test__s1__v.npz", 8)
    manifest = write_manifest(tmp_path / "manifest.csv", [manifest_row("test/s1/v", "v", 8)])
    out = tmp_path / "clips" / "test__s1__v.npz"
    labels(manifest, tmp_path / "aligned", tmp_path / "clips", LabelsSettings(flow="dis"), workers=1)
    before = out.stat().st_mtime_ns
    summary = labels(manifest, tmp_path / "aligned", tmp_path / "clips", LabelsSettings(flow="dis"), workers=1)
    assert summary["skipped_existing"] == 1 and out.stat().st_mtime_ns == before
    summary = labels(manifest, tmp_path / "aligned", tmp_path / "clips", LabelsSettings(flow="farneback"), workers=1)
    assert summary["labelled"] == 1
    with np.load(out) as z:
        assert str(z["flow_method"]) == "farneback"


def test_compressed_output_holds_the_same_labels(tmp_path):
    (tmp_path / "aligned").mkdir()
    write_aligned(tmp_path / "aligned" / "test__s1__v.npz", 8)
    manifest = write_manifest(tmp_path / "manifest.csv", [manifest_row("test/s1/v", "v", 8)])
    labels(manifest, tmp_path / "aligned", tmp_path / "plain", LabelsSettings(flow="dis"), workers=1)
    labels(manifest, tmp_path / "aligned", tmp_path / "zipped", LabelsSettings(flow="dis"), workers=1, compress=True)
    plain, zipped = tmp_path / "plain" / "test__s1__v.npz", tmp_path / "zipped" / "test__s1__v.npz"
    with zipfile.ZipFile(plain) as p, zipfile.ZipFile(zipped) as z:
        assert {i.compress_type for i in p.infolist()} == {zipfile.ZIP_STORED}
        assert {i.compress_type for i in z.infolist()} == {zipfile.ZIP_DEFLATED}
    with np.load(plain) as p, np.load(zipped) as z:
        assert p.files == z.files and all(np.array_equal(p[k], z[k]) for k in p.files)


def test_aligned_moving_face_gives_flow_labels_of_the_known_motion(tmp_path):
    """End to end on a real face: align (one transform per video) then TV-L1 labels."""
    write_video(tmp_path / "moving", 8)
    manifest = write_manifest(tmp_path / "manifest.csv", [manifest_row("test/s1/moving", "moving", 8)])
    align(manifest, tmp_path / "aligned", workers=1)
    labels(manifest, tmp_path / "aligned", tmp_path / "clips", LabelsSettings(flow="tvl1"), workers=1)
    with np.load(tmp_path / "aligned" / "test__s1__moving.npz") as z:
        expected = z["transforms"][0][:, :2] @ np.array(SHIFT)  # one frame apart, in aligned pixels
    with np.load(tmp_path / "clips" / "test__s1__moving.npz") as z:
        flow = z["flow"][..., 8:136, 8:136]
        assert str(z["flow_method"]) == "tvl1"
    assert np.linalg.norm(expected) > 0.8
    assert np.allclose(mean_flow(flow), expected, atol=0.1)


def run_mol(*args):
    return subprocess.run([sys.executable, "-m", "components.cli", *args], capture_output=True, text=True)


def test_cli_errors_are_one_line(tmp_path):
    result = run_mol("labels", "--manifest", str(tmp_path / "nope.csv"), "--aligned", str(tmp_path),
                     "--out", str(tmp_path / "out"))
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "does not exist" in result.stderr

    manifest = write_manifest(tmp_path / "manifest.csv", [manifest_row("test/s1/v", "v", 8)])
    result = run_mol("labels", "--manifest", str(manifest), "--aligned", str(tmp_path / "missing"),
                     "--out", str(tmp_path / "out"))
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "mol align" in result.stderr

    (tmp_path / "bad.csv").write_text("sample_id,label\na,1\n")
    result = run_mol("labels", "--manifest", str(tmp_path / "bad.csv"), "--aligned", str(tmp_path),
                     "--out", str(tmp_path / "out"))
    assert result.returncode == 2 and "lacks the columns" in result.stderr
