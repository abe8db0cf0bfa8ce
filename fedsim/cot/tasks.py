"""Detection tasks of our CoT-Kinetics (arXiv 2505.13408) evaluation, shared by both settings.

Each labelled trace carries where it came from (``kind``) and two labels, answer correctness and
step soundness. Three detection tasks follow, each with the flawed class positive:

* ``incorrect_answer``: the model's own traces, positive = wrong final answer (the paper's task);
* ``unsound_right``: traces with the right final answer, positive = an unsound step (constructed
  cancelling errors plus any the model produced itself), negative = the model's sound traces;
* ``wrong_answer_only``: a sound trace vs the same trace with only its answer changed. A score over
  the reasoning span cannot see this flaw by construction; it shows what answer-only scores cover.

Orientation of every score is fitted on the validation problems and frozen for the test problems;
variants share their source problem's split, so a pair never straddles the split.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from fedsim.cot.metrics import Detection, detection
from fedsim.cot.scorer import ReasoningSample, fit_orientations

TASKS = ("incorrect_answer", "unsound_right", "wrong_answer_only")


@dataclass(frozen=True)
class Labeled:
    sample: ReasoningSample
    problem_id: int
    kind: str  # sampled | unsound_right | wrong_answer
    answer_ok: bool
    sound: bool | None  # None: soundness could not be checked (no equation to verify)


def task_labels(records: Sequence[Labeled], task: str) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the records in ``task`` and their 0/1 labels (1 = flawed)."""
    idx, lab = [], []
    for i, r in enumerate(records):
        label = _label(r, task)
        if label is not None:
            idx.append(i)
            lab.append(label)
    return np.array(idx, dtype=int), np.array(lab, dtype=int)


def _label(r: Labeled, task: str) -> int | None:
    own_sound_right = r.kind == "sampled" and r.answer_ok and r.sound is True
    if task == "incorrect_answer":
        return int(not r.answer_ok) if r.kind == "sampled" else None
    if task == "unsound_right":
        if own_sound_right:
            return 0
        return 1 if r.answer_ok and r.sound is False and r.kind in ("sampled", "unsound_right") else None
    if task == "wrong_answer_only":
        return 0 if own_sound_right else (1 if r.kind == "wrong_answer" else None)
    raise ValueError(f"unknown task {task!r}; choose one of {TASKS}")


@dataclass(frozen=True)
class TaskResult:
    task: str
    score: str
    orientation: int
    test: Detection


def evaluate(scores: dict[str, np.ndarray], records: Sequence[Labeled], val_problems: set[int],
             task: str) -> list[TaskResult]:
    """Fit each score's orientation on validation problems, then detection metrics on test problems."""
    idx, lab = task_labels(records, task)
    is_val = np.array([records[i].problem_id in val_problems for i in idx], dtype=bool)
    if min(lab[is_val].sum(), (1 - lab[is_val]).sum(), lab[~is_val].sum(), (1 - lab[~is_val]).sum()) < 1:
        return []  # a split lacks a class: no honest number exists
    val = {k: v[idx[is_val]] for k, v in scores.items()}
    signs = fit_orientations(val, lab[is_val])
    out = []
    for name, values in scores.items():
        test = values[idx[~is_val]]
        ok = np.isfinite(test)
        if len(set(lab[~is_val][ok].tolist())) < 2:
            continue
        out.append(TaskResult(task, name, signs[name], detection(signs[name] * test[ok], lab[~is_val][ok])))
    return out
