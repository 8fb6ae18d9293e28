"""`mol pipeline {compile,run-local,submit}`: the Kubeflow pipeline from params.yaml.

    mol pipeline compile --out pipeline.yaml            IR YAML to upload in the Kubeflow UI
    mol pipeline run-local --workdir kfp-local          the whole DAG here, through kfp.local (no cluster)
    mol pipeline submit --host URL [--wait]             compile and start a run on a cluster

run-local prints one line per finished step and keeps kfp.local's own log (every task's inputs and
outputs, every step's output) in WORKDIR/run-local.log; `--verbose` prints that log instead. Its MLflow
runs go where `mol train` puts them from here (MLFLOW_TRACKING_URI, else ./mlflow.db and ./mlartifacts),
so `mlflow ui --backend-store-uri sqlite:///mlflow.db` shows them beside the DVC runs.

All three read params.yaml (`--params`, checked whole against components/config.py), take `--param
section.key=value` overrides (as `dvc exp run -S`), and use its sections as the pipeline's parameters;
`kubeflow:` holds the compile-time settings.
"""
from __future__ import annotations

import argparse
import contextlib
import logging
import os
import re
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Iterator

from components.errors import UserError
from components.io import check_output

TOKEN_ENV = "KF_PIPELINES_TOKEN"
LOCAL_OUTPUTS = ".kfp-outputs"  # kfp.local's per-task files, inside the run folder
LOCAL_LOG = "run-local.log"     # kfp.local's own log, inside the run folder
ANSI = re.compile(r"\x1b\[[0-9;]*m")  # kfp.local colours task names and states


def configure_parser(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--params", default="params.yaml", help="the configuration file (default params.yaml)")
        p.add_argument("--param", action="append", default=[], metavar="SECTION.KEY=VALUE",
                       help="override one value of params.yaml, e.g. --param train.lr=3e-4 (repeatable)")

    c = sub.add_parser("compile", help="write the pipeline as KFP IR YAML, defaults from params.yaml")
    common(c)
    c.add_argument("--out", default="pipeline.yaml", help="YAML file to write (default pipeline.yaml)")

    r = sub.add_parser("run-local", help="run the whole pipeline here through kfp.local's subprocess runner")
    common(r)
    r.add_argument("--workdir", default="kfp-local",
                   help="run folder: data/, runs/, reports/ and the log go here (default kfp-local); "
                        "rerunning into the same folder skips work already done. MLflow runs go to "
                        "MLFLOW_TRACKING_URI, else ./mlflow.db (where `mlflow ui` run here looks)")
    r.add_argument("--verbose", action="store_true",
                   help=f"print kfp.local's whole log (every task's inputs as JSON, its output) instead of one "
                        f"line per step; it is kept in WORKDIR/{LOCAL_LOG} either way")
    r.add_argument("--parallelism", type=int, default=1,
                   help="folds trained at the same time (default 1: each fold needs a few GB of memory)")

    s = sub.add_parser("submit", help="compile and start a run on a Kubeflow Pipelines cluster")
    common(s)
    s.add_argument("--host", required=True,
                   help="Kubeflow Pipelines API endpoint, e.g. https://kubeflow.example.com/pipeline")
    s.add_argument("--experiment", default="mol", help="Kubeflow experiment to file the run under (default mol)")
    s.add_argument("--run-name", default="",
                   help="name of the run and of its folder on the volume (default: the run's id); reuse a "
                        "name to resume an interrupted run of the same configuration")
    s.add_argument("--namespace", default=None, help="Kubernetes namespace of a multi-user installation")
    s.add_argument("--wait", action="store_true", help="wait for the run to finish; exit 1 unless it succeeded")
    s.add_argument("--timeout", type=int, default=24 * 3600, help="seconds --wait waits at most (default 86400)")


def run(args: argparse.Namespace) -> int:
    return {"compile": compile_command, "run-local": run_local_command, "submit": submit_command}[args.action](args)


# ---------------------------------------------------------------------------------------------- actions

def compile_command(args: argparse.Namespace) -> int:
    check_output(args.out, "file")
    if not str(args.out).endswith((".yaml", ".yml")):  # KFP's compiler writes nothing else
        raise UserError(f"--out {args.out} must end with .yaml (the pipeline is written as KFP IR YAML)")
    pipeline, arguments, settings = configured_pipeline(args.params, args.param)
    warn_if_placeholder(settings.image)
    compile_pipeline(pipeline, arguments, args.out)
    print(f"pipeline '{pipeline.name}' written to {args.out} (image {settings.image}, "
          f"{settings.parallelism or 'all'} folds at a time, runs in {arguments['run_root']} on PVC {settings.pvc})")
    return 0


def run_local_command(args: argparse.Namespace) -> int:
    import kfp.local

    from components.tracking import runs as tracking

    check_output(args.workdir, flag="--workdir")
    local = [f"kubeflow.parallelism={args.parallelism}", "kubeflow.retries=0"]  # a failing step fails at once
    pipeline, arguments, _ = configured_pipeline(args.params, args.param + local)
    workdir = Path(args.workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / LOCAL_LOG
    kfp.local.init(runner=kfp.local.SubprocessRunner(use_venv=False), pipeline_root=str(workdir / LOCAL_OUTPUTS))
    # Locally the image and the Kubernetes settings are not used; kfp.local warns about them for every task.
    warnings.filterwarnings("ignore", message=".*non-Python base image.*", category=RuntimeWarning)
    warnings.filterwarnings("ignore", message=".*no effect in the current local runner.*", category=UserWarning)
    store = tracking.tracking_uri()  # resolved here: the steps run inside the run folder
    with _environment(MLFLOW_TRACKING_URI=store):
        if tracking.tracking_enabled():  # made here, so that its artifacts go to ./mlartifacts beside ./mlflow.db
            tracking.prepare_experiment(arguments["mlflow"]["experiment"])
        try:
            with contextlib.nullcontext() if args.verbose else _one_line_per_step(log):
                task = pipeline(**(arguments | {"run_root": str(workdir.parent), "run_name": workdir.name}))
        except RuntimeError as e:
            failed = re.findall(r"Inner task failed: '([^']+)'", ANSI.sub("", str(e)))
            where = f" at step {failed[-1]}" if failed else ""
            raise UserError(f"the local pipeline run failed{where}: {_failure_reason(log)}; its output is in {log}"
                            f"{'' if args.verbose else ' (or rerun with --verbose)'}") from None
    print(f"run-local: finished, pooled video UF1 {task.output:.3f}; results in {workdir / 'reports'}")
    if tracking.tracking_enabled():
        print(f"run-local: MLflow runs in {store}: mlflow ui --backend-store-uri {store}")
    return 0


def submit_command(args: argparse.Namespace) -> int:
    import kfp
    from kfp_server_api.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    pipeline, arguments, settings = configured_pipeline(args.params, args.param)
    warn_if_placeholder(settings.image)
    arguments["run_name"] = args.run_name
    token = os.environ.get(TOKEN_ENV) or None
    warnings.filterwarnings("ignore", message="This client only works with Kubeflow Pipeline v2",
                            category=FutureWarning)
    try:
        client = kfp.Client(host=args.host, existing_token=token,
                            **({"namespace": args.namespace} if args.namespace else {}))
        with tempfile.TemporaryDirectory() as tmp:
            package = str(Path(tmp) / "pipeline.yaml")
            compile_pipeline(pipeline, arguments, package)
            result = client.create_run_from_pipeline_package(
                package, arguments=arguments, run_name=args.run_name or None, experiment_name=args.experiment,
                namespace=args.namespace, enable_caching=False)
        print(f"submitted run {result.run_id} to {args.host} (experiment {args.experiment})")
        if not args.wait:
            return 0
        finished = client.wait_for_run_completion(result.run_id, timeout=args.timeout)
    except (HTTPError, ApiException, OSError) as e:
        first_line = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise UserError(f"Kubeflow Pipelines at {args.host} did not accept the request ({first_line[:300]}); "
                        f"check --host and the token in {TOKEN_ENV}") from None
    state = str(getattr(finished, "state", "UNKNOWN"))
    print(f"run {result.run_id} finished: {state}")
    return 0 if state.upper() == "SUCCEEDED" else 1


# ---------------------------------------------------------------------------------------------- helpers

def warn_if_placeholder(image: str) -> None:
    """One line when the pods would pull the example image, which does not exist."""
    from components.config import PLACEHOLDER_IMAGE

    if image == PLACEHOLDER_IMAGE:
        print(f"mol pipeline: warning: kubeflow.image is still the placeholder {image}; build and push the "
              "Dockerfile's image, then set kubeflow.image (or --param kubeflow.image=REGISTRY/mol-pipeline:TAG)",
              file=sys.stderr)


@contextlib.contextmanager
def _one_line_per_step(log: Path) -> Iterator[None]:
    """kfp.local's output (its log records and each step's streamed output, all on stdout) goes to `log`;
    here, one line per finished step, from the records kfp.local logs on the root logger."""
    console, began = sys.stdout, time.perf_counter()

    class StepLines(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            finished = re.match(r"Task '([^']+)' finished with status (\w+)", ANSI.sub("", record.getMessage()))
            if finished:
                print(f"run-local: {time.perf_counter() - began:6.0f} s  {finished[1]}: {finished[2].lower()}",
                      file=console, flush=True)
            return True

    root, lines = logging.getLogger(), StepLines()
    root.addFilter(lines)
    try:
        with open(log, "w") as out, contextlib.redirect_stdout(out):
            yield
    finally:
        root.removeFilter(lines)


def _failure_reason(log: Path) -> str:
    """The last exception a step reported in the log: a UserError's message, else `Type: message`."""
    text = ANSI.sub("", log.read_text(errors="replace")) if log.is_file() else ""
    raised = re.findall(r"^\s*(?:[\w.]+\.)?(\w+(?:Error|Exception)): (.+)$", text, re.M)
    if not raised:
        return "no error message in the log"
    kind, message = raised[-1]
    return message if kind == "UserError" else f"{kind}: {message}"


@contextlib.contextmanager
def _environment(**variables: str) -> Iterator[None]:
    """Set environment variables (the steps' subprocesses inherit them) for the block."""
    before = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def configured_pipeline(params_path: str, overrides: list[str]):
    """(pipeline, its arguments, compile settings) from params.yaml after the --param overrides.
    Arguments: the params.yaml sections, plus the run folder <mount_path>/runs/<run id>."""
    from components.config import KubeflowSettings, load_params
    from pipeline.pipeline import build_pipeline, section_parameters

    params = load_params(params_path, overrides)
    settings = params.section(KubeflowSettings)
    pipeline = build_pipeline(settings)
    # KFP cannot hold an empty (None) value: such keys are left out, and the step takes their default (empty)
    arguments = {"run_root": f"{settings.mount_path.rstrip('/')}/runs", "run_name": "",
                 **{name: {k: v for k, v in params.sections[name].as_dict().items() if v is not None}
                    for name in section_parameters(pipeline)}}
    return pipeline, arguments, settings


def compile_pipeline(pipeline, arguments: dict, out: str | Path) -> None:
    """Write the IR YAML with `arguments` as the parameters' defaults."""
    from kfp import compiler

    compiler.Compiler().compile(pipeline, str(out), pipeline_parameters=arguments)
