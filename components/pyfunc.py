"""MOL as an MLflow pyfunc model: class probabilities for 8-frame clips, servable with `mlflow models serve`.

Nothing is pickled. The model is logged "from code" (MLflow's models-from-code): a three-line script
that builds `MOLPyfunc()` is stored with the model, the weights travel as the `model` artifact (the
safetensors file of `mol train`, configuration in its metadata), and the `mol_model` and `components`
packages are copied in as `code_paths`, so a serving process needs only torch, safetensors, numpy,
pandas and MLflow installed.

Input: a tensor uint8 [B, 1, 8, 128, 128] of grey levels (the `eval_video` clips of `mol labels` with
a channel axis: aligned, cropped, not normalised; the model normalises them with `normalize_video`).
As JSON for the scoring server: {"inputs": [[[[[0-255 integers]]]]]}. Output: one row per clip, a
column of probabilities per class (named as in the model file) and `predicted_class`.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import torch

CLIP_SHAPE = (1, 8, 128, 128)  # one clip: channel, frames, height, width
MODEL_CODE = """\
# Written by components.pyfunc.log_pyfunc_model: MLflow runs this file to build the model (no pickle).
import mlflow
from components.pyfunc import MOLPyfunc

mlflow.models.set_model(MOLPyfunc())
"""


class MOLPyfunc(mlflow.pyfunc.PythonModel):
    """Class probabilities of clips; the network is rebuilt from the `model` artifact (safetensors)."""

    batch_size = 8  # clips per forward pass: bounds memory for large requests

    def load_context(self, context) -> None:
        from components.checkpoint import load_model
        from components.devices import pick_device

        self.device = pick_device("auto")
        self.model, config = load_model(context.artifacts["model"], self.device)
        self.class_names = class_names(config)

    def predict(self, context, model_input: np.ndarray, params: dict | None = None) -> pd.DataFrame:
        """model_input: uint8 [B, 1, 8, 128, 128] grey levels -> DataFrame [B, C + 1]."""
        from components.devices import bf16_autocast
        from mol_model.normalize import normalize_video

        clips = np.asarray(model_input)
        if clips.dtype != np.uint8 or clips.ndim != 5 or clips.shape[1:] != CLIP_SHAPE:
            raise ValueError(f"expected uint8 clips [B, {', '.join(map(str, CLIP_SHAPE))}], "
                             f"got {clips.dtype} {list(clips.shape)}")
        probabilities = []
        with torch.inference_mode(), bf16_autocast(self.device):  # logits stay float32 (mol_model/model.py)
            for first in range(0, len(clips), self.batch_size):
                batch = normalize_video(torch.from_numpy(clips[first:first + self.batch_size])).to(self.device)
                probabilities.append(torch.softmax(self.model(batch).logits.float(), dim=-1).cpu().numpy())
        table = pd.DataFrame(np.concatenate(probabilities) if probabilities else np.zeros((0, len(self.class_names))),
                             columns=self.class_names)
        table["predicted_class"] = [self.class_names[i] for i in table[self.class_names].to_numpy().argmax(1)] \
            if len(table) else []
        return table


def class_names(config: dict) -> list[str]:
    return list(config.get("class_names") or [f"class_{i}" for i in range(int(config["num_classes"]))])


def signature(names: list[str]):
    """Tensor input uint8 [-1, 1, 8, 128, 128]; a probability column per class plus `predicted_class`."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema, TensorSpec

    inputs = Schema([TensorSpec(np.dtype(np.uint8), (-1, *CLIP_SHAPE))])  # unnamed: a plain array
    outputs = Schema([ColSpec("double", name) for name in names] + [ColSpec("string", "predicted_class")])
    return ModelSignature(inputs=inputs, outputs=outputs)


def requirements() -> list[str]:
    """Pinned to the running versions (given explicitly: MLflow's inference would load the model)."""
    import safetensors

    return [f"mlflow=={mlflow.__version__}", f"torch=={torch.__version__.split('+')[0]}",
            f"numpy=={np.__version__}", f"pandas=={pd.__version__}", f"safetensors=={safetensors.__version__}"]


def code_paths() -> list[str]:
    """The packages the model code imports, copied into the logged model."""
    import components
    import mol_model

    return [str(Path(components.__file__).parent), str(Path(mol_model.__file__).parent)]


def log_pyfunc_model(model_path: str | Path, artifact_path: str = "model", registered_model_name: str | None = None):
    """Log a `mol train` model file as a pyfunc model (to the active run, if any) and optionally register
    it. Returns MLflow's ModelInfo (`.model_uri`, `.registered_model_version`)."""
    from components.checkpoint import read_config

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
            pip_requirements=requirements(),
            registered_model_name=registered_model_name,
            metadata={"class_names": names},
        )
