"""Emotion words -> class ids, per data set and class set.

Class ids follow the official MOL code's folder order, so a model trained by it (loaded with
`load_official_state_dict`) and one trained here give class i the same meaning:

    3 classes (every data set):  0 surprise, 1 positive, 2 negative
    5 classes, CASME II:         0 surprise, 1 happiness, 2 disgust, 3 repression, 4 others
    5 classes, SAMM:             0 surprise, 1 happiness, 2 anger, 3 contempt, 4 others

Words are matched case-insensitively after trimming spaces, through ALIASES (known variants and
misspellings). A word the data set never uses is "unknown"; a known word that the chosen class set
leaves out (CASME II fear and sadness, SAMM disgust in 5 classes; `others` in 3 classes) is "not in
the set". Both are rejects, with different reasons.
"""
from __future__ import annotations

from dataclasses import dataclass

THREE_CLASSES = ("surprise", "positive", "negative")
FIVE_CLASSES = {
    "casme2": ("surprise", "happiness", "disgust", "repression", "others"),
    "samm": ("surprise", "happiness", "anger", "contempt", "others"),
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

# Each data set's own emotion words and the class each one takes; None = known, but not in that set.
_CASME2_WORDS = ("happiness", "surprise", "disgust", "repression", "others", "fear", "sadness")
_SAMM_WORDS = ("anger", "contempt", "happiness", "surprise", "others", "disgust", "fear", "sadness")
_TO_THREE = {
    "casme2": {"surprise": "surprise", "happiness": "positive", "disgust": "negative", "repression": "negative"},
    "samm": {"surprise": "surprise", "happiness": "positive", "anger": "negative", "contempt": "negative",
             "disgust": "negative", "fear": "negative", "sadness": "negative"},
    "smic": {"surprise": "surprise", "positive": "positive", "negative": "negative"},
}
_WORDS = {"casme2": _CASME2_WORDS, "samm": _SAMM_WORDS, "smic": ("surprise", "positive", "negative")}


def canonical_word(word: str) -> str:
    """`' Happiness '` -> `'happiness'`; `'Other'` -> `'others'`."""
    word = " ".join(str(word).split()).lower()
    return ALIASES.get(word, word)


@dataclass(frozen=True)
class LabelMap:
    class_names: tuple[str, ...]
    words: dict[str, str | None]  # canonical word -> class name (None: known, outside this class set)

    def lookup(self, word: str) -> tuple[int, str]:
        """(label id, class name) of an emotion word; ValueError with the reject reason otherwise."""
        key = canonical_word(word)
        if key not in self.words:
            raise ValueError(f"unknown emotion '{word}'")
        name = self.words[key]
        if name is None:
            raise ValueError(f"emotion '{word}' is not in the {len(self.class_names)}-class set")
        return self.class_names.index(name), name


def dataset_label_map(dataset: str, classes: int) -> LabelMap:
    """The label map of a data set's own emotion words (`casme2`, `samm`, `smic`)."""
    if classes == 3:
        table = _TO_THREE[dataset]
        return LabelMap(THREE_CLASSES, {w: table.get(w) for w in _WORDS[dataset]})
    names = FIVE_CLASSES[dataset]
    return LabelMap(names, {w: (w if w in names else None) for w in _WORDS[dataset]})


def class_folder_label_map(class_names: tuple[str, ...], dataset: str | None = None) -> LabelMap:
    """For folders already sorted into classes: each class name is its own word, a known data set's
    own emotion words map as in `dataset_label_map` (`happiness` -> positive in 3 classes), and any
    other known emotion word is outside the set."""
    known = set(_CASME2_WORDS) | set(_SAMM_WORDS) | set(THREE_CLASSES)
    words = {w: (w if w in class_names else None) for w in known}
    if dataset in _WORDS:
        words.update(dataset_label_map(dataset, len(class_names)).words)
    return LabelMap(class_names, words)
