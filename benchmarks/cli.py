"""`mol bench {model,preprocess,ablation,cross-person,probe}`: speed and memory tables (docs/performance.md,
docs/preprocessing.md), the joint vs MER-only comparison and the cross-person score (docs/training.md), and
the reliability probe (docs/reliability.md)."""
from __future__ import annotations

import argparse
import importlib

from components.errors import UserError

BENCHMARKS = {
    "model": ("benchmarks.model", "MOL training-step and inference speed and memory against the matmul roof"),
    "preprocess": ("benchmarks.preprocess", "alignment and flow-label speed against the official recipe"),
    "ablation": ("benchmarks.ablation", "joint training against MER-only training on the same folds, several seeds"),
    "cross-person": ("benchmarks.cross_person", "train on the synthetic subjects of one real face, test on another's"),
    "probe": ("benchmarks.probe", "bad inputs and faults against every stage: how many end in one clear line"),
}


def configure_parser(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="benchmark", metavar="BENCHMARK", required=True)
    for name, (module_name, help_text) in BENCHMARKS.items():
        importlib.import_module(module_name).configure_parser(sub.add_parser(name, help=help_text,
                                                                             description=help_text))


def run(args: argparse.Namespace) -> int:
    module = importlib.import_module(BENCHMARKS[args.benchmark][0])
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
