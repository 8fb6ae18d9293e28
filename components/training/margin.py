"""How early a fold learns its training clips: the running accuracy of the training batches and the step at
which it first reaches 0.8. A fold that passes late in its schedule has little margin: a slower seed or a
slightly shorter schedule ends at chance (docs/training.md, "Margin").

Batch accuracy is the share of a step's training clips whose logits' argmax is their label, from the forward
pass of that step (before its update; training mode: random crops, dropout if any). The running accuracy of
step t is the mean batch accuracy of steps t-19..t (fewer before step 20); batches are of equal size, so it
is the accuracy over those steps' clips. The pass step is the first step with a full window of 20 steps
whose running accuracy is at least 0.8.
"""
from __future__ import annotations

from collections.abc import Sequence

PASS_ACCURACY = 0.8
WINDOW = 20  # steps


def running_accuracy(accuracies: Sequence[float], window: int = WINDOW) -> float:
    """Mean of the last `window` batch accuracies (all of them when there are fewer)."""
    recent = list(accuracies)[-window:]
    return sum(recent) / len(recent)


def pass_step(accuracies: Sequence[float], threshold: float = PASS_ACCURACY, window: int = WINDOW) -> int | None:
    """The first step (1-based: the `step` of train_log.csv; accuracies[i] is step i + 1's) whose running
    accuracy over a full window of `window` steps is at least `threshold`; None when no step's is."""
    values = list(accuracies)
    for end in range(window, len(values) + 1):
        if running_accuracy(values[:end], window) >= threshold:
            return end
    return None
