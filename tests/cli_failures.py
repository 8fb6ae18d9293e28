"""Helpers of the reliability tests (test_reliability.py, test_bad_inputs.py): a failed `mol` command's
one error line, and small shared inputs (clip files and folds, a folder of frames)."""
from __future__ import annotations

import pytest

from components.cli import main
from components.config import TrainSettings
from fixtures_clips import write_clip_set, write_loso_folds
from fixtures_datasets import write_frames

TINY = TrainSettings(batch_size=1, steps=1)  # one step of one clip: the real network, kept cheap


def error_line(stderr: str, stage: str) -> str:
    """The one error line of a failed command: no traceback, one `mol STAGE: error:` line, last."""
    assert "Traceback" not in stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert lines and lines[-1].startswith(f"mol {stage}: error: ")
    assert sum(": error: " in line for line in lines) == 1
    return lines[-1]


def fails(capsys, *argv) -> str:
    """Run `mol ARGV` in this process; it must exit 2 with one error line, which is returned."""
    assert main([str(a) for a in argv]) == 2
    return error_line(capsys.readouterr().err, argv[0])


@pytest.fixture(scope="module")
def run_inputs(tmp_path_factory):
    """Tiny clip files and LOSO folds: 3 subjects x 2 classes."""
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
