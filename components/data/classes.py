"""Emotion words -> class ids, per data set and class set.

Class ids follow the official MOL code's folder order, so a model trained by it (loaded with
`load_official_state_dict`) and one trained here give class i the same meaning; the sets the
official code never had extend the same order:

    3 classes (every data set):  0 surprise, 1 positive, 2 negative
    4 classes, CAS(ME)^3:        0 surprise, 1 positive, 2 negative, 3 others
    5 classes, CASME II:         0 surprise, 1 happiness, 2 disgust, 3 repression, 4 others
    5 classes, SAMM:             0 surprise, 1 happiness, 2 anger, 3 contempt, 4 others
    5 classes, 4DME:             0 surprise, 1 positive, 2 negative, 3 repression, 4 others
    7 classes, CAS(ME)^3, MMEW:  0 surprise, 1 happiness, 2 disgust, 3 anger, 4 fear, 5 sadness, 6 others

`CLASS_SETS` says which sets each `--dataset` defines; any other `--classes` is an error.
Words are matched case-insensitively after trimming spaces, through ALIASES (known variants and
misspellings). A word the data set never uses is "unknown"; a known word that the chosen class set
leaves out (CASME II fear and sadness, SAMM disgust in 5 classes; `others` in 3 classes) is "not in
the set". Both are rejects, with different reasons. A combined label (4DME's `Surprise+Positive`) takes
the one class all its parts share, and is a reject naming them where they differ.
"""
from __future__ import annotations

from dataclasses import dataclass

from components.errors import UserError

THREE_CLASSES = ("surprise", "positive", "negative")
FOUR_CLASSES = THREE_CLASSES + ("others",)
SEVEN_CLASSES = ("surprise", "happiness", "disgust", "anger", "fear", "sadness", "others")
FIVE_CLASSES = {
    "casme2": ("surprise", "happiness", "disgust", "repression", "others"),
    "samm": ("surprise", "happiness", "anger", "contempt", "others"),
    "4dme": ("surprise", "positive", "negative", "repression", "others"),
}

# --dataset -> {classes: class names}: the class sets each data set defines
CLASS_SETS: dict[str, dict[int, tuple[str, ...]]] = {
    "casme2": {3: THREE_CLASSES, 5: FIVE_CLASSES["casme2"]},
    "samm": {3: THREE_CLASSES, 5: FIVE_CLASSES["samm"]},
    "smic": {3: THREE_CLASSES},
    "megc2019": {3: THREE_CLASSES},
    "casme3": {3: THREE_CLASSES, 4: FOUR_CLASSES, 7: SEVEN_CLASSES},
    "mmew": {3: THREE_CLASSES, 7: SEVEN_CLASSES},
    "4dme": {3: THREE_CLASSES, 5: FIVE_CLASSES["4dme"]},
    "folder": {3: THREE_CLASSES, 5: FIVE_CLASSES["casme2"]},  # 5: the CASME II or SAMM set, by the folders
}

# variant spelling -> the word used below
ALIASES = {
    "other": "others",
    "happy": "happiness",
    "suprise": "surprise",
    "surprised": "surprise",
    "disgusted": "disgust",
    "repressed": "repression",
    "angry": "anger",
    "sad": "sadness",
    "scared": "fear",
}

# Each data set's own emotion words, and the 3-class group of each (absent: left out, e.g. others)
_WORDS = {
    "casme2": ("happiness", "surprise", "disgust", "repression", "others", "fear", "sadness"),
    "samm": ("anger", "contempt", "happiness", "surprise", "others", "disgust", "fear", "sadness"),
    "smic": THREE_CLASSES,
    "casme3": SEVEN_CLASSES,
    "mmew": SEVEN_CLASSES,
    "4dme": FIVE_CLASSES["4dme"],
}
_GROUPS = {
    "casme2": {"surprise": "surprise", "happiness": "positive", "disgust": "negative", "repression": "negative"},
    "samm": {"surprise": "surprise", "happiness": "positive", "anger": "negative", "contempt": "negative",
             "disgust": "negative", "fear": "negative", "sadness": "negative"},
    "smic": {"surprise": "surprise", "positive": "positive", "negative": "negative"},
    "casme3": {"surprise": "surprise", "happiness": "positive", "disgust": "negative", "anger": "negative",
               "fear": "negative", "sadness": "negative"},
    "4dme": {"surprise": "surprise", "positive": "positive", "negative": "negative", "repression": "negative"},
}
_GROUPS["mmew"] = _GROUPS["casme3"]  # the same seven words; grouped as CAS(ME)^3 (assumed)
# a data set's own synonyms: MMEW's `others` folder may be named `repression`
_SYNONYMS = {"mmew": {"repression": "others"}}


def canonical_word(word: str) -> str:
    """`' Happiness '` -> `'happiness'`; `'Other'` -> `'others'`."""
    word = " ".join(str(word).split()).lower()
    return ALIASES.get(word, word)


def check_class_set(dataset: str, classes: int) -> tuple[str, ...]:
    """The class names of `--classes` for `--dataset`; UserError naming the sets it defines otherwise."""
    sets = CLASS_SETS.get(dataset, {})
    if classes in sets:
        return sets[classes]
    counts = sorted(sets)
    if len(counts) == 1:
        only = counts[0]
        raise UserError(f"--dataset {dataset} has {only} classes only ({', '.join(sets[only])}), not {classes}; "
                        f"use --classes {only}")
    allowed = ", ".join(map(str, counts[:-1])) + f" or {counts[-1]}"
    raise UserError(f"--dataset {dataset} defines {allowed} classes, not {classes}; use --classes {allowed} "
                    "(see docs/datasets.md for each set)")


@dataclass(frozen=True)
class LabelMap:
    class_names: tuple[str, ...]
    words: dict[str, str | None]  # canonical word -> class name (None: known, outside this class set)

    def lookup(self, word: str) -> tuple[int, str]:
        """(label id, class name) of an emotion word; ValueError with the reject reason otherwise."""
        parts = [canonical_word(part) for part in str(word).split("+")]
        if any(key not in self.words for key in parts):
            raise ValueError(f"unknown emotion '{word}'")
        names = list(dict.fromkeys(self.words[key] for key in parts))
        if len(names) > 1:
            raise ValueError(f"combined emotion '{word}' spans several classes "
                             f"({', '.join(n or 'left out' for n in names)}) of the {len(self.class_names)}-class set")
        if names[0] is None:
            raise ValueError(f"emotion '{word}' is not in the {len(self.class_names)}-class set")
        return self.class_names.index(names[0]), names[0]


def dataset_label_map(dataset: str, classes: int) -> LabelMap:
    """The label map of a data set's own emotion words: a word that names a class is that class; in the
    grouped sets (3 and 4 classes) the others go to their group (`disgust` -> negative)."""
    names = check_class_set(dataset, classes)
    grouped = "negative" in names
    words = {w: w if w in names else _GROUPS[dataset].get(w) if grouped else None for w in _WORDS[dataset]}
    return LabelMap(names, words | {w: words[same] for w, same in _SYNONYMS.get(dataset, {}).items()})


def class_folder_label_map(class_names: tuple[str, ...], dataset: str | None = None) -> LabelMap:
    """For folders already sorted into classes: each class name is its own word, a known data set's
    own emotion words map as in `dataset_label_map` (`happiness` -> positive in 3 classes), and any
    other known emotion word is outside the set."""
    known = set(THREE_CLASSES).union(*_WORDS.values())
    words = {w: (w if w in class_names else None) for w in known}
    if dataset in _WORDS:
        words.update(dataset_label_map(dataset, len(class_names)).words)
    return LabelMap(class_names, words)
