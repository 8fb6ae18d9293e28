"""The real faces behind the synthetic subjects: every shipped photograph is landmarked and brought to the
same size and place, morphs have the blended landmarks, and each subject's source is fixed and written down."""
from __future__ import annotations

import json

import numpy as np
import openpyxl
import pandas as pd
import pytest

from components.config import DataSettings, SynthSettings
from components.ingest import ingest
from components.synth import SETTINGS_FILE, synth
from components.synthetic.faces import make_subject
from components.synthetic.gallery import GALLERY_FILE
from components.synthetic.identities import (CANON_CENTRE, CANON_IOD, CANON_SIZE, MORPH_WEIGHTS, PHOTO_REPEATS,
                                             PHOTOS, IdentitySource, canonical_face, canonical_similarity,
                                             photo_landmarks, piecewise_affine_map, source_cycle, source_face,
                                             subject_source)
from components.synthetic.render import FRAMES_FOLDER
from components.synthetic.sheet import SHEET_FILE, SOURCE_COLUMN
from components.vision.face import detect_landmarks
from mol_model.metrics import eye_centres


def _iod(landmarks):
    left, right = eye_centres(landmarks)
    return float(np.linalg.norm(right - left))


def _landmark_error(image, landmarks):
    """Mean distance of dlib's landmarks on `image` from `landmarks`, in inter-ocular distances."""
    found = detect_landmarks(np.clip(np.rint(image), 0, 255).astype(np.uint8))
    assert found is not None
    return np.linalg.norm(found - landmarks, axis=1).mean() / _iod(landmarks)


@pytest.mark.parametrize("name", list(PHOTOS))
def test_every_photograph_is_landmarked_and_lands_at_the_same_size_and_place(name):
    gray, landmarks = photo_landmarks(name)
    assert gray.dtype == np.uint8 and landmarks.shape == (68, 2)
    image, canonical = canonical_face(name)
    assert image.shape == (CANON_SIZE, CANON_SIZE)
    np.testing.assert_allclose(canonical, landmarks @ canonical_similarity(landmarks)[:, :2].T
                               + canonical_similarity(landmarks)[:, 2])
    left, right = eye_centres(canonical)
    assert abs(left[1] - right[1]) < 1e-9 and _iod(canonical) == pytest.approx(CANON_IOD)
    np.testing.assert_allclose(canonical.mean(0), CANON_CENTRE, atol=1e-9)
    # the image was moved with its landmarks: dlib finds them again where they were carried to
    assert _landmark_error(image, canonical) < 0.04


def test_a_morph_has_the_blended_landmarks_and_its_texture_follows_them():
    names = list(PHOTOS)
    weight = MORPH_WEIGHTS[0]
    morph = IdentitySource(((names[0], 1 - weight), (names[1], weight)))
    (_, first), (_, second) = canonical_face(names[0]), canonical_face(names[1])
    image, landmarks = source_face(morph)
    np.testing.assert_allclose(landmarks, (1 - weight) * first + weight * second, atol=1e-9)
    # dlib sees the face at the blended landmarks, not at either parent's
    error = _landmark_error(image, landmarks)
    assert error < 0.04
    assert error < min(_landmark_error(image, first), _landmark_error(image, second))
    # a one-face source is the photograph itself
    assert source_face(IdentitySource(((names[0], 1.0),)))[0] is canonical_face(names[0])[0]


def test_the_piecewise_affine_map_is_exact_for_a_global_affine():
    """When the source points are one affine image of the target points, every triangle's map is that affine,
    and every pixel lies in a triangle."""
    from scipy.spatial import Delaunay

    rng = np.random.default_rng(0)
    e = CANON_SIZE - 1.0
    target = np.vstack([rng.uniform(40, e - 40, (30, 2)), [[0, 0], [e, 0], [e, e], [0, e]]])
    affine = np.array([[1.1, 0.2, -5.0], [-0.1, 0.9, 7.0]])
    source = target @ affine[:, :2].T + affine[:, 2]
    where = piecewise_affine_map(source, target, Delaunay(target).simplices)
    ys, xs = np.mgrid[0:CANON_SIZE, 0:CANON_SIZE].astype(np.float64)
    expected = np.stack([xs, ys], -1) @ affine[:, :2].T + affine[:, 2]
    np.testing.assert_allclose(where, expected, atol=1e-3)


def test_sources_per_subject_are_fixed_by_the_subject_number():
    cycle = source_cycle()
    names = list(PHOTOS)
    pairs = len(names) * (len(names) - 1) // 2
    assert len(cycle) == PHOTO_REPEATS * len(names) + pairs * len(MORPH_WEIGHTS)
    photos, morphs = cycle[:PHOTO_REPEATS * len(names)], cycle[PHOTO_REPEATS * len(names):]
    assert [s.faces for s in photos] == [(name,) for name in names] * PHOTO_REPEATS  # people alternate
    assert all(len(s.faces) == 2 and abs(sum(w for _, w in s.blend) - 1) < 1e-12 for s in morphs)
    assert [s.blend[1][1] for s in morphs[:len(MORPH_WEIGHTS)]] == list(MORPH_WEIGHTS)
    assert [subject_source(n) for n in range(1, 2 * len(cycle) + 1)] == cycle * 2
    # the default 8 subjects hold each real person alone in 3 subjects, and 2 subjects of both
    default = [subject_source(n).faces for n in range(1, 9)]
    assert [default.count((name,)) for name in names] == [3, 3] and sum(len(f) == 2 for f in default) == 2
    # a subject is drawn from its source: the same stream on another source gives another face
    astronaut, hopper = (make_subject(np.random.default_rng(4), IdentitySource(((n, 1.0),))) for n in names)
    assert astronaut.source.faces == (names[0],) and not np.allclose(astronaut.landmarks, hopper.landmarks)


def test_the_sheet_and_synth_json_say_which_real_faces_each_subject_derives_from(tmp_path):
    settings = SynthSettings(subjects=8, videos_per_subject=1, seed=2, frames_min=8, frames_max=8)
    summary = synth(tmp_path / "set", settings)
    sheet = pd.read_excel(tmp_path / "set" / SHEET_FILE, sheet_name="Sheet1", dtype=str)
    assert list(sheet[SOURCE_COLUMN]) == [subject_source(int(s)).label for s in sheet["Subject"]]
    assert set(sheet[SOURCE_COLUMN]) >= {"astronaut", "grace_hopper", "astronaut 67% + grace_hopper 33%"}
    recorded = json.loads((tmp_path / "set" / SETTINGS_FILE).read_text())["identities"]
    assert recorded == {f"sub{n:02d}": subject_source(n).weights() for n in range(1, 9)}
    assert summary.identities == {f"sub{n:02d}": subject_source(n).label for n in range(1, 9)}
    assert (tmp_path / "set" / GALLERY_FILE).stat().st_size > 10_000

    # the casme2 adapter ignores the extra column: the manifest is the same without it
    plain = tmp_path / "plain.xlsx"
    book = openpyxl.load_workbook(tmp_path / "set" / SHEET_FILE)
    book["Sheet1"].delete_cols(book["Sheet1"].max_column)
    book.save(plain)
    manifests = []
    for name, sheet_file in (("with", tmp_path / "set" / SHEET_FILE), ("without", plain)):
        ingested = ingest(DataSettings(dataset="casme2", root=str(tmp_path / "set" / FRAMES_FOLDER),
                                       annotations=str(sheet_file), classes=5), str(tmp_path / f"{name}.csv"))
        assert ingested.n_rejects == 0 and ingested.n_samples == 8
        manifests.append((tmp_path / f"{name}.csv").read_bytes())
    assert manifests[0] == manifests[1]
