"""`mol bench cross-person` on a tiny synthetic set (mechanics only: one training step): each direction
trains on the subjects of one real face and tests on those of the other, morphs left out."""
from __future__ import annotations

import json

import pandas as pd

from components.cli import main
from components.config import DataSettings, SynthSettings
from components.data import read_manifest
from components.ingest import ingest
from components.synth import synth
from components.synthetic.render import FRAMES_FOLDER
from components.synthetic.sheet import SHEET_FILE, SOURCE_COLUMN
from fixtures_clips import write_clip_file


def test_cross_person_folds_hold_only_one_real_face_on_each_side(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MOL_TRACKING", "off")
    synthetic, manifest, clips, out = (tmp_path / name for name in ("set", "manifest.csv", "clips", "cross"))
    # 7 subjects: 3 of the astronaut, 3 of Grace Hopper, 1 morph of both
    synth(synthetic, SynthSettings(subjects=7, videos_per_subject=2, seed=0, frames_min=8, frames_max=8))
    ingest(DataSettings(dataset="casme2", root=str(synthetic / FRAMES_FOLDER),
                        annotations=str(synthetic / SHEET_FILE), classes=5), str(manifest))
    table = read_manifest(manifest)
    for seed, row in enumerate(table.itertuples()):  # stand-ins for `mol labels` output: the bench only reads ids
        write_clip_file(clips, row.sample_id, row.subject, int(row.label), seed)
    command = ["bench", "cross-person", "--synthetic", str(synthetic), "--manifest", str(manifest),
               "--clips", str(clips), "--out", str(out), "--steps", "1", "--batch-size", "1"]
    assert main(command) == 0
    printed = capsys.readouterr().out

    # checked against the coding sheet's Real faces column (the bench reads synth.json)
    sheet = pd.read_excel(synthetic / SHEET_FILE, sheet_name="Sheet1", dtype=str)
    face_of_subject = {f"casme2/{s}": faces for s, faces in zip(sheet["Subject"], sheet[SOURCE_COLUMN])}
    face_of_sample = {sid: face_of_subject[subject] for sid, subject in zip(table["sample_id"], table["subject"])}
    assert sorted(set(face_of_subject.values())) == ["astronaut", "astronaut 67% + grace_hopper 33%", "grace_hopper"]
    for trained, tested in (("astronaut", "grace_hopper"), ("grace_hopper", "astronaut")):
        folds = json.loads((out / f"{trained}-to-{tested}" / "folds.json").read_text())
        assert folds["mode"] == "cross-person" and len(folds["folds"]) == 1
        fold = folds["folds"][0]
        assert sorted(fold["train"]) == sorted(sid for sid, face in face_of_sample.items() if face == trained)
        assert sorted(fold["test"]) == sorted(sid for sid, face in face_of_sample.items() if face == tested)
        assert fold["test_subjects"] == sorted({table.set_index("sample_id").loc[sid, "subject"] for sid in fold["test"]})
        pooled = json.loads((out / f"{trained}-to-{tested}" / "evaluation" / "metrics.json").read_text())
        assert pooled["video"]["n"] == len(fold["test"]) == 6
        assert (f"| {trained} (3) | {tested} (3, 6) | {pooled['uf1']:.3f} | {pooled['uf1_chance']:.3f} | "
                f"{pooled['uf1_majority']:.3f} | {pooled['uar']:.3f} | {pooled['flow_epe']:.3f} | "
                f"{pooled['flow_epe_zero']:.3f} |") in printed

    # a rerun reuses the finished folds; a folder that is not a synthetic set is one clear line
    assert main(command) == 0
    assert capsys.readouterr().out.count("is finished") == 2
    assert main([*command[:2], "--synthetic", str(tmp_path), *command[4:]]) == 2
    err = capsys.readouterr().err
    assert "does not say which real faces the subjects derive from" in err and err.count("\n") == 1
