"""The MLflow pyfunc flavour: logged from code (no pickle), registered, loaded and scored by MLflow itself,
and `mol predict`'s default model (`models:/mol-mer@champion`) read from a temporary SQLite store."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml

mlflow = pytest.importorskip("mlflow")

from components.errors import UserError  # noqa: E402
from components.tracking.pyfunc import log_pyfunc_model  # noqa: E402
from components.training.checkpoint import load_model, save_model  # noqa: E402
from mol_model import MOL  # noqa: E402
from mol_model.normalize import normalize_video  # noqa: E402

from face_video import astronaut_face, shifted, write_video  # noqa: E402

CLASS_NAMES = ["negative", "positive", "surprise"]
CHAMPION = "models:/mol-mer@champion"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """A random 3-class model, logged with `log_pyfunc_model` into a fresh SQLite store and registered as
    mol-mer@champion. Yields (store folder, model file)."""
    store = tmp_path_factory.mktemp("store")
    torch.manual_seed(1)
    model_file = store / "model.safetensors"
    save_model(model_file, MOL(num_classes=3), {"num_classes": 3, "neighbors": 4, "mer_input": "official", "class_names": CLASS_NAMES})
    uri = f"sqlite:///{(store / 'mlflow.db').as_posix()}"
    previous = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)  # also exports MLFLOW_TRACKING_URI, which `mol predict` reads
    client = mlflow.MlflowClient()
    experiment = client.create_experiment("mol", artifact_location=(store / "artifacts").as_uri())
    with mlflow.start_run(experiment_id=experiment):
        info = log_pyfunc_model(model_file, registered_model_name="mol-mer")
    client.set_registered_model_alias("mol-mer", "champion", info.registered_model_version)
    yield store, model_file, info
    mlflow.set_tracking_uri(None)  # also clears MLFLOW_TRACKING_URI
    if previous is not None:
        os.environ["MLFLOW_TRACKING_URI"] = previous


@pytest.fixture(scope="module")
def champion(registry):
    """The registered champion, loaded through MLflow as any client would."""
    return mlflow.pyfunc.load_model(CHAMPION)


def face_clips(n: int) -> np.ndarray:
    """uint8 [n, 1, 8, 128, 128]: a face crop moving right by 0.5 px per frame."""
    face = cv2.resize(astronaut_face(), (144, 144), interpolation=cv2.INTER_AREA)
    clip = np.stack([shifted(face, 0.5 * k, 0)[8:136, 8:136] for k in range(8)])
    return np.stack([np.roll(clip, 3 * i, axis=2) for i in range(n)])[:, None]


def expected_probabilities(model_file: Path, clips: np.ndarray) -> np.ndarray:
    model, _ = load_model(model_file)
    with torch.no_grad():
        return torch.softmax(model(normalize_video(torch.from_numpy(clips))).logits, -1).numpy()


def test_logged_from_code_without_pickle(registry):
    store, model_file, info = registry
    local = Path(mlflow.artifacts.download_artifacts(CHAMPION, dst_path=str(store / "download")))
    config = yaml.safe_load((local / "MLmodel").read_text())["flavors"]["python_function"]
    assert "model_code_path" in config and "python_model" not in config  # models-from-code, no cloudpickle
    assert not list(local.rglob("*.pkl"))
    assert (local / config["artifacts"]["model"]["path"]).read_bytes() == model_file.read_bytes()
    assert {p.name for p in (local / "code").iterdir()} >= {"components", "mol_model"}
    assert info.signature.inputs.to_dict()[0]["tensor-spec"]["shape"] == (-1, 1, 8, 128, 128)
    assert [c["name"] for c in info.signature.outputs.to_dict()] == [*CLASS_NAMES, "predicted_class"]


def test_registered_champion_predicts_class_probabilities(registry, champion):
    _, model_file, _ = registry
    clips = face_clips(2)
    pyfunc = champion
    table = pyfunc.predict(clips)
    assert list(table.columns) == [*CLASS_NAMES, "predicted_class"] and len(table) == 2
    probabilities = table[CLASS_NAMES].to_numpy()
    np.testing.assert_allclose(probabilities.sum(1), 1, atol=1e-5)
    np.testing.assert_allclose(probabilities, expected_probabilities(model_file, clips), atol=1e-5)
    assert list(table["predicted_class"]) == [CLASS_NAMES[i] for i in probabilities.argmax(1)]
    with pytest.raises(mlflow.exceptions.MlflowException, match="Shape of input"):
        pyfunc.predict(clips[:, :, :4])  # 4 frames: refused by the signature
    with pytest.raises(mlflow.exceptions.MlflowException, match="dtype of input float32"):
        pyfunc.predict(clips.astype(np.float32))  # grey levels are uint8, as `mol labels` stores them


def test_scoring_server_parses_a_tensor_json_request(registry, champion):
    from mlflow.pyfunc import scoring_server

    _, model_file, _ = registry
    pyfunc = champion
    clips = face_clips(1)
    schema = pyfunc.metadata.get_input_schema()
    response = scoring_server.invocations(json.dumps({"inputs": clips.tolist()}),
                                          "application/json", pyfunc, schema)
    assert response.status == 200, response.response
    (row,) = json.loads(response.response)["predictions"]
    np.testing.assert_allclose([row[c] for c in CLASS_NAMES], expected_probabilities(model_file, clips)[0], atol=1e-5)
    with pytest.raises(mlflow.exceptions.MlflowException, match="Shape of input") as refused:  # the server: 400
        scoring_server.invocations(json.dumps({"inputs": clips[:, :, :4].tolist()}), "application/json", pyfunc,
                                   schema)
    assert refused.value.get_http_status_code() == 400


def test_mol_predict_defaults_to_the_registered_champion(registry, tmp_path, monkeypatch):
    """With mlflow.db in the working directory and no --model, `mol predict` loads mol-mer@champion."""
    from components.predict import predict

    store, model_file, _ = registry
    monkeypatch.chdir(store)
    monkeypatch.delenv("MLFLOW_TRACKING_URI")  # the store is found as ./mlflow.db
    frames = write_video(tmp_path / "frames", 8)
    result = predict(frames, out=tmp_path / "out", device="cpu", pictures=False, progress=False)
    assert result["model"] == CHAMPION and result["class_names"] == CLASS_NAMES
    direct = predict(frames, model=str(model_file), out=tmp_path / "direct", device="cpu", pictures=False,
                     progress=False)
    assert result["probabilities"] == pytest.approx(direct["probabilities"], abs=1e-6)
    with pytest.raises(UserError, match="cannot fetch MLflow model models:/no-such-model@champion"):
        predict(frames, model="models:/no-such-model@champion", out=tmp_path / "x", progress=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_mlflow_models_serve_answers_a_curl_style_request(registry):
    import requests

    store, model_file, _ = registry
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "models", "serve", "-m", CHAMPION, "-h", "127.0.0.1", "-p", str(port),
         "--env-manager", "local"], cwd=store, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        env={**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"})  # uvicorn
    try:
        deadline = time.time() + 180
        while True:
            try:
                if requests.get(f"http://127.0.0.1:{port}/ping", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert server.poll() is None and time.time() < deadline, server.stdout.read().decode()[-2000:]
            time.sleep(1)
        clips = face_clips(1)
        answer = requests.post(f"http://127.0.0.1:{port}/invocations", json={"inputs": clips.tolist()}, timeout=120)
        assert answer.status_code == 200, answer.text
        (row,) = answer.json()["predictions"]
        np.testing.assert_allclose([row[c] for c in CLASS_NAMES], expected_probabilities(model_file, clips)[0],
                                   atol=1e-5)
    finally:
        server.terminate()
        server.wait(timeout=30)
