"""The `mol` command: one subcommand per pipeline stage, plus `pipeline`, `bench` and `params`.

Each subcommand's module defines ``configure_parser(parser)`` (its flags) and ``run(args) -> int``.
Modules are imported only when their subcommand runs, so ``mol --help`` stays fast.
A ``UserError`` becomes one line on stderr and exit status 2, as does an OSError (a file the system
refused: permissions, a full disk), which is the environment's fault rather than a bug. Every error line
goes through `redact`, so no password in a URI reaches the terminal.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from components.errors import UserError, redact

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
    "bench": ("benchmarks.cli", "speed and memory benchmarks (model, preprocess, ablation)"),
    "params": ("components.config", "check a params.yaml, or print the reference of every setting"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mol",
        description="MOL micro-expression pipeline. Run `mol COMMAND --help` for a command's flags.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS:
        build_parser().parse_args(argv or ["--help"])  # prints help or a usage error and exits
        return 2
    name, rest = argv[0], argv[1:]
    module_name, help_text = COMMANDS[name]
    module = importlib.import_module(module_name)
    stage_parser = argparse.ArgumentParser(prog=f"mol {name}", description=help_text)
    module.configure_parser(stage_parser)
    args = stage_parser.parse_args(rest)
    try:
        return int(module.run(args) or 0)
    except UserError as e:
        print(f"mol {name}: error: {redact(e)}", file=sys.stderr)
        return 2
    except OSError as e:  # e.g. ENOSPC, EACCES on a path the stage could not check in advance
        where = f": {e.filename}" if e.filename else ""
        print(redact(f"mol {name}: error: {e.strerror or e}{where}; check that path (free space, "
                     "permissions) and rerun the same command"), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"mol {name}: interrupted; rerun the same command to resume.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
