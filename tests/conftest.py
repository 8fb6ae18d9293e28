"""Shared fixtures. Test helpers that build data live in plain modules beside this file
(fixtures_datasets.py, fixtures_clips.py, face_video.py, mlflow_store.py) and are imported directly."""
import pytest
import torch


@pytest.fixture(scope="module")
def one_torch_thread():
    """Many small torch ops run faster on one thread on a 2-core machine shared with other work."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
