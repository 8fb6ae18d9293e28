"""params.yaml, the one configuration: read it, override single keys, and turn it into the Kubeflow
pipeline's arguments and compile settings.

DVC reads the same file through `${section.key}` in dvc.yaml. Here every pipeline parameter is named
`<section>_<key>` (e.g. `train_lr` for `train.lr`), so one rule maps the two.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from components.errors import UserError

PARAMS_FILE = "params.yaml"


class _Loader(yaml.SafeLoader):
    """YAML as DVC reads it (1.2 numbers): `1e-4` is a float, where plain PyYAML (1.1) gives a string."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*\.[0-9_]*(?:[eE][-+]?[0-9]+)?|[0-9][0-9_]*[eE][-+]?[0-9]+"
               r"|\.[0-9_]+(?:[eE][-+]?[0-9]+)?|\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"),
    list("-+0123456789."))


def parse_value(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)


def load_params(path: str | Path = PARAMS_FILE) -> dict:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path} does not exist; run from the project folder or pass --params PATH")
    try:
        params = parse_value(path.read_text())
    except yaml.YAMLError as e:
        raise UserError(f"{path} is not valid YAML ({str(e).splitlines()[0]}); fix the file") from None
    if not isinstance(params, dict):
        raise UserError(f"{path} must hold a mapping of sections (data, synth, align, ...); fix the file")
    return params


def set_param(params: dict, assignment: str) -> None:
    """Apply one `section.key=value` override (value parsed as YAML: `1e-4`, `true`, `[0, 1]`)."""
    key, sep, text = assignment.partition("=")
    section, dot, name = key.strip().partition(".")
    if not sep or not dot:
        raise UserError(f"--param {assignment!r} must look like section.key=value, e.g. train.lr=1e-4")
    if not isinstance(params.get(section), dict) or name not in params[section]:
        raise UserError(f"--param {assignment!r}: params.yaml has no key {section}.{name}; "
                        "see docs/orchestration.md for the keys")
    params[section][name] = parse_value(text) if text.strip() else ""


def pipeline_arguments(params: dict, names: list[str]) -> dict[str, Any]:
    """Values of the pipeline parameters `names` (`section_key`) from `params` (`section.key`)."""
    arguments = {}
    for name in names:
        section, _, key = name.partition("_")
        try:
            value = params[section][key]
        except (KeyError, TypeError):
            raise UserError(f"params.yaml lacks {section}.{key}, which the pipeline needs; "
                            "add it (see docs/orchestration.md)") from None
        arguments[name] = "" if value is None else value
    return arguments


@dataclass
class KubeflowSettings:
    """What is fixed when the pipeline is compiled (the `kubeflow:` section of params.yaml)."""
    image: str
    pipeline_name: str = "mol-pipeline"
    parallelism: int = 4                  # folds trained at once
    pvc: str = "mol-work"                 # an existing ReadWriteMany claim shared by every step
    mount_path: str = "/mnt/mol"
    accelerator: str = "nvidia.com/gpu"   # train steps only
    gpus_per_fold: int = 1
    tolerations: list = field(default_factory=list)   # [{key, operator, value, effect}]
    node_selector: dict = field(default_factory=dict)  # train steps only: {node label: value}
    secrets: list = field(default_factory=list)        # [{name, keys: [KEY = ENV_VAR, ...], optional}]
    cpu: str = "4"
    memory: str = "16Gi"
    train_memory: str = "32Gi"
    retries: int = 2                      # train steps: a lost pod is retried and resumes its fold

    @classmethod
    def from_params(cls, params: dict) -> "KubeflowSettings":
        section = params.get("kubeflow") or {}
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(section) - known)
        if unknown:
            raise UserError(f"params.yaml kubeflow: has unknown keys {unknown}; the keys are {sorted(known)}")
        if not section.get("image"):
            raise UserError("params.yaml kubeflow.image is empty; set it to the image you pushed "
                            "(docker build -t REGISTRY/mol-pipeline:TAG .)")
        settings = cls(**section)
        if not isinstance(settings.parallelism, int) or settings.parallelism < 0:
            raise UserError(f"kubeflow.parallelism must be a whole number >= 0 (0 = all folds at once), "
                            f"not {settings.parallelism!r}")
        return settings
