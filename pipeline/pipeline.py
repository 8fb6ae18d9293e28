"""The Kubeflow pipeline: the DVC stages as one DAG, with one GPU pod per cross-validation fold.

    synth -> ingest -> align -> labels -> split -> parent MLflow run
        -> ParallelFor(fold in split's fold list, parallelism P): train (1 GPU each)
        -> Collected(fold results) -> evaluate + register

Runtime parameters are the keys of params.yaml, named `<section>_<key>` (`train_lr` for train.lr), plus
`run_root` and `run_name` (the run folder on the shared volume). Everything Kubernetes-specific (image,
volume, GPU, tolerations, secrets, fold parallelism) is fixed at compile time from params.yaml's
`kubeflow:` section, because KFP takes those as constants.
No `from __future__ import annotations` here: KFP reads the pipeline's annotations as real types.
"""
from kfp import dsl, kubernetes

from pipeline import components
from pipeline.params import KubeflowSettings

RUN_PARAMETERS = ("run_root", "run_name")
RUN_AS_USER = 10001  # the image's non-root user (Dockerfile)


def build_pipeline(settings: KubeflowSettings):
    """The pipeline for `settings` (a KFP GraphComponent: compile it, call it under kfp.local, submit it)."""
    ops = components.build(settings.image)

    @dsl.pipeline(name=settings.pipeline_name,
                  description="MOL micro-expression recognition: ingest, align, flow/landmark labels, "
                              "cross-validated joint training (one GPU pod per fold), evaluation, registration")
    def mol_pipeline(
        run_root: str, run_name: str,
        data_dataset: str, data_root: str, data_annotations: str, data_classes: int,
        synth_subjects: int, synth_videos_per_subject: int, synth_frames_min: int, synth_frames_max: int,
        synth_difficulty: str, synth_seed: int,
        align_per_frame: bool, align_workers: int,
        labels_flow: str, labels_train_crops: int, labels_seed: int, labels_workers: int,
        split_mode: str, split_k: int, split_seed: int,
        train_lr: float, train_weight_decay: float, train_batch_size: int, train_steps: int,
        train_flow_weight: float, train_landmark_weight: float, train_mer_input: str,
        train_mer_dropout: float, train_balance: str, train_seed: int,
        train_select_on_test: bool, train_val_subjects: int, train_device: str, train_checkpoint_every: int,
        evaluate_register: bool, mlflow_experiment: str,
    ) -> float:
        # Every step finds the run folder from these (see components.py for why not from a task output).
        where = dict(run_root=run_root, run_name=run_name, job_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER)
        synth = ops.synth_op(**where, subjects=synth_subjects, videos_per_subject=synth_videos_per_subject,
                             frames_min=synth_frames_min, frames_max=synth_frames_max,
                             difficulty=synth_difficulty, seed=synth_seed)
        ingest = ops.ingest_op(**where, dataset=data_dataset, root=data_root, annotations=data_annotations,
                               classes=data_classes).after(synth)
        align = ops.align_op(**where, per_frame=align_per_frame, workers=align_workers).after(ingest)
        labels = ops.labels_op(**where, flow=labels_flow, train_crops=labels_train_crops, seed=labels_seed,
                               workers=labels_workers).after(align)
        split = ops.split_op(**where, mode=split_mode, k=split_k, seed=split_seed, classes=data_classes).after(labels)

        schedule = dict(lr=train_lr, weight_decay=train_weight_decay, batch_size=train_batch_size,
                        steps=train_steps, flow_weight=train_flow_weight, landmark_weight=train_landmark_weight,
                        mer_input=train_mer_input, mer_dropout=train_mer_dropout, balance=train_balance,
                        seed=train_seed, select_on_test=train_select_on_test, val_subjects=train_val_subjects)
        parent = ops.parent_run_op(**where, experiment=mlflow_experiment, **schedule).after(split)
        with dsl.ParallelFor(split.output, parallelism=settings.parallelism) as fold:
            train = ops.train_op(**where, fold=fold, experiment=mlflow_experiment, device=train_device,
                                 checkpoint_every=train_checkpoint_every, **schedule).after(parent)
        evaluate = ops.evaluate_op(**where, trained=dsl.Collected(train.output), parent_run_id=parent.output,
                                   experiment=mlflow_experiment, register=evaluate_register)

        steps = {"synth": synth, "ingest": ingest, "align": align, "labels": labels, "split": split,
                 "MLflow parent run": parent, "train fold": train, "evaluate + register": evaluate}
        for name, task in steps.items():
            task.set_display_name(name)
            _in_cluster(task, settings)
        _on_gpu(train, settings)
        return evaluate.outputs["uf1"]

    return mol_pipeline


def pipeline_parameter_names(pipeline) -> list[str]:
    """The runtime parameters that come from params.yaml (`section_key`), in signature order."""
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
