"""`mol pipeline {compile,run-local,submit}`: the Kubeflow pipeline from params.yaml.

    mol pipeline compile --out pipeline.yaml            IR YAML to upload in the Kubeflow UI
    mol pipeline run-local --workdir kfp-local          the whole DAG here, through kfp.local (no cluster)
    mol pipeline submit --host URL [--wait]             compile and start a run on a cluster

All three read params.yaml (`--params`, checked whole against components/config.py), take `--param
section.key=value` overrides (as `dvc exp run -S`), and use its sections as the pipeline's parameters;
`kubeflow:` holds the compile-time settings.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import warnings
from pathlib import Path

from components.errors import UserError

TOKEN_ENV = "KF_PIPELINES_TOKEN"
LOCAL_OUTPUTS = ".kfp-outputs"  # kfp.local's per-task files, inside the run folder


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
                   help="run folder: data/, runs/, reports/ and mlflow.db go here (default kfp-local); "
                        "rerunning into the same folder skips work already done")
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
    pipeline, arguments, settings = configured_pipeline(args.params, args.param)
    compile_pipeline(pipeline, arguments, args.out)
    print(f"pipeline '{pipeline.name}' written to {args.out} (image {settings.image}, "
          f"{settings.parallelism or 'all'} folds at a time, runs in {arguments['run_root']} on PVC {settings.pvc})")
    return 0


def run_local_command(args: argparse.Namespace) -> int:
    import kfp.local

    local = [f"kubeflow.parallelism={args.parallelism}", "kubeflow.retries=0"]  # a failing step fails at once
    pipeline, arguments, _ = configured_pipeline(args.params, args.param + local)
    workdir = Path(args.workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    kfp.local.init(runner=kfp.local.SubprocessRunner(use_venv=False), pipeline_root=str(workdir / LOCAL_OUTPUTS))
    # Locally the image and the Kubernetes settings are not used; kfp.local warns about them for every task.
    warnings.filterwarnings("ignore", message=".*non-Python base image.*", category=RuntimeWarning)
    warnings.filterwarnings("ignore", message=".*no effect in the current local runner.*", category=UserWarning)
    try:
        task = pipeline(**(arguments | {"run_root": str(workdir.parent), "run_name": workdir.name}))
    except RuntimeError as e:
        raise UserError(f"the local pipeline run failed ({e}); the failing step's log is above") from None
    print(f"run-local: finished, pooled video UF1 {task.output:.3f}; results in {workdir / 'reports'}")
    return 0


def submit_command(args: argparse.Namespace) -> int:
    import kfp
    from kfp_server_api.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    pipeline, arguments, _ = configured_pipeline(args.params, args.param)
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
