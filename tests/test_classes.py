"""Class sets per data set: what `--classes` accepts for each `--dataset`, and the label maps."""
from __future__ import annotations

import pytest

from components.cli import main
from components.config import DataSettings
from components.data import ADAPTERS
from components.data.classes import CLASS_SETS, THREE_CLASSES, dataset_label_map
from components.errors import UserError

ACCEPTED = {"casme2": {3, 5}, "samm": {3, 5}, "smic": {3}, "megc2019": {3}, "casme3": {3, 4, 7}, "mmew": {3, 7},
            "4dme": {3, 5}, "folder": {3, 5}}


def test_every_dataset_has_its_class_sets():
    assert set(CLASS_SETS) == set(ADAPTERS)
    for dataset in ADAPTERS:
        for classes in (3, 4, 5, 7):
            if classes in ACCEPTED[dataset]:
                assert DataSettings(dataset=dataset, classes=classes).classes == classes
            else:
                with pytest.raises(UserError, match=f"{dataset} (has|defines) .*not {classes}; use --classes"):
                    DataSettings(dataset=dataset, classes=classes)


@pytest.mark.parametrize("dataset, classes, words, expected", [
    ("casme3", 7, ["happy", "sad", "Others", "disgust"], [(1, "happiness"), (5, "sadness"), (6, "others"), (2, "disgust")]),
    ("casme3", 4, ["happy", "fear", "Others", "surprise"], [(1, "positive"), (2, "negative"), (3, "others"), (0, "surprise")]),
    ("casme3", 3, ["anger", "sad", "happy"], [(2, "negative"), (2, "negative"), (1, "positive")]),
    ("casme2", 3, ["repression", "happiness"], [(2, "negative"), (1, "positive")]),
    ("samm", 5, ["Contempt", "Other"], [(3, "contempt"), (4, "others")]),
])
def test_label_maps(dataset, classes, words, expected):
    assert [dataset_label_map(dataset, classes).lookup(w) for w in words] == expected


def test_words_outside_a_set_are_rejects_not_errors():
    with pytest.raises(ValueError, match="emotion 'others' is not in the 3-class set"):
        dataset_label_map("casme3", 3).lookup("others")
    with pytest.raises(ValueError, match="emotion 'fear' is not in the 5-class set"):
        dataset_label_map("casme2", 5).lookup("fear")
    assert dataset_label_map("smic", 3).class_names == THREE_CLASSES


def test_cli_names_the_sets_in_one_line(tmp_path, capsys):
    code = main(["ingest", "--dataset", "casme3", "--root", str(tmp_path), "--classes", "5", "--out", str(tmp_path / "m.csv")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and "casme3 defines 3, 4 or 7 classes, not 5; use --classes 3, 4 or 7" in err
