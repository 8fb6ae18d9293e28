"""`mol synth`: the synthetic CASME II-layout data set, its ground truth, and what carries the class."""
from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pandas as pd
import pytest

from components.cli import main
from components.config import DIFFICULTY_PX, DataSettings, SynthSettings
from components.data import list_frames, read_manifest, resolve_frames_dir
from components.errors import UserError
from components.ingest import ingest
from components.synth import synth
from components.synthetic.faces import FRAME_HEIGHT, FRAME_WIDTH, make_subject, neutral_sample
from components.synthetic.identities import subject_source
from components.synthetic.motion import ClipMotion, pixel_grid
from components.synthetic.render import FRAMES_FOLDER, make_motion, plan_clip, render_clip, subject_emotions
from components.synthetic.sheet import SHEET_FILE
from components.synthetic.truth import ground_truth_path, load_ground_truth
from components.vision.face import detect_faces, landmarks_in_box

SMALL = SynthSettings(subjects=2, videos_per_subject=5, seed=3, difficulty="easy", frames_min=8, frames_max=12)


@pytest.fixture(scope="module")
def small_set(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    summary = synth(out, SMALL)
    return out, summary


def ingest_set(out, tmp_dir):
    manifest = tmp_dir / "manifest.csv"
    summary = ingest(DataSettings(dataset="casme2", root=str(out / FRAMES_FOLDER), annotations=str(out / SHEET_FILE), classes=5), str(manifest))
    return manifest, summary


def test_output_ingests_as_casme2_with_zero_rejects(small_set, tmp_path):
    out, summary = small_set
    assert summary.clips == 10 and summary.rendered == 10
    assert summary.per_emotion == {e: 2 for e in ("happiness", "surprise", "disgust", "repression", "others")}
    manifest_path, ingested = ingest_set(out, tmp_path)
    assert ingested.n_rejects == 0 and ingested.n_samples == 10
    assert ingested.per_subject == {"casme2/01": 5, "casme2/02": 5}
    assert ingested.per_label == {"surprise": 2, "happiness": 2, "disgust": 2, "repression": 2, "others": 2}
    assert sum(read_manifest(manifest_path)["n_frames"]) == summary.frames
    for row in read_manifest(manifest_path).itertuples():
        frames = list_frames(resolve_frames_dir(manifest_path, row.frames_dir))
        assert frames[0].name == f"img{row.onset}.jpg" and frames[-1].name == f"img{row.offset}.jpg"
        assert row.onset < row.apex < row.offset and 8 <= row.n_frames <= 12
        truth = load_ground_truth(out, row.sample_id.split("/")[1], row.video_id)
        assert list(truth.frame_numbers) == list(range(row.onset, row.offset + 1))
        assert truth.landmarks.shape == (row.n_frames, 68, 2) and truth.emotion == row.emotion
    image = cv2.imread(str(frames[0]), cv2.IMREAD_UNCHANGED)
    assert image.shape == (FRAME_HEIGHT, FRAME_WIDTH) and image.dtype == np.uint8
    # the sheet keeps the CASME II header, blank columns included, plus the subjects' real faces; ground
    # truth stays out of the root
    header = list(pd.read_excel(out / SHEET_FILE, sheet_name="Sheet1").columns)
    assert header == ["Subject", "Filename", "Unnamed: 2", "OnsetFrame", "ApexFrame", "OffsetFrame", "Unnamed: 6",
                      "Action Units", "Estimated Emotion", "Real faces"]
    assert not list((out / FRAMES_FOLDER).rglob("*.npz"))


def test_same_seed_gives_the_same_bytes_and_another_seed_differs(tmp_path):
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        synth(tmp_path / name, SynthSettings(subjects=1, videos_per_subject=2, frames_min=8, frames_max=9, seed=seed))
    frame = f"{FRAMES_FOLDER}/sub01/EP02_01f"
    first = lambda name: sorted((tmp_path / name / frame).iterdir())[0].read_bytes()  # noqa: E731
    sheet = lambda name: (tmp_path / name / SHEET_FILE).read_bytes()  # noqa: E731
    assert first("a") == first("b") and sheet("a") == sheet("b")
    assert first("a") != first("c") and sheet("a") != sheet("c")
    a, b = (load_ground_truth(tmp_path / n, "sub01", "EP02_01f") for n in ("a", "b"))
    assert np.array_equal(a.landmarks, b.landmarks) and np.array_equal(a.motion.pose, b.motion.pose)


def test_rerun_skips_finished_clips_and_refuses_other_settings(tmp_path):
    settings = SynthSettings(subjects=1, videos_per_subject=3, seed=5, frames_min=8, frames_max=8)
    synth(tmp_path, settings)
    clip = tmp_path / FRAMES_FOLDER / "sub01" / "EP02_01f"
    before = {p.name: p.read_bytes() for p in clip.iterdir()}
    ground_truth_path(tmp_path, "sub01", "EP02_01f").unlink()  # as if killed while writing that clip
    sorted(clip.iterdir())[3].unlink()
    again = synth(tmp_path, settings)
    assert again.rendered == 1 and again.clips == 3
    assert {p.name: p.read_bytes() for p in clip.iterdir()} == before
    with pytest.raises(UserError, match="other settings"):
        synth(tmp_path, dataclasses.replace(settings, seed=6))


def test_bad_settings_are_one_line_errors(tmp_path, capsys):
    with pytest.raises(UserError, match="synth.difficulty is 'brutal'; choose one of easy, medium, hard"):
        SynthSettings(difficulty="brutal")
    assert main(["synth", str(tmp_path / "b"), "--frames-min", "4", "--frames-max", "6"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mol synth: error: synth.frames_min is 4, outside >= 8") and err.count("\n") == 1
    assert main(["synth", str(tmp_path / "c"), "--frames-min", "12", "--frames-max", "9"]) == 2
    assert "synth.frames_min 12 is above synth.frames_max 9" in capsys.readouterr().err


def test_flow_is_exact_for_the_warp_and_explains_the_written_frames(small_set):
    out, _ = small_set
    seed, subject_no, video = SMALL.seed, 1, 2
    emotions, subject_rng = subject_emotions(seed, subject_no, SMALL.videos_per_subject)
    subject = make_subject(subject_rng, subject_source(subject_no))
    plan, clip_rng = plan_clip(seed, subject_no, video, emotions[video - 1], (SMALL.frames_min, SMALL.frames_max))
    motion = make_motion(plan, subject, clip_rng, DIFFICULTY_PX["easy"])
    truth = load_ground_truth(out, plan.subject_folder, plan.video_id)
    assert np.array_equal(motion.bumps.vectors, truth.motion.bumps.vectors)
    assert np.allclose(motion.landmarks(subject.landmarks), truth.landmarks, atol=1e-4)

    grid = pixel_grid(FRAME_HEIGHT, FRAME_WIDTH)
    flows = truth.consecutive_flow()
    assert flows.shape == (plan.n_frames - 1, 2, FRAME_HEIGHT, FRAME_WIDTH) and flows.dtype == np.float32
    clean = render_clip(subject, motion)
    for t, flow in enumerate(flows):
        moved = grid + flow.transpose(1, 2, 0)
        # geometry: the neutral-face point behind pixel p of frame t is behind p + flow in frame t+1
        assert np.abs(motion.to_neutral(t + 1, moved) - motion.to_neutral(t, grid, slack=0.0)).max() < 1e-4
        # image: frame t+1 rendered at p + flow is frame t
        assert np.abs(neutral_sample(subject, motion.to_neutral(t + 1, moved)) - clean[t]).max() < 1.0

    # the written (noisy, JPEG) frames: warping the apex frame by the onset->apex flow gives the onset frame
    folder = out / FRAMES_FOLDER / plan.subject_folder / plan.video_id
    onset, apex = (cv2.imread(str(folder / f"img{n}.jpg"), cv2.IMREAD_GRAYSCALE).astype(np.float32)
                   for n in (plan.onset, plan.apex))
    flow = truth.flow(0, plan.apex_index).transpose(1, 2, 0)
    points = (grid + flow).astype(np.float32)
    warped = cv2.remap(apex, points[..., 0], points[..., 1], cv2.INTER_LINEAR)
    gy, gx = np.gradient(clean[0])
    moving = (np.hypot(*flow.transpose(2, 0, 1)) > 1.0) & (np.hypot(gx, gy) > 4.0)
    assert moving.sum() > 100
    with_flow, without = np.abs(warped - onset)[moving].mean(), np.abs(apex - onset)[moving].mean()
    assert with_flow < 0.4 * without, (with_flow, without)


def test_dlib_finds_the_face_and_agrees_with_the_true_landmarks(small_set, tmp_path):
    out, _ = small_set
    manifest_path, _ = ingest_set(out, tmp_path)
    errors = []
    for row in read_manifest(manifest_path).itertuples():
        truth = load_ground_truth(out, row.sample_id.split("/")[1], row.video_id)
        folder = resolve_frames_dir(manifest_path, row.frames_dir)
        for index, number in ((0, row.onset), (row.apex - row.onset, row.apex)):
            gray = cv2.imread(str(folder / f"img{number}.jpg"), cv2.IMREAD_GRAYSCALE)
            boxes = detect_faces(gray)
            assert len(boxes) == 1, (row.sample_id, number)
            found = landmarks_in_box(gray, boxes[0])
            true = truth.landmarks[index]
            iod = np.linalg.norm(true[36:42].mean(0) - true[42:48].mean(0))
            errors.append(np.linalg.norm(found - true, axis=1).mean() / iod)
    assert np.mean(errors) < 0.05 and np.max(errors) < 0.08, (np.mean(errors), np.max(errors))


def _face_crops(out, manifest_path, row):
    """Onset and apex frames cut to the face (by the onset frame's true landmarks): float [64, 64] each."""
    truth = load_ground_truth(out, row.sample_id.split("/")[1], row.video_id)
    eyes_mouth = np.array([truth.landmarks[0][a:b].mean(0) for a, b in ((36, 42), (42, 48), (48, 68))])
    matrix, _ = cv2.estimateAffinePartial2D(eyes_mouth, np.array([[20.0, 24.0], [44.0, 24.0], [32.0, 50.0]]))
    folder = resolve_frames_dir(manifest_path, row.frames_dir)
    return [cv2.warpAffine(cv2.imread(str(folder / f"img{n}.jpg"), cv2.IMREAD_GRAYSCALE).astype(np.float32),
                           matrix, (64, 64), flags=cv2.INTER_LINEAR) for n in (row.onset, row.apex)]


def _pixels(images, size=8):
    """Downsampled pixels as feature vectors: [N, size * size]."""
    return np.array([cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA).ravel() for image in images])


def _leave_one_subject_out_accuracy(features, labels, subjects):
    """Nearest class centroid on standardised features, each subject tested by a model of the others."""
    correct = 0
    for subject in np.unique(subjects):
        train, test = subjects != subject, subjects == subject
        mean, std = features[train].mean(0), features[train].std(0) + 1e-6
        z = (features - mean) / std
        centroids = np.array([z[train & (labels == c)].mean(0) for c in np.unique(labels)])
        predicted = np.argmin(((z[test][:, None] - centroids[None]) ** 2).sum(-1), axis=1)
        correct += int((predicted == labels[test]).sum())
    return correct / len(labels)


def test_the_class_is_carried_by_motion_only(tmp_path):
    out = tmp_path / "set"
    synth(out, SynthSettings(subjects=6, videos_per_subject=10, seed=1, difficulty="easy", frames_min=8, frames_max=10))
    manifest_path, _ = ingest_set(out, tmp_path)
    table = read_manifest(manifest_path)
    onset, apex = map(np.array, zip(*(_face_crops(out, manifest_path, row) for row in table.itertuples())))
    labels, subjects = table["label"].to_numpy(), table["subject"].to_numpy()
    features = {"onset": _pixels(onset), "apex": _pixels(apex), "motion": _pixels(np.abs(apex - onset))}
    accuracy = {name: _leave_one_subject_out_accuracy(x, labels, subjects) for name, x in features.items()}
    # 5 balanced classes: chance is 0.2
    assert accuracy["onset"] <= 0.3 and accuracy["apex"] <= 0.3, accuracy
    assert accuracy["motion"] >= 0.6, accuracy


def test_inverse_warp_and_bump_jacobian():
    rng = np.random.default_rng(0)
    subject = make_subject(np.random.default_rng(1), subject_source(1))
    plan, clip_rng = plan_clip(0, 1, 1, "surprise", (10, 10))
    motion: ClipMotion = make_motion(plan, subject, clip_rng, DIFFICULTY_PX["easy"])
    points = subject.landmarks + rng.normal(0, 3, subject.landmarks.shape)
    t = plan.apex_index
    assert np.abs(motion.to_neutral(t, motion.from_neutral(t, points)) - points).max() < 1e-6
    d, jac = motion.bumps.field(points, motion.amplitude[t], jacobian=True)
    eps = 1e-4
    for axis in range(2):
        step = np.zeros(2)
        step[axis] = eps
        numeric = (motion.bumps.field(points + step, motion.amplitude[t])
                   - motion.bumps.field(points - step, motion.amplitude[t])) / (2 * eps)
        assert np.allclose(jac[..., :, axis], numeric, atol=1e-6)
    assert np.abs(d).max() > 1.0  # surprise at apex really moves the brows and jaw


def test_the_warp_never_folds_even_with_expression_and_blink_at_full_strength():
    grid = pixel_grid(FRAME_HEIGHT, FRAME_WIDTH)
    for subject_no in (1, 2):
        emotions, subject_rng = subject_emotions(0, subject_no, 10)
        subject = make_subject(subject_rng, subject_source(subject_no))
        for video, emotion in enumerate(emotions, start=1):
            plan, clip_rng = plan_clip(0, subject_no, video, emotion, (24, 40))
            motion = make_motion(plan, subject, clip_rng, DIFFICULTY_PX["easy"])
            peak = np.linalg.norm(motion.bumps.field(grid, np.array([1.0, 0.0]), slack=0.0), axis=-1).max()
            assert 0.8 * 3.0 - 1e-9 <= peak <= 1.25 * 3.0 + 1e-9  # easy: 3 px at apex, jittered by 0.8-1.25
            _, jac = motion.bumps.field(grid, np.ones(2), slack=0.0, jacobian=True)
            a = np.eye(2) - jac
            assert (a[..., 0, 0] * a[..., 1, 1] - a[..., 0, 1] * a[..., 1, 0]).min() > 0.3, plan
