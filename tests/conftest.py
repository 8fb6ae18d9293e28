"""Shared fixtures. Test helpers that build data live in plain modules beside this file
(fixtures_datasets.py, fixtures_clips.py, face_video.py, mlflow_store.py) and are imported directly."""
import pytest
import torch

from fixtures_clips import write_clip_set, write_loso_folds
from fixtures_datasets import write_frames


@pytest.fixture(scope="module")
def one_torch_thread():
    """Many small torch ops run faster on one thread on a 2-core machine shared with other work."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def run_inputs(tmp_path_factory):
    """Tiny clip files (`mol labels` format) and LOSO folds over them: 3 subjects x 2 classes."""
    root = tmp_path_factory.mktemp("inputs")
    rows = write_clip_set(root / "clips")
    write_loso_folds(root / "folds.json", rows, ["neg", "pos"])
    return root


@pytest.fixture(scope="module")
def frames_folder(tmp_path_factory):
    """8 small frames: enough for `mol predict` to read before it loads the model."""
    folder = tmp_path_factory.mktemp("frames")
    write_frames(folder, [f"img{n}.jpg" for n in range(1, 9)], size=32)
    return folder
