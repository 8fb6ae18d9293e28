"""The Kubeflow pipeline: the DVC stages as one DAG, with one GPU pod per cross-validation fold.

    synth -> ingest -> align -> labels -> split -> parent MLflow run
        -> ParallelFor(fold in split's fold list, parallelism P): train (1 GPU each)
        -> Collected(fold results) -> evaluate + register

Artifacts for lineage: ingest -> manifest (Dataset), split -> folds (Dataset), each train -> model
(Model), evaluate -> metrics (Metrics) and confusion (ClassificationMetrics); see components.py.

Runtime parameters are the sections of params.yaml, one `dict` each (`train` = {lr: ..., steps: ...}),
plus `run_root` and `run_name` (the run folder on the shared volume); every step checks its sections
against components/config.py. Everything Kubernetes-specific (image, volume, GPU, tolerations, secrets,
fold parallelism) is fixed at compile time from params.yaml's `kubeflow:` section, because KFP takes
those as constants.
No `from __future__ import annotations` here: KFP reads the pipeline's annotations as real types.
"""
from kfp import dsl, kubernetes

from components.config import KubeflowSettings
from pipeline import components

RUN_PARAMETERS = ("run_root", "run_name")
RUN_AS_USER = 10001  # the image's non-root user (Dockerfile)


def build_pipeline(settings: KubeflowSettings):
    """The pipeline for `settings` (a KFP GraphComponent: compile it, call it under kfp.local, submit it)."""
    ops = components.build(settings.image)

    @dsl.pipeline(name=settings.pipeline_name,
                  description="MOL micro-expression recognition: ingest, align, flow/landmark labels, "
                              "cross-validated joint training (one GPU pod per fold), evaluation, registration")
    def mol_pipeline(run_root: str, run_name: str, data: dict, synth: dict, align: dict, labels: dict,
                     split: dict, train: dict, evaluate: dict, mlflow: dict, execution: dict) -> float:
        # Every step finds the run folder from these (see components.py for why not from a task output).
        where = dict(run_root=run_root, run_name=run_name, job_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER)
        synth_task = ops.synth_op(**where, synth=synth)
        ingest = ops.ingest_op(**where, data=data).after(synth_task)
        align_task = ops.align_op(**where, align=align, execution=execution).after(ingest)
        labels_task = ops.labels_op(**where, labels=labels, execution=execution).after(align_task)
        split_task = ops.split_op(**where, split=split, data=data).after(labels_task)
        parent = ops.parent_run_op(**where, train=train, mlflow=mlflow).after(split_task)
        # ingest, split and train also publish artifacts, so their parameter output is "Output", not .output
        with dsl.ParallelFor(split_task.outputs["Output"], parallelism=settings.parallelism) as fold:
            train_task = ops.train_op(**where, fold=fold, train=train, mlflow=mlflow,
                                      execution=execution).after(parent)
        evaluate_task = ops.evaluate_op(**where, trained=dsl.Collected(train_task.outputs["Output"]),
                                        parent_run_id=parent.output,
                                        evaluate=evaluate, mlflow=mlflow)

        steps = {"synth": synth_task, "ingest": ingest, "align": align_task, "labels": labels_task,
                 "split": split_task, "MLflow parent run": parent, "train fold": train_task,
                 "evaluate + register": evaluate_task}
        for name, task in steps.items():
            task.set_display_name(name)
            _in_cluster(task, settings)
        _on_gpu(train_task, settings)
        return evaluate_task.outputs["uf1"]

    return mol_pipeline


def section_parameters(pipeline) -> list[str]:
    """The runtime parameters that are params.yaml sections, in signature order."""
    return [name for name in pipeline.component_spec.inputs if name not in RUN_PARAMETERS]


def _in_cluster(task: dsl.PipelineTask, settings: KubeflowSettings) -> None:
    """What every step gets: the shared volume, the secrets as environment variables, resources, the
    non-root user, and no KFP caching (a cache hit would skip a step whose files live in another
    run's folder; the stages themselves skip work already done in this one)."""
    kubernetes.mount_pvc(task, pvc_name=settings.pvc, mount_path=settings.mount_path)
    for secret in settings.secrets:
        kubernetes.use_secret_as_env(task, secret_name=secret["name"],
                                     secret_key_to_env={key: key for key in secret["keys"]},
                                     optional=bool(secret.get("optional", False)))
    kubernetes.set_security_context(task, run_as_user=RUN_AS_USER, run_as_non_root=True)
    task.set_caching_options(False)
    task.set_cpu_request(settings.cpu).set_memory_request(settings.memory)


def _on_gpu(train: dsl.PipelineTask, settings: KubeflowSettings) -> None:
    """Train steps: one accelerator each, allowed onto the tainted GPU nodes, retried after a lost pod
    (the fold resumes from its last checkpoint)."""
    train.set_accelerator_type(settings.accelerator).set_accelerator_limit(settings.gpus_per_fold)
    train.set_memory_request(settings.train_memory)
    for toleration in settings.tolerations:
        kubernetes.add_toleration(train, **toleration)
    for key, value in settings.node_selector.items():
        kubernetes.add_node_selector(train, label_key=key, label_value=str(value))
    if settings.retries:
        train.set_retry(settings.retries)
