"""`mol bench probe`: try bad inputs and faults against every stage and tally how each one ends.

Each case (benchmarks/probe_cases.py, benchmarks/probe_input_cases.py) builds its inputs from one small shared base (a 2-subject
synthetic set, ingested, aligned, labelled, split, plus a model file and a hand-made training run), then
runs one `mol` command in its own process with a timeout and classifies the outcome:

  handled        exit 2 with one `mol STAGE: error:` line (a refusal was due), or the reliable result
                 (a reject with its reason, an output redone, a fold named) that the case checks
  traceback      a Python traceback, or an error that is not one clear line
  silent         exit 0 where a refusal was due, or a wrong or stale result the check finds
  hang           no end within the timeout
  data loss      a finished output the case guards was changed or deleted
  secret leaked  the probe's password appears in the output or in any file written

Prints one line per case that is not handled and the tally per class of fault (docs/reliability.md);
exits 1 unless every case is handled. `--keep DIR` keeps every case's folder for a look.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import dataclasses
import http.server
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

OUTCOMES = ("handled", "traceback", "silent", "hang", "data loss", "secret leaked")
CLASSES = ("security", "data loss", "stale results", "silent input", "traceback")
SECRET = "Pr0be-s3cret"
REPO = Path(__file__).resolve().parents[1]
HOLD_CODE = ("import sys, time\nfrom components.io import output_lock\n"
             "with output_lock(sys.argv[1], 'probe'):\n    print('held', flush=True)\n    time.sleep(600)\n")


@dataclass
class Probe:
    """What a case runs and how its outcome is judged."""
    argv: list                       # the probed `mol` command, without `mol`
    expect_error: bool = True        # a refusal (exit 2, one line) is the reliable outcome
    check: Callable[[subprocess.CompletedProcess], str] | None = None  # '' when right, else what is wrong
    env: dict = field(default_factory=dict)
    guard: list[Path] = field(default_factory=list)  # finished files that must survive byte for byte
    hold: Path | None = None         # a folder another process holds while the command runs


@dataclass(frozen=True)
class Case:
    name: str
    kind: str  # one of CLASSES
    build: Callable[[Path, "Base"], Probe]


@dataclass
class Base:
    """The shared inputs (read-only for the cases: a case copies what it changes)."""
    root: Path
    frames: Path        # synthetic frames root (CASME II layout)
    sheet: Path         # its coding sheet (.xlsx)
    manifest: Path
    aligned: Path
    clips: Path
    folds: Path
    model: Path         # a 5-class model file as `mol train` writes it
    closed_port: int
    http_404_port: int
    params: Path        # the params.yaml of the code under test


# ---------------------------------------------------------------------------------------------- running

def run_case(case: Case, base: Base, work: Path, timeout: float, code: Path | None = None) -> tuple[str, str]:
    """(outcome, detail) of one case, run in `work` (with the `components` package of `code` when given)."""
    shutil.rmtree(work, ignore_errors=True)  # a kept folder from an earlier probe
    work.mkdir(parents=True)
    probe = case.build(work, base)
    before = {path: path.read_bytes() for path in probe.guard}
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}  # the probe's own store only
    env |= {"MOL_TRACKING": "off", "PYTHONWARNINGS": "ignore", **probe.env}
    if code:
        env["PYTHONPATH"] = os.pathsep.join([str(code), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    with (held(probe.hold) if probe.hold else contextlib.nullcontext()):
        try:
            result = subprocess.run([sys.executable, "-m", "components.cli", *map(str, probe.argv)], cwd=work, env=env,
                                    capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as e:
            partial = b"".join(p if isinstance(p, bytes) else (p or "").encode() for p in (e.stdout, e.stderr))
            if SECRET.encode() in partial:
                return "secret leaked", f"the password appears in the output (and no end within {timeout:.0f} s)"
            return "hang", f"no end within {timeout:.0f} s"
    return classify(result, probe, work, before)


def classify(result: subprocess.CompletedProcess, probe: Probe, work: Path, before: dict[Path, bytes]) -> tuple[str, str]:
    printed = result.stdout + result.stderr
    if SECRET in printed or any(SECRET.encode() in p.read_bytes() for p in written_files(work)):
        return "secret leaked", "the password appears in the output or a written file"
    lost = [p.name for p, data in before.items() if not p.is_file() or p.read_bytes() != data]
    if lost:
        return "data loss", f"changed or deleted: {', '.join(lost)}"
    last = result.stderr.strip().splitlines()[-1] if result.stderr.strip() else ""
    if "Traceback" in result.stderr:
        return "traceback", last[:160]
    clean_error = result.returncode == 2 and last.startswith("mol ") and ": error: " in last and \
        sum(": error: " in line for line in result.stderr.splitlines()) == 1
    if result.returncode not in (0, 2) or (result.returncode == 2 and not clean_error):
        return "traceback", f"exit {result.returncode}: {last[:160]}"
    if probe.expect_error and result.returncode == 0:
        return "silent", "exit 0 where a refusal was due"
    try:
        wrong = probe.check(result) if probe.check else ""
    except Exception as e:  # the result the check reads is missing or malformed: not the reliable result
        wrong = f"the expected result is not there ({type(e).__name__}: {e})"
    if not probe.expect_error and result.returncode != 0:
        wrong = wrong or f"refused where a result was due: {last[:160]}"
    return ("silent", wrong) if wrong else ("handled", last[:160])


def written_files(work: Path) -> Iterator[Path]:
    for path in work.rglob("*"):
        if path.is_file() and path.stat().st_size < 5_000_000:
            yield path


@contextlib.contextmanager
def held(folder: Path):
    """Another process holding `folder` (as a running stage does) for the duration."""
    holder = subprocess.Popen([sys.executable, "-c", HOLD_CODE, str(folder)], stdout=subprocess.PIPE, text=True)
    try:
        holder.stdout.readline()
        yield holder
    finally:
        holder.kill()
        holder.wait()


# ---------------------------------------------------------------------------------------------- the base

def build_base(root: Path) -> Base:
    """A 2-subject synthetic set through ingest, align, labels and split; a model file; no training."""
    import torch

    from components.align import align
    from components.config import AlignSettings, DataSettings, LabelsSettings, SplitSettings, SynthSettings
    from components.ingest import ingest
    from components.labels import labels
    from components.split import split
    from components.synth import synth
    from components.training.checkpoint import save_model
    from mol_model import MOL

    with contextlib.redirect_stdout(open(os.devnull, "w")), contextlib.redirect_stderr(open(os.devnull, "w")):
        made = synth(root / "synth", SynthSettings(subjects=2, videos_per_subject=2, frames_min=9, frames_max=10))
        ingest(DataSettings(dataset="casme2", root=made.frames_root, annotations=made.annotations),
               root / "data" / "manifest.csv")
        align(root / "data" / "manifest.csv", root / "data" / "aligned", AlignSettings(), workers=1)
        labels(root / "data" / "manifest.csv", root / "data" / "aligned", root / "data" / "clips",
               LabelsSettings(flow="farneback"), workers=1)
        split(root / "data" / "manifest.csv", root / "data" / "folds.json", SplitSettings(), num_classes=5)
        torch.manual_seed(0)
        save_model(root / "model.safetensors", MOL(num_classes=5), {"num_classes": 5, "neighbors": 4,
                                                                    "mer_input": "official"})
    return Base(root, Path(made.frames_root), Path(made.annotations), root / "data" / "manifest.csv",
                root / "data" / "aligned", root / "data" / "clips", root / "data" / "folds.json",
                root / "model.safetensors", free_port(), 0, REPO / "params.yaml")


def free_port() -> int:
    """A port nothing listens on (a tracking server that is down)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def http_404_server() -> Iterator[int]:
    """A web server answering 404 to everything (a proxy or a wrong path rather than MLflow)."""
    class NotFound(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(404)
            self.end_headers()
            self.wfile.write(b"<html>not found</html>")

        do_POST = do_GET

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NotFound)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()


# ---------------------------------------------------------------------------------------------- the tally

def tally_table(results: list[tuple[Case, str, str]]) -> str:
    """Cases per class of fault and outcome, as a markdown table."""
    rows = ["| class | cases | " + " | ".join(OUTCOMES) + " |", "|---|---:|" + "---:|" * len(OUTCOMES)]
    for kind in (*CLASSES, "all"):
        chosen = [(c, o) for c, o, _ in results if kind in ("all", c.kind)]
        cells = [sum(1 for c, o in chosen if o == outcome) for outcome in OUTCOMES]
        name = f"**{kind}**" if kind == "all" else kind
        rows.append(f"| {name} | {len(chosen)} | " + " | ".join(map(str, cells)) + " |")
    return "\n".join(rows)


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--jobs", type=int, default=2, help="cases run at the same time (default 2)")
    parser.add_argument("--timeout", type=float, default=60, help="seconds a case may run (default 60)")
    parser.add_argument("--only", default=None, help="run only the cases whose name contains this text")
    parser.add_argument("--keep", default=None, help="keep the base and every case's folder here (default: removed)")
    parser.add_argument("--code", default=None,
                        help="run the probed commands with the packages of this checkout (e.g. an older commit, to "
                             "measure it); the inputs are still built with this one")


def run(args: argparse.Namespace) -> int:
    from benchmarks import probe_cases, probe_input_cases
    from components.errors import UserError

    cases = [c for c in probe_cases.CASES + probe_input_cases.CASES if args.only is None or args.only in c.name]
    if not cases:
        raise UserError(f"--only {args.only!r} matches no case; the names are in benchmarks/probe_*cases.py")
    if args.jobs < 1:
        raise UserError(f"--jobs must be at least 1 (got {args.jobs})")
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="mol-probe-"))
    start = time.perf_counter()
    try:
        print(f"probe: building the base in {root} ...", flush=True)
        base = build_base(root / "base")
        with http_404_server() as port:
            base = dataclasses.replace(base, http_404_port=port,
                                       params=Path(args.code or REPO).resolve() / "params.yaml")
            print(f"probe: {len(cases)} cases, {args.jobs} at a time, {args.timeout:.0f} s each at most", flush=True)
            with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
                code = Path(args.code).resolve() if args.code else None
                futures = {pool.submit(run_case, case, base, root / "cases" / case.name, args.timeout, code): case
                           for case in cases}
                results = []
                for future in concurrent.futures.as_completed(futures):
                    case = futures[future]
                    outcome, detail = future.result()
                    results.append((case, outcome, detail))
                    if outcome != "handled":
                        print(f"  {outcome:<13} {case.name}: {detail}", flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    results.sort(key=lambda r: (CLASSES.index(r[0].kind), r[0].name))
    print(f"\n{tally_table(results)}\n\n{len(results)} cases in {time.perf_counter() - start:.0f} s")
    return 0 if all(outcome == "handled" for _, outcome, _ in results) else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m benchmarks.probe", description=__doc__.splitlines()[0])
    configure_parser(parser)
    sys.exit(run(parser.parse_args()))
