"""Atomic writes leave either the old file or the complete new one, never a partial file."""
import numpy as np
import pytest

from components.io import atomic_path, sample_file_stem, write_json, write_npz


def test_sample_file_stem():
    assert sample_file_stem("casme2/sub01/EP02_01f") == "casme2__sub01__EP02_01f"


def test_failed_write_keeps_old_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "out.json"
    write_json(target, {"v": 1})
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("partial")
            raise RuntimeError("killed")
    assert target.read_text().strip().endswith("}")
    assert '"v": 1' in target.read_text()
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_write_npz_round_trip(tmp_path):
    write_npz(tmp_path / "a.npz", frames=np.arange(6, dtype=np.uint8).reshape(2, 3))
    with np.load(tmp_path / "a.npz") as data:
        assert data["frames"].tolist() == [[0, 1, 2], [3, 4, 5]]


def test_written_files_get_normal_permissions(tmp_path):
    import os

    write_json(tmp_path / "p.json", {})
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "p.json").stat().st_mode & 0o777 == 0o666 & ~mask
