"""The `mol` command: one subcommand per pipeline stage.

Each stage module defines ``configure_parser(parser)`` (its flags) and ``run(args) -> int``.
Modules are imported only when their subcommand runs, so ``mol --help`` stays fast.
A ``UserError`` becomes one line on stderr and exit status 2.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from components.errors import UserError

# subcommand -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "synth": ("components.synth", "write the synthetic micro-expression data set (CASME II layout)"),
    "ingest": ("components.ingest", "read a data set as distributed into a manifest CSV (+ rejects.csv)"),
    "align": ("components.align", "detect, landmark and align faces: one .npz per sample"),
    "labels": ("components.labels", "cut 8-frame clips, crops, TV-L1 flow and landmark labels"),
    "split": ("components.split", "leave-one-subject-out (or other) folds as FOLDS.json"),
    "train": ("components.train", "joint MOL training per fold, tracked in MLflow"),
    "evaluate": ("components.evaluate", "pool fold results into metrics and plots; register the best model"),
    "predict": ("components.predict", "run a trained model on a video or a folder of frames"),
    "pipeline": ("pipeline.cli", "compile, run locally, or submit the Kubeflow pipeline"),
    "bench": ("components.bench", "speed and memory benchmarks (model, preprocess)"),
}


def _load(module_name: str):
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name == module_name:
            return None
        raise


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mol",
        description="MOL micro-expression pipeline. Run `mol COMMAND --help` for a command's flags.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def explicit_switches(parser: argparse.ArgumentParser, argv: list[str]) -> list[str]:
    """Accept `--flag=true|false` for every yes/no flag, as dvc.yaml passes params.yaml booleans
    (`--register=${evaluate.register}`): true gives `--flag`, false `--no-flag` where it exists, else nothing."""
    switches = {option for action in parser._actions for option in action.option_strings
                if isinstance(action, argparse.BooleanOptionalAction)
                or (action.nargs == 0 and isinstance(action.const, bool))}
    rewritten = []
    for token in argv:
        option, equals, value = token.partition("=")
        if not equals or option not in switches or value.lower() not in ("true", "false"):
            rewritten.append(token)
        elif value.lower() == "true":
            rewritten.append(option)
        elif f"--no-{option[2:]}" in switches:
            rewritten.append(f"--no-{option[2:]}")
    return rewritten


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if not argv or argv[0] not in COMMANDS:
        parser.parse_args(argv or ["--help"])  # prints help or a usage error and exits
        return 2
    name, rest = argv[0], argv[1:]
    module_name, help_text = COMMANDS[name]
    module = _load(module_name)
    if module is None:
        print(f"mol {name}: this stage is not built yet in this version.", file=sys.stderr)
        return 2
    stage_parser = argparse.ArgumentParser(prog=f"mol {name}", description=help_text)
    module.configure_parser(stage_parser)
    args = stage_parser.parse_args(explicit_switches(stage_parser, rest))
    try:
        return int(module.run(args) or 0)
    except UserError as e:
        print(f"mol {name}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"mol {name}: interrupted; rerun the same command to resume.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
