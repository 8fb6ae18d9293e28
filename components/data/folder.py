"""The official MOL code's layout: `<root>/<emotion>/<video>/<frames>`, e.g.
`data/SAMM_data_5/anger/006_1_2/006_05562.jpg`.

The data set is read from the root's name (`CASME2_data_5` -> casme2, `SAMM_...` -> samm, `SMIC_...`
-> smic, else `folder`). The folders are sorted into classes: each emotion folder is a class name of
the chosen set or, for a known data set, one of its own emotion words, mapped as its sheet's words are
(`CASME2_data_5/happiness` is `positive` with --classes 3). For 5 classes the CASME II or SAMM set
comes from the data set, or for a root of another name from the emotion folders present. The subject
is the part of the video name before its first `_` (`01_EP19_05f` -> `01`).
"""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from components.data.classes import FIVE_CLASSES, canonical_word, check_class_set, class_folder_label_map
from components.data.samples import Reject, Sample, canonical_subject, subfolders
from components.errors import UserError

_NAME_PREFIXES = {"casme2": "casme2", "casme_ii": "casme2", "casmeii": "casme2", "samm": "samm", "smic": "smic"}
_SUBJECT_WIDTH = {"casme2": 2, "samm": 3}


def dataset_from_root_name(root: Path) -> str:
    name = root.name.lower()
    return next((d for prefix, d in _NAME_PREFIXES.items() if name.startswith(prefix)), "folder")


def _class_names(dataset: str, classes: int, emotions: list[str]) -> tuple[str, ...]:
    if dataset != "folder" or classes == 3:
        return check_class_set(dataset, classes)
    words = {canonical_word(e) for e in emotions}
    fits = [names for names in FIVE_CLASSES.values() if words <= set(names)]
    if not fits:
        raise UserError(f"the emotion folders {sorted(emotions)} fit neither 5-class set (CASME II "
                        f"{list(FIVE_CLASSES['casme2'])}, SAMM {list(FIVE_CLASSES['samm'])}); rename them")
    return fits[0]  # both fit only when every folder is shared, and shared classes have the same ids


def collect(root: Path, annotations: Path | None, classes: int) -> tuple[list[Sample], list[Reject]]:
    if annotations is not None:
        raise UserError("--dataset folder takes no --annotations: its labels are its folder names; drop the flag")
    emotion_dirs = subfolders(root)
    nested = [p.name for p in emotion_dirs if "_data_" in p.name.lower()]
    if nested:
        raise UserError(f"{root} holds data-set folders ({', '.join(nested)}); pass one of them as --root")
    dataset = dataset_from_root_name(root)
    label_map = class_folder_label_map(_class_names(dataset, classes, [p.name for p in emotion_dirs]), dataset)
    samples = []
    for emotion_dir in emotion_dirs:
        for clip_dir in subfolders(emotion_dir):
            subject = canonical_subject(clip_dir.name.split("_")[0], _SUBJECT_WIDTH.get(dataset, 0))
            samples.append(Sample(dataset, f"{dataset}/{subject}", clip_dir.name, f"{dataset}/{clip_dir.name}",
                                  clip_dir, emotion_dir.name, label_map, onset_offset_from_frames=True))
    return _reject_ambiguous(samples)


def _reject_ambiguous(samples: list[Sample]) -> tuple[list[Sample], list[Reject]]:
    """A video under two emotion folders has no one label; a name without `_` has no subject."""
    by_id = defaultdict(list)
    for sample in samples:
        by_id[sample.sample_id].append(sample)
    kept, rejects = [], []
    for sample in samples:
        emotions = [s.emotion for s in by_id[sample.sample_id]]
        if len(emotions) > 1:
            rejects.append(sample.reject(f"video is in several emotion folders ({', '.join(emotions)})"))
        elif "_" not in sample.video_id:
            rejects.append(sample.reject("video name has no '_', so its subject is unknown"))
        else:
            kept.append(sample)
    return kept, rejects
