"""`mol align` on a real face (the astronaut photo) moved by a known sub-pixel shift per frame."""
from __future__ import annotations

import subprocess
import sys

import cv2
import numpy as np
import pandas as pd
import pytest

from components.align import align
from components.config import AlignSettings
from components.vision.face import alignment_matrix, fill_missing, transform_points
from mol_model.metrics import eye_centres

from face_video import SHIFT, manifest_row, write_manifest, write_video

N_FRAMES = 12


@pytest.fixture(scope="module")
def aligned(tmp_path_factory):
    """One moving face and one with a blank frame in the middle, aligned per video and per frame."""
    root = tmp_path_factory.mktemp("align")
    write_video(root / "moving", N_FRAMES)
    write_video(root / "gap", 9, blank=(4,))
    manifest = write_manifest(root / "manifest.csv", [manifest_row("test/s1/moving", "moving", N_FRAMES),
                                                      manifest_row("test/s1/gap", "gap", 9)])
    video = align(manifest, root / "video", workers=1)
    frame = align(manifest, root / "frame", AlignSettings(per_frame=True), workers=1)
    return root, manifest, video, frame


def load(root, name, sample="test__s1__moving"):
    with np.load(root / name / f"{sample}.npz") as z:
        return {k: z[k] for k in z.files}


def image_shift(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Translation from a to b measured by phase correlation on the central 80x80 face region."""
    centre = slice(32, 112)
    window = cv2.createHanningWindow((80, 80), cv2.CV_32F)
    (dx, dy), _ = cv2.phaseCorrelate(a[centre, centre].astype(np.float32), b[centre, centre].astype(np.float32),
                                     window)
    return np.array([dx, dy])


def test_output_contract(aligned):
    root, _, summary, _ = aligned
    out = load(root, "video")
    assert out["frames"].dtype == np.uint8 and out["frames"].shape == (N_FRAMES, 144, 144)
    assert out["landmarks"].dtype == np.float32 and out["landmarks"].shape == (N_FRAMES, 68, 2)
    assert out["frame_numbers"].dtype == np.int64
    assert out["frame_numbers"].tolist() == list(range(10, 10 + N_FRAMES))
    assert summary["aligned"] == 2 and summary["rejected"] == 0 and summary["frames"] == N_FRAMES + 9
    assert summary["full_detections"] >= 2  # the first frame of each video, and the blank frame
    assert pd.read_csv(root / "video" / "rejects.csv").empty


def test_eyes_level_and_one_transform_keeps_the_motion(aligned):
    root = aligned[0]
    out = load(root, "video")
    assert np.allclose(out["transforms"], out["transforms"][0])  # one transform for the whole video
    left, right = eye_centres(out["landmarks"])
    # dlib gives whole-pixel landmarks, so single frames wobble by up to ~0.6 px; the video is level
    assert abs(np.median(right[:, 1] - left[:, 1])) < 0.5
    assert np.all(np.abs(right[:, 1] - left[:, 1]) < 1.0)
    linear = out["transforms"][0][:, :2]
    for k in (3, N_FRAMES - 1):
        expected = linear @ (k * np.array(SHIFT))  # the known motion, in aligned pixels
        assert np.linalg.norm(expected) > 2.5
        assert np.allclose(image_shift(out["frames"][0], out["frames"][k]), expected, atol=0.5)
        moved = (out["landmarks"][k] - out["landmarks"][0]).mean(0)
        assert np.allclose(moved, expected, atol=0.5)


def test_per_frame_alignment_removes_the_motion(aligned):
    root, _, _, summary = aligned
    assert summary["alignment"] == "frame"
    video, frame = load(root, "video"), load(root, "frame")
    last = N_FRAMES - 1
    assert not np.allclose(frame["transforms"], frame["transforms"][0])
    assert np.linalg.norm(image_shift(video["frames"][0], video["frames"][last])) > 7
    assert np.linalg.norm(image_shift(frame["frames"][0], frame["frames"][last])) < 1.5
    assert np.linalg.norm((frame["landmarks"][last] - frame["landmarks"][0]).mean(0)) < 1.0


def test_frame_without_a_face_gets_interpolated_landmarks(aligned):
    root, _, summary, _ = aligned
    out = load(root, "video", "test__s1__gap")
    points = out["landmarks"]
    assert np.allclose(points[4], (points[3] + points[5]) / 2, atol=1e-3)
    assert summary["interpolated_frames"] == 1
    assert "interpolated" in summary["notes"]["test/s1/gap"]


def test_fill_missing_interpolates_and_extends_the_ends():
    a, b = np.zeros((68, 2), np.float32), np.full((68, 2), 4, np.float32)
    filled, n = fill_missing([None, a, None, None, b, None])
    assert n == 4
    assert np.allclose(filled[:, 0, 0], [0, 0, 4 / 3, 8 / 3, 4, 4])


def test_alignment_matrix_levels_a_tilted_face():
    points = np.random.default_rng(0).uniform(100, 200, (68, 2))
    points[36:42] = [150, 120]
    points[42:48] = [190, 150]  # eyes tilted by atan(30/40)
    aligned = transform_points(points, alignment_matrix(points))
    left, right = eye_centres(aligned)
    assert abs(right[1] - left[1]) < 1e-9 and right[0] > left[0]


def test_bad_videos_are_rejected_and_the_run_goes_on(tmp_path):
    write_video(tmp_path / "good", 8)
    write_video(tmp_path / "blank", 8, blank=tuple(range(8)))
    write_video(tmp_path / "empty_file", 8)
    (tmp_path / "empty_file" / "img13.png").write_bytes(b"")
    write_video(tmp_path / "garbage", 8)
    (tmp_path / "garbage" / "img12.png").write_bytes(b"this is not an image")
    write_video(tmp_path / "holes", 8)
    (tmp_path / "holes" / "img14.png").unlink()
    rows = [manifest_row(f"test/s1/{name}", name, 8)
            for name in ("good", "blank", "empty_file", "garbage", "holes", "nowhere")]
    manifest = write_manifest(tmp_path / "manifest.csv", rows)

    summary = align(manifest, tmp_path / "out", workers=2)  # also covers the worker pool

    rejects = pd.read_csv(tmp_path / "out" / "rejects.csv")
    reasons = dict(zip(rejects["sample_id"], rejects["reason"]))
    assert set(reasons) == {"test/s1/blank", "test/s1/empty_file", "test/s1/garbage", "test/s1/nowhere"}
    assert reasons["test/s1/blank"] == "no face found in any of its 8 frames"
    assert reasons["test/s1/empty_file"] == "zero-byte frame img13.png"
    assert reasons["test/s1/garbage"] == "unreadable frame img12.png"
    assert "does not exist" in reasons["test/s1/nowhere"]
    assert summary["aligned"] == 2 and summary["rejected"] == 4
    holes = load(tmp_path, "out", "test__s1__holes")
    assert holes["frame_numbers"].tolist() == [10, 11, 12, 13, 15, 16, 17]
    assert summary["notes"]["test/s1/holes"] == "frames missing and skipped: 14"


def test_rerun_skips_finished_videos(aligned):
    root, manifest, _, _ = aligned
    out = root / "video" / "test__s1__moving.npz"
    before = out.stat().st_mtime_ns
    summary = align(manifest, root / "video", workers=1)
    assert summary["skipped_existing"] == 2 and summary["aligned"] == 0
    assert out.stat().st_mtime_ns == before
    summary = align(manifest, root / "video", workers=1, force=True)
    assert summary["aligned"] == 2 and out.stat().st_mtime_ns != before


def run_mol(*args):
    return subprocess.run([sys.executable, "-m", "components.cli", *args], capture_output=True, text=True)


def test_cli_errors_are_one_line(tmp_path):
    result = run_mol("align", "--manifest", str(tmp_path / "nope.csv"), "--out", str(tmp_path / "out"))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "does not exist" in result.stderr

    (tmp_path / "bad.csv").write_text("sample_id,frames_dir\na,b\n")
    result = run_mol("align", "--manifest", str(tmp_path / "bad.csv"), "--out", str(tmp_path / "out"))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "lacks the columns" in result.stderr
