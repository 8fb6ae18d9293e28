"""The typed settings of every stage: the ONE definition of each setting.

Each class below is one section of params.yaml (its `section` name) and each field one key, with its
type, default, allowed values and help (how a section works: components/settings.py). From these
definitions come
- the `mol <stage>` flags (`add_arguments`: `--lr` for `train.lr`), with `--params FILE` to read a
  params.yaml first (flags given on the command line win);
- the validation of params.yaml and params-paper.yaml (`load_params`): an unknown or mistyped key is a
  one-line error naming the key and the nearest valid one; a value of the wrong type or outside its range
  is refused the same way;
- the Kubeflow pipeline's parameters (one per section, see pipeline/pipeline.py) and their validation
  inside every step (`from_mapping`);
- the settings reference in docs/configuration.md (`mol params --markdown`).

Settings that decide a result live in the stage sections; settings that only decide how a stage runs
(processes, device, threads, checkpoint interval) live in `execution`, which no DVC stage tracks, so
changing them reruns nothing. Defaults are the paper's schedule; params.yaml holds the laptop profile.
"""
from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import yaml

from components.data import ADAPTERS
from components.data.classes import check_class_set
from components.errors import UserError
from components.settings import Settings, nearest, setting
from components.training.schedule import LR_SCHEDULES
from components.vision.face import REFERENCE_FRAMES
from components.vision.flow import FLOW_METHODS
from mol_model.clips import CLIP_LENGTH
from mol_model.initialisation import INITS
from mol_model.model import MER_INPUTS

PARAMS_FILE = "params.yaml"
# synth.difficulty: the largest facial displacement at apex, frame pixels (about 52 px between the eyes)
DIFFICULTY_PX = {"easy": 3.0, "medium": 1.5, "hard": 0.75}


# ---------------------------------------------------------------------------------------------- sections

@dataclass(frozen=True)
class DataSettings(Settings):
    section: ClassVar[str] = "data"
    about: ClassVar[str] = "which data set `mol ingest` reads"
    dataset: str = setting("casme2", "layout of root: casme2, samm, smic (its HS, VIS or NIR folder), megc2019 (the "
                                     "three side by side), casme3 (CAS(ME)^3 part A, long videos or cut clips), "
                                     "mmew, 4dme or folder (the official MOL code's EMOTION/VIDEO/ folders)",
                           choices=tuple(ADAPTERS))
    root: str = setting("", "the folder holding the data set as distributed")
    annotations: str = setting("", "the coding sheet (.xlsx, or a CSV export of it): CASME2-coding-*.xlsx for casme2, "
                                   "SAMM_Micro_FACS_Codes_v2.xlsx for samm, cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx "
                                   "for casme3, MMEW_Micro_Exp.xlsx for mmew, 4DME_Labelling_Micro_release v1.xlsx "
                                   "for 4dme (these three: found under root when empty); empty for the others")
    classes: int = setting(5, "class set, as the data set defines them: 3 (negative/positive/surprise, all), 5 "
                              "(CASME II, SAMM, 4DME own emotions), 4 (CAS(ME)^3: 3 + others), 7 (CAS(ME)^3, MMEW "
                              "own emotions)",
                           choices=(3, 4, 5, 7))

    def check(self) -> None:
        check_class_set(self.dataset, self.classes)


@dataclass(frozen=True)
class SynthSettings(Settings):
    section: ClassVar[str] = "synth"
    about: ClassVar[str] = "the embedded synthetic data set"
    subjects: int = setting(8, "synthetic people", minimum=1)
    videos_per_subject: int = setting(10, "videos per person, the 5 emotions taken in turn", minimum=1)
    frames_min: int = setting(24, "fewest frames per video", minimum=CLIP_LENGTH)
    frames_max: int = setting(40, "most frames per video (real 200 fps micro-expressions have about 40-80)",
                              minimum=CLIP_LENGTH)
    difficulty: str = setting("easy", "largest facial displacement at apex: easy 3 px, medium 1.5 px, hard 0.75 px "
                                      "(about 52 px between the eyes)", choices=tuple(DIFFICULTY_PX))
    seed: int = setting(0, "random seed; the same seed gives the same bytes")

    def check(self) -> None:
        if self.frames_min > self.frames_max:
            raise UserError(f"synth.frames_min {self.frames_min} is above synth.frames_max {self.frames_max}; "
                            "give a range MIN <= MAX")


@dataclass(frozen=True)
class AlignSettings(Settings):
    section: ClassVar[str] = "align"
    about: ClassVar[str] = "face alignment"
    per_frame: bool = setting(False, "the official per-frame alignment (removes head motion but turns landmark "
                                     "jitter into image motion); off: one transform per video")
    reference_frames: int = setting(REFERENCE_FRAMES, "first frames whose median landmarks define the per-video transform",
                                    minimum=1)


@dataclass(frozen=True)
class LabelsSettings(Settings):
    section: ClassVar[str] = "labels"
    about: ClassVar[str] = "8-frame clips with their flow and landmark labels, stored once at 144x144"
    flow: str = setting("tvl1", "flow-label backend: tvl1 (official); tvl1-dis (2.3x faster, within 0.011 px of "
                                "tvl1); farneback or dis (much faster, different labels)",
                        choices=FLOW_METHODS)


@dataclass(frozen=True)
class SplitSettings(Settings):
    section: ClassVar[str] = "split"
    about: ClassVar[str] = "cross-validation folds"
    mode: str = setting("loso", "loso: leave one subject out; kfold: K folds grouped by subject; lodo: leave one "
                                "data set out; holdout: one fold, the first kfold group (a quick check, not a CV); "
                                "cross: train on --train-datasets, test on each of --test-datasets",
                        choices=("loso", "kfold", "lodo", "holdout", "cross"))
    k: int = setting(5, "folds for kfold; holdout tests on about 1/k of the samples", minimum=2)
    seed: int = setting(0, "seed of the kfold/holdout subject shuffle")
    train_datasets: str = setting("", "cross only: the data sets to train on, comma-separated (e.g. casme2,samm)")
    test_datasets: str = setting("", "cross only: the data sets to test on, comma-separated; one fold each (e.g. smic)")

    def check(self) -> None:
        lists = bool(self.train_datasets.strip() or self.test_datasets.strip())
        if self.mode == "cross" and not (self.train_datasets.strip() and self.test_datasets.strip()):
            raise UserError("split.mode cross needs both split.train_datasets and split.test_datasets "
                            "(--train-datasets casme2,samm --test-datasets smic)")
        if self.mode != "cross" and lists:
            raise UserError(f"split.train_datasets/test_datasets apply to mode cross only, not {self.mode}; "
                            "drop them or use --mode cross")


@dataclass(frozen=True)
class TrainSettings(Settings):
    section: ClassVar[str] = "train"
    about: ClassVar[str] = "the training schedule; every key decides the result"
    lr: float = setting(1e-4, "AdamW learning rate (the peak, after any warm-up)", minimum=0)
    lr_schedule: str = setting("constant", "learning rate after the warm-up: constant (official) or cosine (from "
                                           "lr down towards 0 at the last step)", choices=LR_SCHEDULES)
    warmup_steps: int = setting(0, "steps of linear learning-rate warm-up, from lr/N up to lr (0: none, official)",
                                minimum=0)
    weight_decay: float = setting(1e-3, "AdamW weight decay", minimum=0)
    batch_size: int = setting(32, "clips per step", minimum=1)
    steps: int = setting(1000, "optimizer steps per fold", minimum=1)
    flow_weight: float = setting(10.0, "weight of the optical-flow loss; 0 = no flow supervision", minimum=0)
    landmark_weight: float = setting(0.1, "weight of the landmark loss; 0 = no landmark supervision", minimum=0)
    mer_weight: float = setting(1.0, "weight of the expression cross-entropy", minimum=0)
    neighbors: int = setting(4, "graph neighbours k in CCC (at most the 16x16 feature positions)", minimum=1,
                             maximum=256)
    mer_input: str = setting("official", "what the expression head reads: official (the paper's stacked "
                                         "features) or motion (the same minus each clip's mean over its frames, "
                                         "scaled per clip; parameter-free)", choices=MER_INPUTS)
    mer_dropout: float = setting(0.5, "dropout of the expression head, training only (official 0.5)",
                                 minimum=0, below=1)
    seed: int = setting(0, "seed of the initial weights, batches, crops and dropout")
    init: str = setting("official", "how the flow and landmark heads start: official (the official code's "
                                    "initialisation) or baselines (predicting the trivial baselines the "
                                    "evaluation reports: the fold's mean training landmark shape and zero flow; "
                                    "the other weights as official)", choices=INITS)
    crops: int = setting(0, "training crops per clip: 0 = a fresh random 128x128 crop every time a clip is used; "
                            "N = N fixed random crops per clip drawn from the seed (official: 5)", minimum=0)
    balance: str = setting("none", "against collapse to one class: sampler draws class-balanced batches, loss "
                                   "weights the cross-entropy by inverse class frequency",
                           choices=("none", "sampler", "loss"))
    select_on_test: bool = setting(False, "LEAKS TEST DATA: keep the step with the best score on the test subject, "
                                          "as the official code does; only to reproduce published numbers")
    val_subjects: int = setting(0, "hold out this many TRAINING subjects per fold and keep the step scoring best "
                                   "on them (honest model selection); 0 keeps the final step", minimum=0)
    eval_every: int = setting(100, "steps between selection evaluations (with val_subjects or select_on_test)",
                              minimum=1)
    precision: str = setting("auto", "auto: bf16 autocast of the flow decoder where the device runs bf16 natively "
                                     "(CUDA, CPUs with AVX512-BF16 or AMX), else fp32; bf16 or fp32 to force one. "
                                     "The expression path stays float32", choices=("auto", "bf16", "fp32"))

    def check(self) -> None:
        if self.select_on_test and self.val_subjects > 0:
            raise UserError("train.select_on_test and train.val_subjects exclude each other; choose one selection set")

    @property
    def selecting(self) -> bool:
        return self.select_on_test or self.val_subjects > 0

    @property
    def protocol(self) -> str:  # MLflow tag
        if self.select_on_test:
            return "leaky-select-on-test"
        return "select-on-validation" if self.val_subjects > 0 else "final"

    @property
    def selection(self) -> str:  # metrics.json
        if self.select_on_test:
            return "leaky-best-on-test"
        return "best-on-validation" if self.val_subjects > 0 else "final"


@dataclass(frozen=True)
class EvaluateSettings(Settings):
    section: ClassVar[str] = "evaluate"
    about: ClassVar[str] = "pooling and model registration"
    register: bool = setting(True, "register the best fold's model in the MLflow registry")
    model_name: str = setting("mol-mer", "registered model name")
    alias: str = setting("champion", "alias set on the new model version")
    allow_incomplete: bool = setting(False, "register even when folds of the run are unfinished or were trained "
                                            "on other samples (off: evaluate then scores the finished folds, "
                                            "registers nothing and fails)")


@dataclass(frozen=True)
class MlflowSettings(Settings):
    section: ClassVar[str] = "mlflow"
    about: ClassVar[str] = "tracking; the store comes from MLFLOW_TRACKING_URI (default ./mlflow.db)"
    experiment: str = setting("mol", "MLflow experiment of the runs")


@dataclass(frozen=True)
class ExecutionSettings(Settings):
    section: ClassVar[str] = "execution"
    about: ClassVar[str] = "how stages run, never what they compute; no DVC stage reruns when they change"
    workers: int | None = setting(None, "processes for align and labels (empty: all cores)", minimum=1)
    device: str = setting("auto", "torch device for train: auto (CUDA when present, else CPU), cpu, cuda or cuda:N")
    threads: int | None = setting(None, "torch CPU threads (empty: torch's choice)", minimum=1)
    checkpoint_every: int = setting(100, "training steps between resume checkpoints", minimum=1)
    eval_batch_size: int = setting(16, "clips per evaluation batch", minimum=1)
    keep_resume: bool = setting(False, "keep a finished fold's resume state (weights and optimizer moments, "
                                       "3x the model's size); by default it is deleted once the model file is written")

    def check(self) -> None:
        if not re.fullmatch(r"auto|cpu|cuda(:\d+)?|mps", self.device):
            raise UserError(f"execution.device {self.device!r} is not a device; use auto, cpu, cuda or cuda:N")


PLACEHOLDER_IMAGE = "ghcr.io/your-org/mol-pipeline:0.1.0"  # params.yaml's until you push your own


@dataclass(frozen=True)
class KubeflowSettings(Settings):
    section: ClassVar[str] = "kubeflow"
    about: ClassVar[str] = "compile-time settings of the Kubeflow pipeline (`mol pipeline`)"
    image: str = setting(PLACEHOLDER_IMAGE, "the image built from Dockerfile and pushed")
    pipeline_name: str = setting("mol-pipeline", "the pipeline's name in Kubeflow")
    parallelism: int = setting(4, "folds trained at the same time (0 = all at once)", minimum=0)
    pvc: str = setting("mol-work", "existing ReadWriteMany PersistentVolumeClaim shared by all steps")
    mount_path: str = setting("/mnt/mol", "where the claim is mounted; runs live in <mount_path>/runs/<run name>")
    accelerator: str = setting("nvidia.com/gpu", "accelerator resource of the train steps")
    gpus_per_fold: int = setting(1, "accelerators per train step", minimum=0)
    tolerations: list = setting([], "train steps only: tolerations [{key, operator, value, effect}] to reach "
                                    "tainted GPU nodes")
    node_selector: dict = setting({}, "train steps only: node labels {label: value}")
    secrets: list = setting([], "Kubernetes secrets as environment variables of every step: "
                                "[{name, keys: [VARIABLE, ...], optional}]")
    cpu: str = setting("4", "CPU request of every step")
    memory: str = setting("16Gi", "memory request of every step but train")
    train_memory: str = setting("32Gi", "memory request of the train steps")
    retries: int = setting(2, "train steps: a lost pod is retried and resumes its fold", minimum=0)

    def check(self) -> None:
        if not self.image:
            raise UserError("kubeflow.image is empty; set it to the image you pushed "
                            "(docker build -t REGISTRY/mol-pipeline:TAG .)")


SECTIONS: tuple[type[Settings], ...] = (DataSettings, SynthSettings, AlignSettings, LabelsSettings, SplitSettings,
                                        TrainSettings, EvaluateSettings, MlflowSettings, ExecutionSettings,
                                        KubeflowSettings)


# ---------------------------------------------------------------------------------------------- the file

@dataclass(frozen=True)
class Params:
    """A whole params.yaml: every section, checked."""
    sections: dict[str, Settings]
    path: str

    def section(self, cls: type[Settings]) -> Settings:
        return self.sections[cls.section]

    def as_dict(self) -> dict[str, dict[str, Any]]:
        return {name: settings.as_dict() for name, settings in self.sections.items()}


class _Loader(yaml.SafeLoader):
    """YAML as DVC reads it (1.2 numbers): `1e-4` is a float, where plain PyYAML (1.1) gives a string."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*\.[0-9_]*(?:[eE][-+]?[0-9]+)?|[0-9][0-9_]*[eE][-+]?[0-9]+"
               r"|\.[0-9_]+(?:[eE][-+]?[0-9]+)?|\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"),
    list("-+0123456789."))


def parse_value(text: str) -> Any:
    """One value as params.yaml would hold it: `1e-4`, `true`, `[0, 1]`, `fast`."""
    return yaml.load(text, Loader=_Loader)


def load_params(path: str | Path = PARAMS_FILE, overrides: list[str] | tuple[str, ...] = ()) -> Params:
    """Read and check a params.yaml, after `section.key=value` overrides."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path} does not exist; run from the project folder or pass --params PATH")
    try:
        document = parse_value(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError:
        raise UserError(f"{path} is not UTF-8 text; save it as UTF-8") from None
    except yaml.YAMLError as e:
        raise UserError(f"{path} is not valid YAML ({str(e).splitlines()[0]}); fix the file") from None
    document = {} if document is None else document
    if not isinstance(document, dict):
        raise UserError(f"{path} must hold a mapping of sections ({', '.join(s.section for s in SECTIONS)})")
    known = [s.section for s in SECTIONS]
    for name in document:
        if name not in known:
            raise UserError(f"{path}: unknown section {name}:{nearest(str(name), known)}; the sections are "
                            f"{', '.join(known)}")
    for assignment in overrides:
        _override(document, assignment, path)
    return Params({s.section: s.from_mapping(document.get(s.section), str(path)) for s in SECTIONS}, str(path))


def _override(document: dict, assignment: str, path: Path) -> None:
    key, sep, text = assignment.partition("=")
    section, dot, name = key.strip().partition(".")
    if not sep or not dot:
        raise UserError(f"--param {assignment!r} must look like section.key=value, e.g. train.lr=1e-4")
    document.setdefault(section, {})
    if not isinstance(document[section], dict):
        raise UserError(f"{path}: `{section}:` must be a mapping of keys to values")
    document[section][name] = parse_value(text) if text.strip() else ""


# ---------------------------------------------------------------------------------------------- the CLI

def add_params_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", default=None, metavar="FILE",
                        help="read the settings from this params.yaml first (it is checked whole); flags given "
                             "here win (default: no file, the defaults below)")


def params_from_args(args: argparse.Namespace) -> Params | None:
    return load_params(args.params) if getattr(args, "params", None) else None


def markdown_reference() -> str:
    """Every setting as a markdown table per section (docs/configuration.md)."""
    return "\n\n".join(cls.markdown_table() for cls in SECTIONS) + "\n"


# ---------------------------------------------------------------------------------------------- `mol params`

def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", nargs="?", default=PARAMS_FILE, help="the params file to check (default params.yaml)")
    parser.add_argument("--markdown", action="store_true",
                        help="print the reference of every setting as markdown tables instead (docs/configuration.md)")


def run(args: argparse.Namespace) -> int:
    if args.markdown:
        print(markdown_reference(), end="")
        return 0
    params = load_params(args.file)
    print(f"{params.path}: every key is known and every value valid ({len(params.sections)} sections)")
    return 0
