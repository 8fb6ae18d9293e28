"""Helpers of the reliability tests (test_reliability.py, test_bad_inputs.py): a failed `mol` command's
one error line, and the cheapest training schedule. Their shared inputs are fixtures in conftest.py."""
from __future__ import annotations

from components.cli import main
from components.config import TrainSettings

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
