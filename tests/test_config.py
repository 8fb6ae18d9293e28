"""The one definition of every setting: params files, flags and docs all come from components/config.py."""
import argparse
from pathlib import Path

import pytest

from components.cli import main
from components.config import (SECTIONS, ExecutionSettings, TrainSettings, add_params_argument, load_params,
                               markdown_reference)
from components.errors import UserError

ROOT = Path(__file__).resolve().parents[1]


def write(tmp_path, text: str) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("name", ["params.yaml", "params-paper.yaml"])
def test_the_shipped_params_files_are_valid_and_list_every_key(name):
    import yaml

    document = yaml.safe_load((ROOT / name).read_text())
    load_params(ROOT / name)
    for cls in SECTIONS:
        assert sorted(document[cls.section]) == sorted(cls.keys()), f"{name} `{cls.section}:` lists every key"


@pytest.mark.parametrize("text, message", [
    ("train:\n  stpes: 10\n", "unknown key train.stpes (did you mean steps?)"),
    ("trian:\n  steps: 10\n", "unknown section trian: (did you mean train?)"),
    ("train:\n  lr: fast\n", "train.lr"),
    ("train:\n  steps: 0\n", "train.steps"),
    ("train:\n  steps: 2.5\n", "train.steps"),
    ("train:\n  precision: fp16\n", "train.precision"),
    ("train:\n  select_on_test: maybe\n", "train.select_on_test"),
    ("data:\n  classes: 6\n", "data.classes"),
    ("split:\n  mode: bogus\n", "split.mode"),
    ("kubeflow:\n  gpus_per_fold: -1\n", "kubeflow.gpus_per_fold"),
    ("train: [1, 2]\n", "`train:` must be a mapping"),
    ("train:\n  lr: [\n", "not valid YAML"),
])
def test_a_bad_value_is_refused_by_name(tmp_path, text, message):
    with pytest.raises(UserError, match=None) as caught:
        load_params(write(tmp_path, text))
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_non_utf8_bytes_are_refused(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_bytes(b"train:\n  lr: \xff\xfe\n")
    with pytest.raises(UserError, match="not UTF-8"):
        load_params(path)


def test_missing_keys_take_their_defaults_and_numbers_are_coerced(tmp_path):
    params = load_params(write(tmp_path, "train:\n  steps: 50.0\n  lr: 1\n"))
    train = params.section(TrainSettings)
    assert train.steps == 50 and isinstance(train.steps, int)  # Kubeflow hands whole numbers over as floats
    assert train.lr == 1.0 and isinstance(train.lr, float)
    assert train.batch_size == TrainSettings().batch_size
    assert params.section(ExecutionSettings) == ExecutionSettings()


def test_flags_are_generated_and_win_over_the_file(tmp_path):
    parser = argparse.ArgumentParser()
    add_params_argument(parser)
    TrainSettings.add_arguments(parser)
    path = write(tmp_path, "train:\n  steps: 50\n  lr: 0.01\n  select_on_test: true\n")
    args = parser.parse_args(["--params", str(path), "--lr", "3e-4", "--no-select-on-test"])
    train = TrainSettings.from_args(args, load_params(args.params))
    assert (train.steps, train.lr, train.select_on_test) == (50, 3e-4, False)
    assert TrainSettings.from_args(parser.parse_args([])) == TrainSettings()
    with pytest.raises(SystemExit):
        parser.parse_args(["--precision", "fp16"])  # choices come from the definition


def test_mol_params_checks_a_file_in_one_line(tmp_path, capsys):
    assert main(["params", str(ROOT / "params.yaml")]) == 0
    assert "every key is known" in capsys.readouterr().out
    assert main(["params", str(write(tmp_path, "execution:\n  workrs: 2\n"))]) == 2
    err = capsys.readouterr().err.strip()
    assert "execution.workrs (did you mean workers?)" in err and "\n" not in err


def test_the_configuration_docs_are_generated_from_the_definition():
    text = (ROOT / "docs" / "configuration.md").read_text()
    marker = "a test keeps them in step with the code).\n\n"
    assert text.split(marker, 1)[1] == markdown_reference(), "regenerate the tables with `mol params --markdown`"
