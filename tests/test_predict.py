"""`mol predict` on a real face (scikit-image's astronaut) moving by a known sub-pixel shift per frame.

The model has random weights (44 M parameters, 1-2 s per clip on one CPU core): these tests check the
plumbing (same preprocessing as training, probabilities, files, pictures, model sources, errors),
not the prediction's quality.
"""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from components.cli import main
from components.errors import UserError
from components.predict import format_text, load_predictor, predict
from components.training.checkpoint import load_model, save_model
from components.training.devices import native_bf16
from mol_model import MOL
from mol_model.normalize import normalize_video
from mol_model.official import official_name, official_shape

from face_video import astronaut_face, manifest_row, write_manifest, write_video

CLASS_NAMES = ["negative", "positive", "surprise"]
N_FRAMES = 18  # stride 18 // 8 = 2: two clips
FIRST = 10  # frame folders are numbered img10.png ... img27.png


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "model.safetensors"
    save_model(path, MOL(num_classes=3), {"num_classes": 3, "neighbors": 4, "mer_input": "official", "class_names": CLASS_NAMES})
    return path


@pytest.fixture(scope="module")
def face_folder(tmp_path_factory):
    return write_video(tmp_path_factory.mktemp("face") / "frames", N_FRAMES, first=FIRST)


@pytest.fixture(scope="module")
def face_avi(face_folder, tmp_path_factory):
    """The same frames as a Motion-JPEG .avi (what a camera or a converted data set gives)."""
    path = tmp_path_factory.mktemp("video") / "face.avi"
    frames = [cv2.imread(str(face_folder / f"img{FIRST + k}.png"), cv2.IMREAD_GRAYSCALE) for k in range(N_FRAMES)]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, frames[0].shape[::-1], isColor=False)
    assert writer.isOpened()
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


@pytest.fixture(scope="module")
def video_result(face_avi, model_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    return predict(face_avi, model=str(model_file), out=out, device="cpu", progress=False), out


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_prediction_json_probabilities_and_clips(video_result, model_file, face_avi):
    result, out = video_result
    assert json.loads((out / "prediction.json").read_text()) == result
    assert result["class_names"] == CLASS_NAMES and result["model"] == str(model_file)
    # bf16 autocast (flow decoder only) exactly where it is native, as in training
    assert result["precision"] == ("bf16 autocast (flow decoder)" if native_bf16(torch.device("cpu")) else "fp32")
    assert result["frames"] == {"count": N_FRAMES, "first": 0, "last": N_FRAMES - 1, "stride": 2, "without_face": 0}
    assert [c["frame_numbers"] for c in result["clips"]] == [list(range(0, 16, 2)), list(range(1, 16, 2))]
    assert sum(result["probabilities"].values()) == pytest.approx(1, abs=1e-5)
    for clip in result["clips"]:
        assert sum(clip["probabilities"].values()) == pytest.approx(1, abs=1e-5)
        assert clip["predicted_class"] == max(clip["probabilities"], key=clip["probabilities"].get)

    with np.load(out / "outputs.npz") as saved:
        video, logits, flow, landmarks = saved["video"], saved["logits"], saved["flow"], saved["landmarks"]
        reference, transforms = saved["reference_landmarks"], saved["transforms"]
    assert video.shape == (2, 8, 128, 128) and video.dtype == np.uint8 and transforms.shape == (2, 8, 2, 3)
    assert logits.shape == (2, 3) and flow.shape == (2, 7, 2, 128, 128) and landmarks.shape == (2, 7, 68, 2)
    # video level = softmax of the mean clip logits; clip level = softmax of each clip's
    np.testing.assert_allclose(list(result["probabilities"].values()), softmax(logits.mean(0)), atol=1e-5)
    np.testing.assert_allclose(list(result["clips"][1]["probabilities"].values()), softmax(logits[1]), atol=1e-5)
    # the stored logits are the model's on the stored (cropped, normalised) clips
    model, _ = load_model(model_file)
    with torch.no_grad():
        again = model(normalize_video(torch.from_numpy(video[:1]))[:, None]).logits.numpy()
    np.testing.assert_allclose(again[0], logits[0], rtol=1e-4, atol=1e-4)
    # dlib's landmarks sit on the face inside the 128 crop: eyes level and ~40 px apart
    eyes = reference[0, 0, 36:42].mean(0), reference[0, 0, 42:48].mean(0)
    assert 25 < eyes[1][0] - eyes[0][0] < 80 and abs(eyes[1][1] - eyes[0][1]) < 3
    assert ((reference > 0) & (reference < 128)).mean() > 0.9
    # `transforms` maps the video's own pixels onto the model's 128 x 128 input
    capture = cv2.VideoCapture(str(face_avi))
    first = cv2.cvtColor(capture.read()[1], cv2.COLOR_BGR2GRAY)
    capture.release()
    warped = cv2.warpAffine(first, transforms[0, 0], (128, 128), flags=cv2.INTER_LINEAR, borderValue=128)
    assert np.abs(warped.astype(int) - video[0, 0]).max() <= 1


def test_pictures_are_written_and_not_blank(video_result):
    result, out = video_result
    files = result["files"]
    assert set(files) == {"prediction", "outputs", "flow_color", "flow_arrows", "landmarks", "animation",
                          "summary_png", "summary_html"}
    for kind in ("flow_color", "flow_arrows", "landmarks"):
        image = cv2.imread(str(out / files[kind]))
        assert image.shape == (2 * (18 + 384) + 2, 4 * 384 + 3 * 2, 3), kind  # 2 x 4 captioned 3x panels
        assert image.std() > 10, kind
    with Image.open(out / files["animation"]) as gif:
        assert gif.n_frames == 8 and gif.size == (2 * 384 + 2, 18 + 384)
    summary = cv2.imread(str(out / "summary.png"))
    assert summary.shape[1] > 1000 and summary.std() > 10
    page = (out / "summary.html").read_text()
    assert page.count("data:image/png;base64,") == 4 and page.count("data:image/gif;base64,") == 1
    assert all(name in page for name in CLASS_NAMES)
    assert not list(out.glob(".*"))  # atomic writes leave no temp files


def test_text_report_names_the_class_and_the_files(video_result):
    result, out = video_result
    text = format_text(result)
    assert text.splitlines()[0].startswith(f"face.avi: {result['predicted_class']} (p = ")
    assert "2 clip(s) of 8 frames from frames 0..17 (stride 2)" in text and str(out / "summary.html") in text


def test_folder_input_is_preprocessed_exactly_as_training(face_folder, model_file, tmp_path):
    """predict's clips equal the evaluation clips that `mol align` + `mol labels` make of the same frames."""
    from components.align import align
    from components.config import LabelsSettings
    from components.labels import labels
    from components.vision.clips import eval_crops

    manifest = write_manifest(tmp_path / "manifest.csv", [manifest_row("test/s1/face", str(face_folder), N_FRAMES)])
    align(manifest, tmp_path / "aligned", workers=1)
    labels(manifest, tmp_path / "aligned", tmp_path / "clips", LabelsSettings(flow="farneback"), workers=1)
    with np.load(tmp_path / "clips" / "test__s1__face.npz") as clips:
        eval_video, _, eval_landmarks = eval_crops(clips["frames"], None, clips["landmarks"])

    result = predict(face_folder, model=str(model_file), out=tmp_path / "out", device="cpu", pictures=False,
                     progress=False)
    with np.load(tmp_path / "out" / "outputs.npz") as saved:
        np.testing.assert_array_equal(saved["video"], eval_video)
        np.testing.assert_allclose(saved["reference_landmarks"], eval_landmarks, atol=1e-4)
    assert result["clips"][0]["frame_numbers"] == list(range(FIRST, FIRST + 16, 2))
    assert set(result["files"]) == {"prediction", "outputs"}


def test_cli_json_with_a_frame_range(face_folder, model_file, tmp_path, capsys):
    code = main(["predict", str(face_folder), "--model", str(model_file), "--out", str(tmp_path / "o"),
                 "--onset", str(FIRST + 1), "--offset", str(FIRST + 16), "--format", "json", "--no-pictures",
                 "--device", "cpu"])
    assert code == 0
    result = json.loads(capsys.readouterr().out)  # stdout holds only the JSON
    assert result["frames"]["count"] == 16 and result["frames"]["first"] == FIRST + 1
    assert [c["frame_numbers"][0] for c in result["clips"]] == [FIRST + 1, FIRST + 2]
    assert (tmp_path / "o" / "prediction.json").is_file()


def official_checkpoint(model_file, path):
    """The model file's weights under the official code's key names and shapes, as `torch.save` writes them."""
    model, _ = load_model(model_file)
    state = {official_name(k): v.reshape(official_shape(k, v)) for k, v in model.state_dict().items()}
    torch.save(state, path)
    return path


def test_official_checkpoint_predicts_like_the_same_weights(model_file, tmp_path, capsys):
    frames = write_video(tmp_path / "frames", 8)  # one clip
    pth = official_checkpoint(model_file, tmp_path / "V1.0.pth")
    ours = predict(frames, model=str(model_file), out=tmp_path / "a", device="cpu", pictures=False, progress=False)
    official = predict(frames, model=str(pth), out=tmp_path / "b", classes=3, device="cpu", pictures=False,
                       progress=False)
    assert official["class_names"] == ["surprise", "positive", "negative"]  # the official 3-class order
    np.testing.assert_allclose(list(official["probabilities"].values()), list(ours["probabilities"].values()),
                               atol=1e-5)
    assert load_predictor(str(pth), classes=3, class_names=["x", "y", "z"], device="cpu").class_names == ["x", "y", "z"]

    assert main(["predict", str(frames), "--model", str(pth), "--out", str(tmp_path / "d")]) == 2
    assert "pass --classes 3 or --classes 5" in capsys.readouterr().err
    with pytest.raises(UserError, match="--classes 5"):
        load_predictor(str(pth), classes=5, device="cpu")
    with pytest.raises(UserError, match="--class-names gives 2 names but the model has 3 classes"):
        load_predictor(str(model_file), class_names=["a", "b"], device="cpu")


@pytest.fixture
def bad_inputs(tmp_path):
    blank = tmp_path / "blank"
    blank.mkdir()
    for k in range(10):
        cv2.imwrite(str(blank / f"{k:03d}.png"), np.full((240, 320), 120, np.uint8))
    (tmp_path / "broken.mp4").write_bytes(b"this is not a video\n" * 50)
    write_video(tmp_path / "few", 6)
    cv2.imwrite(str(tmp_path / "face.jpg"), astronaut_face())
    (tmp_path / "empty").mkdir()
    return tmp_path


@pytest.mark.parametrize("args, message", [
    (["blank"], "no face found in any of its 10 frames"),
    (["broken.mp4"], "is not a video OpenCV can read"),
    (["few"], "has only 6 frame(s)"),
    (["few", "--start", "14", "--end", "12"], "--start 14 is after --end 12"),
    (["few", "--start", "500"], "has no frames between 500 and the last"),
    (["face.jpg"], "is a single image"),
    (["empty"], "holds no image files"),
    (["missing.avi"], "does not exist"),
    (["few", "--class-names", "a,a,b"], "must be distinct"),
])
def test_bad_input_is_one_line_and_exit_2(bad_inputs, model_file, args, message, capsys):
    argv = ["predict", str(bad_inputs / args[0]), *args[1:], "--model", str(model_file),
            "--out", str(bad_inputs / "out"), "--device", "cpu"]
    assert main(argv) == 2
    err = capsys.readouterr().err  # a progress bar (carriage returns) may come first on a slow machine
    last = err.splitlines()[-1].split("\r")[-1]
    assert last.startswith("mol predict: error: ") and message in last and "Traceback" not in err


def test_no_model_and_no_tracking_store(face_folder, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert main(["predict", str(face_folder)]) == 2
    assert "no --model given and no MLflow tracking store" in capsys.readouterr().err
    with pytest.raises(UserError, match="does not exist"):
        predict(face_folder, model=str(tmp_path / "nope.safetensors"), progress=False)
    (tmp_path / "fake.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(UserError, match="not a readable safetensors model file"):
        predict(face_folder, model=str(tmp_path / "fake.safetensors"), progress=False)
    (tmp_path / "fake.pth").write_bytes(b"\x00" * 64)
    with pytest.raises(UserError, match="not a readable PyTorch state dict"):
        predict(face_folder, model=str(tmp_path / "fake.pth"), classes=3, progress=False)
