"""`mol bench {model,preprocess,ablation}`: speed and memory tables (docs/performance.md, docs/preprocessing.md)
and the joint vs MER-only comparison (docs/training.md)."""
from __future__ import annotations

import argparse
import importlib
import sys

from components.errors import UserError

BENCHMARKS = {
    "model": ("benchmarks.model", "MOL training-step and inference speed and memory against the matmul roof"),
    "preprocess": ("benchmarks.preprocess", "alignment and flow-label speed against the official recipe"),
    "ablation": ("benchmarks.ablation", "joint training against MER-only training on the same folds, several seeds"),
}


def configure_parser(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="benchmark", metavar="BENCHMARK", required=True)
    for name, (module_name, help_text) in BENCHMARKS.items():
        sub_parser = sub.add_parser(name, help=help_text, description=help_text)
        module = _load(module_name)
        if module is not None:
            module.configure_parser(sub_parser)


_load_errors: dict[str, ImportError] = {}


def _load(module_name: str):
    """The benchmark module, or None when it is absent or fails to import (the error is kept for `run`):
    one broken benchmark must not stop the others from running."""
    if module_name in _load_errors:
        return None
    try:
        return importlib.import_module(module_name)
    except ImportError as e:
        _load_errors[module_name] = e
        return None


def run(args: argparse.Namespace) -> int:
    module_name = BENCHMARKS[args.benchmark][0]
    module = _load(module_name)
    if module is None:
        error = _load_errors[module_name]
        if isinstance(error, ModuleNotFoundError) and error.name == module_name:
            print(f"mol bench {args.benchmark}: this benchmark is not built yet in this version.", file=sys.stderr)
            return 2
        raise error
    if args.benchmark == "model":
        module.run(batch_sizes=parse_batch_sizes(args.batch_sizes), steps=args.steps, warmup=args.warmup,
                   device=args.device, threads=args.threads, baseline=args.baseline,
                   keep_memory=not args.glibc_default_malloc, profile=args.profile)
        return 0
    return int(module.run(args) or 0)


def parse_batch_sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(part) for part in text.split(","))
    except ValueError:
        sizes = ()
    if not sizes or min(sizes) < 1:
        raise UserError(f"--batch-sizes {text!r} is not a comma-separated list of positive integers, e.g. 4,16")
    return sizes
