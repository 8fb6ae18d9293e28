"""MOL as an MLflow pyfunc model: class probabilities for 8-frame clips, servable with `mlflow models serve`.

Nothing is pickled. The model is logged "from code" (MLflow's models-from-code): a three-line script
that builds `MOLPyfunc()` is stored with the model, the weights travel as the `model` artifact (the
safetensors file of `mol train`, configuration in its metadata), and the `mol_model` and `components`
packages are copied in as `code_paths`, so a serving process needs only torch, safetensors, numpy,
pandas and MLflow installed.

Input: a tensor uint8 [B, 1, 8, 128, 128] of grey levels (the clips of `mol labels` cut at the
evaluation crop, with a channel axis: aligned, cropped, not normalised; the model normalises them with `normalize_video`).
As JSON for the scoring server: {"inputs": [[[[[0-255 integers]]]]]}. Output: one row per clip, a
column of probabilities per class (named as in the model file) and `predicted_class`.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator

import mlflow
import numpy as np
import pandas as pd
import torch

from components.errors import UserError, redact
from components.tracking.runs import tracking_uri
from components.tracking.store import check_store, fail_fast
from components.training.checkpoint import class_names, load_model, read_config
from components.training.devices import bf16_autocast, pick_device
from components.training.scoring import probabilities
from mol_model.clips import CLIP_LENGTH, FRAME_SIZE
from mol_model.normalize import normalize_video

CLIP_SHAPE = (1, CLIP_LENGTH, FRAME_SIZE, FRAME_SIZE)  # one clip: channel, frames, height, width
MODEL_CODE = """\
# Written by components.tracking.pyfunc.log_pyfunc_model: MLflow runs this file to build the model (no pickle).
import mlflow
from components.tracking.pyfunc import MOLPyfunc

mlflow.models.set_model(MOLPyfunc())
"""


class MOLPyfunc(mlflow.pyfunc.PythonModel):
    """Class probabilities of clips; the network is rebuilt from the `model` artifact (safetensors)."""

    batch_size = 8  # clips per forward pass: bounds memory for large requests

    def load_context(self, context) -> None:
        self.device = pick_device("auto")
        self.model, config = load_model(context.artifacts["model"], self.device)
        self.class_names = class_names(config)

    def predict(self, context, model_input: np.ndarray, params: dict | None = None) -> pd.DataFrame:
        """model_input: uint8 [B, 1, 8, 128, 128] grey levels -> DataFrame [B, C + 1]."""
        clips = np.asarray(model_input)
        if clips.dtype != np.uint8 or clips.ndim != 5 or clips.shape[1:] != CLIP_SHAPE:
            raise ValueError(f"expected uint8 clips [B, {', '.join(map(str, CLIP_SHAPE))}], "
                             f"got {clips.dtype} {list(clips.shape)}")
        logits = []
        with torch.inference_mode(), bf16_autocast(self.device):  # logits stay float32 (mol_model/model.py)
            for first in range(0, len(clips), self.batch_size):
                batch = normalize_video(torch.from_numpy(clips[first:first + self.batch_size])).to(self.device)
                logits.append(self.model(batch).logits.float().cpu().numpy())
        table = pd.DataFrame(probabilities(np.concatenate(logits)) if logits else np.zeros((0, len(self.class_names))),
                             columns=self.class_names)
        table["predicted_class"] = [self.class_names[i] for i in table[self.class_names].to_numpy().argmax(1)] \
            if len(table) else []
        return table


def signature(names: list[str]):
    """Tensor input uint8 [-1, 1, 8, 128, 128]; a probability column per class plus `predicted_class`."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema, TensorSpec

    inputs = Schema([TensorSpec(np.dtype(np.uint8), (-1, *CLIP_SHAPE))])  # unnamed: a plain array
    outputs = Schema([ColSpec("double", name) for name in names] + [ColSpec("string", "predicted_class")])
    return ModelSignature(inputs=inputs, outputs=outputs)


def input_example() -> np.ndarray:
    """One clip as the model takes it, stored with the model (and run through it once when logged):
    uint8 [1, 1, 8, 128, 128], a grey ramp moving one pixel per frame."""
    ramp = np.add.outer(np.arange(FRAME_SIZE), np.arange(FRAME_SIZE)) % 256
    return np.stack([np.roll(ramp, shift, axis=1) for shift in range(CLIP_LENGTH)]).astype(np.uint8)[None, None]


def requirements() -> list[str]:
    """Pinned to the running versions (given explicitly: MLflow's inference would load the model)."""
    import safetensors
    import tqdm

    return [f"mlflow=={mlflow.__version__}", f"torch=={torch.__version__.split('+')[0]}",
            f"numpy=={np.__version__}", f"pandas=={pd.__version__}", f"safetensors=={safetensors.__version__}",
            f"tqdm=={tqdm.__version__}"]


def code_paths() -> list[str]:
    """The packages the model code imports, copied into the logged model."""
    import components
    import mol_model

    return [str(Path(components.__file__).parent), str(Path(mol_model.__file__).parent)]


def log_pyfunc_model(model_path: str | Path, artifact_path: str = "model", registered_model_name: str | None = None):
    """Log a `mol train` model file as a pyfunc model (to the active run, if any) and optionally register
    it. Returns MLflow's ModelInfo (`.model_uri`, `.registered_model_version`)."""
    names = class_names(read_config(model_path))  # fails early, with a UserError, on a bad file
    with tempfile.TemporaryDirectory(prefix="mol-pyfunc-") as tmp:
        code = Path(tmp) / "mol_pyfunc_model.py"
        code.write_text(MODEL_CODE)
        return mlflow.pyfunc.log_model(
            name=artifact_path,
            python_model=str(code),
            artifacts={"model": str(model_path)},
            code_paths=code_paths(),
            signature=signature(names),
            input_example=input_example(),
            pip_requirements=requirements(),
            registered_model_name=registered_model_name,
            metadata={"class_names": names},
        )


@contextlib.contextmanager
def fetch_model_file(uri: str) -> Iterator[Path]:
    """The safetensors model file inside an MLflow model (`models:/mol-mer@champion`, `runs:/...`),
    downloaded to a temporary folder that lives as long as the `with` block. Never loads a pickle."""
    store = tracking_uri()
    check_store(store)  # a dead server: one line in seconds, not minutes
    with tempfile.TemporaryDirectory(prefix="mol-model-") as tmp:
        try:
            with fail_fast():  # a model URI on a dead host: one line in seconds
                local = Path(mlflow.artifacts.download_artifacts(
                    artifact_uri=uri, dst_path=tmp, tracking_uri=store,
                    registry_uri=os.environ.get("MLFLOW_REGISTRY_URI") or store))
        except Exception as e:  # MlflowException, and ValueError/OSError from artifact stores for odd URIs
            text = (getattr(e, "message", None) or str(e) or type(e).__name__).splitlines()[0]
            raise UserError(f"cannot fetch MLflow model {redact(uri)} from {redact(store)} ({redact(text)[:300]}); "
                            "check the name and alias, or pass --model with a model file") from None
        files = sorted(local.rglob("*.safetensors")) if local.is_dir() else [local]
        if not files or files[0].suffix != ".safetensors":
            raise UserError(f"MLflow model {uri} holds no .safetensors model file (only pyfunc models logged by "
                            "log_pyfunc_model do); register it again or pass --model")
        yield files[0]
