"""`mol bench ablation`: joint training (MER + flow + landmarks) against MER-only training (flow and
landmark weights 0), on the same clips and folds, for several seeds, pooled over the folds as
`mol evaluate` pools them.

Both arms share every other setting and, per seed, the initial weights and the batches (both are pure
functions of the seed: components/train.py), so the loss weights are the only difference. Each
(arm, seed) is one `mol train --all` into OUT/<arm>-seed<S>/ followed by `mol evaluate` of it, without
MLflow or registration; finished folds are reused, so an interrupted comparison continues where it
stopped. Prints one row per run and the mean +- standard deviation per arm (markdown), with the number
of folds whose test predictions collapsed to one class (pooled over folds that each collapse to another
class, UF1 rises above the one-class 0.067 without anything being learnt: UAR stays at chance), and the
margin: the step at which the training accuracy passed 0.8 (components/training/margin.py; the slowest
fold's), beside its share of the schedule.
"""
from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np

from components.config import EvaluateSettings, ExecutionSettings, TrainSettings, load_params
from components.errors import UserError
from components.evaluate import evaluate
from components.train import train
from components.training.margin import PASS_ACCURACY

ARMS = {"joint": {}, "MER-only": {"flow_weight": 0.0, "landmark_weight": 0.0}}
COLUMNS = ("uf1", "uar", "acc", "clip_uf1", "flow_epe", "landmark_nme")


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--clips", default="data/clips", help="clip files of `mol labels` (default data/clips)")
    parser.add_argument("--folds", default="data/folds.json", help="FOLDS.json of `mol split` (default data/folds.json)")
    parser.add_argument("--out", default="runs/ablation", help="one folder per arm and seed (default runs/ablation)")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default 0,1,2)")
    parser.add_argument("--arms", default=",".join(ARMS),
                        help=f"comma-separated arms to run (default {','.join(ARMS)}; `--arms joint`: the margin of "
                             "the default schedule alone, in half the time)")
    parser.add_argument("--params", default="params.yaml",
                        help="the schedule of both arms: this file's train: and execution: sections (default "
                             "params.yaml, the laptop schedule); the flags below override single keys")
    # every `mol train` setting, for both arms (the MER-only arm then zeroes the two auxiliary weights)
    TrainSettings.add_arguments(parser)
    ExecutionSettings.add_arguments(parser, only=("device", "threads", "checkpoint_every", "eval_batch_size"))


def parse_seeds(text: str) -> list[int]:
    try:
        seeds = [int(part) for part in text.split(",")]
    except ValueError:
        raise UserError(f"--seeds {text!r} is not a comma-separated list of integers, e.g. 0,1,2") from None
    if len(set(seeds)) != len(seeds):
        raise UserError(f"--seeds {text} repeats a seed; list each once")
    return seeds


def run_arm(args: argparse.Namespace, schedule: TrainSettings, execution: ExecutionSettings, arm: str,
            seed: int) -> dict:
    """Train every fold of one (arm, seed) and pool it: the table row."""
    config = dataclasses.replace(schedule, seed=seed, **ARMS[arm])
    out = Path(args.out) / f"{arm}-seed{seed}"
    folds = [m for m in train(args.clips, args.folds, out, config=config, execution=execution, track=False)
             if m["status"] == "done"]
    pooled = evaluate(out, out / "evaluation", EvaluateSettings(register=False), track=False)
    return {"arm": arm, "seed": seed, "uf1": pooled["uf1"], "uar": pooled["uar"], "acc": pooled["acc"],
            "clip_uf1": pooled["clip"]["uf1"], "flow_epe": pooled["flow_epe"], "landmark_nme": pooled["landmark_nme"],
            "collapsed": sum(bool(m["collapsed"]) for m in folds), "folds": len(folds),
            "pass_step": slowest_pass([m.get("train_acc_pass_step") for m in folds]), "steps": config.steps}


def slowest_pass(steps: list[int | None]) -> int | None:
    """The step by which every fold's training accuracy had passed 0.8; None if one never did."""
    return None if not steps or None in steps else max(steps)


def pass_cell(rows: list[dict]) -> str:
    """The pass step with its share of the schedule: one run's, or the mean +- sd and the latest of several."""
    passed = [r["pass_step"] for r in rows if r["pass_step"] is not None]
    if len(passed) < len(rows):
        return f"never ({len(rows) - len(passed)} of {len(rows)})" if len(rows) > 1 else "never"
    latest = max(rows, key=lambda r: r["pass_step"] / r["steps"])
    share = f"{latest['pass_step']} ({latest['pass_step'] / latest['steps']:.0%})"
    return share if len(rows) == 1 else f"{np.mean(passed):.0f} ± {np.std(passed):.0f}, latest {share}"


def format_table(rows: list[dict]) -> str:
    header = ("| arm | seed | video UF1 | video UAR | video acc | clip UF1 | flow EPE (px) | landmark NME "
              f"| folds predicting one class | training acc ≥ {PASS_ACCURACY} at step (% of schedule) |")
    lines = [header, "|---|---:|---:|---:|---:|---:|---:|---:|---|---:|"]
    for r in rows:
        lines.append(f"| {r['arm']} | {r['seed']} | " + " | ".join(f"{r[c]:.3f}" for c in COLUMNS)
                     + f" | {r['collapsed']} of {r['folds']} | {pass_cell([r])} |")
    for arm in ARMS:
        mine = [r for r in rows if r["arm"] == arm]
        if mine:
            cells = [f"{np.mean([r[c] for r in mine]):.3f} ± {np.std([r[c] for r in mine]):.3f}" for c in COLUMNS]
            lines.append(f"| **{arm}, mean ± sd** | {len(mine)} seeds | " + " | ".join(cells)
                         + f" | {sum(r['collapsed'] for r in mine)} of {sum(r['folds'] for r in mine)} "
                           f"| {pass_cell(mine)} |")
    return "\n".join(lines)


def parse_arms(text: str) -> list[str]:
    arms = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [arm for arm in arms if arm not in ARMS]
    if unknown or not arms:
        raise UserError(f"--arms {text!r}: choose from {', '.join(ARMS)} (comma-separated)")
    return arms


def run(args: argparse.Namespace) -> int:
    seeds, arms = parse_seeds(args.seeds), parse_arms(args.arms)
    params = load_params(args.params)
    schedule, execution = TrainSettings.from_args(args, params), ExecutionSettings.from_args(args, params)
    rows = [run_arm(args, schedule, execution, arm, seed) for seed in seeds for arm in arms]
    s = schedule
    print(f"\n{' vs '.join(arms)}: {s.steps} steps of batch {s.batch_size} per fold, lr {s.lr} "
          f"({s.lr_schedule}, {s.warmup_steps} warm-up steps), {s.init} initialisation, "
          f"balance {s.balance}, MER input {s.mer_input}, MER dropout {s.mer_dropout}; "
          f"video-level metrics pooled over the folds of {args.folds}")
    print(format_table(rows))
    return 0
