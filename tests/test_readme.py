"""Every command the README shows works as written in the project's venv: each `mol`, `dvc` and `mlflow`
command line of its code blocks and inline code exists, with every flag it uses (checked against the
command's own `--help`); `make` targets exist; the activation script is where the README says."""
from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from components.cli import main

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent  # the venv's bin folder: where `source .venv/bin/activate` puts us
TOOLS = ("mol", "dvc", "mlflow", "make", "source")
# commands whose first words name a subcommand, and how many words deep the subcommands go
DEPTH = {"mol": {"pipeline": 2, "bench": 2}, "dvc": {"exp": 2, "remote": 2, "metrics": 2, "plots": 2},
         "mlflow": {"models": 2}}


def readme_commands() -> list[str]:
    """Command lines of the README: code-block lines and inline code that start with a tool name."""
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"^```[^\n]*\n(.*?)^```", text, re.S | re.M)
    lines = [line.split("  #")[0].strip() for block in blocks for line in block.splitlines()]
    inline = re.findall(r"`([^`\n]+)`", re.sub(r"^```.*?^```", "", text, flags=re.S | re.M))
    found = [c.strip() for c in lines + inline if c.strip().split(" ")[0] in TOOLS]
    return sorted(set(found))


COMMANDS = readme_commands()


def test_the_readme_shows_the_commands_users_run():
    assert {"make run", "make test", "source .venv/bin/activate", "dvc metrics show"} <= set(COMMANDS)
    assert sum(c.startswith("mol ") for c in COMMANDS) >= 10


def words_of(command: str) -> list[str]:
    """The command's words, with usage notation ([...], {a,b}, A|B, UPPER placeholders) taken as written."""
    return shlex.split(re.sub(r"[\[\]()]", " ", command.replace("$(git rev-parse HEAD)", "COMMIT")))


@pytest.mark.parametrize("command", [c for c in COMMANDS if c.split()[0] in ("mol", "dvc", "mlflow")])
def test_command_and_its_flags_exist(command, capsys):
    words = words_of(command)
    tool, rest = words[0], words[1:]
    depth = DEPTH.get(tool, {}).get(rest[0], 1) if rest else 0
    sub = [w for w in rest[:depth] if not w.startswith("-") and not w.isupper()]  # COMMAND: any of them
    if sub and "{" in sub[-1]:  # `mol pipeline {compile,run-local,submit}`: each of them
        variants = [sub[:-1] + [choice] for choice in sub[-1].strip("{}").split(",")]
    else:
        variants = [sub]
    flags = {w.split("=")[0] for w in rest if w.startswith("--")}
    for chain in variants:
        code, text = help_of(tool, chain, capsys)
        assert code == 0, f"`{tool} {' '.join(chain)}` does not exist: {text[-300:]}"
        unknown = sorted(f for f in flags if f not in text)
        assert not unknown, f"`{command}`: {tool} {' '.join(chain)} has no {unknown}"


def help_of(tool: str, chain: list[str], capsys) -> tuple[int, str]:
    """(exit status, help text) of `tool *chain --help`; `mol` in this process (the same entry point)."""
    if tool == "mol":
        with pytest.raises(SystemExit) as exit_:
            main([*chain, "--help"])
        captured = capsys.readouterr()
        return exit_.value.code or 0, captured.out + captured.err
    result = subprocess.run([str(BIN / tool), *chain, "--help"], capture_output=True, text=True, timeout=120)
    return result.returncode, result.stdout + result.stderr


def test_make_targets_and_the_venv_exist():
    targets = set(re.findall(r"^([a-z-]+):", (ROOT / "Makefile").read_text(), re.M))
    for command in COMMANDS:
        if command.startswith("make "):
            assert command.split()[1] in targets, command
    assert (BIN / "activate").is_file() and (BIN / "mol").is_file()
