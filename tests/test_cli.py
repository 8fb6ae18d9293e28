"""The `mol` entry point: help, unknown commands, and one-line errors."""
import subprocess
import sys

from components import cli
from components.errors import UserError


def run_mol(*args):
    return subprocess.run([sys.executable, "-m", "components.cli", *args], capture_output=True, text=True)


def test_help_lists_every_stage():
    result = run_mol("--help")
    assert result.returncode == 0
    for name in cli.COMMANDS:
        assert name in result.stdout


def test_unknown_command_is_a_usage_error():
    result = run_mol("frobnicate")
    assert result.returncode == 2
    assert "invalid choice" in result.stderr


def test_user_error_becomes_one_line_and_exit_2(monkeypatch, capsys):
    class FakeStage:
        @staticmethod
        def configure_parser(parser):
            parser.add_argument("--x")

        @staticmethod
        def run(args):
            raise UserError("the thing is wrong; do this to mend it")

    monkeypatch.setattr(cli.importlib, "import_module", lambda name: FakeStage)
    assert cli.main(["split", "--x", "1"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "mol split: error: the thing is wrong; do this to mend it"
    assert "Traceback" not in err
