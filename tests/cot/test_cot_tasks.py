"""SmolLM2 trace parsing/perturbation helpers (no model load) and the detection-task split."""

import numpy as np
import pytest

from fedsim.cot import smollm
from fedsim.cot.config import SmolConfig
from fedsim.cot.scorer import ReasoningSample
from fedsim.cot.tasks import Labeled, evaluate, task_labels
from fedsim.errors import DataPathError


def test_split_answer_and_equation_checks():
    text = "First, 3 + 4 = 7. Then 7 * 2 = 14.\nAnswer: 14"
    reasoning, answer, value = smollm.split_answer(text)
    assert reasoning == "First, 3 + 4 = 7. Then 7 * 2 = 14.\n" and answer == "Answer: 14" and value == 14
    assert smollm.equations_sound(reasoning)
    assert smollm.equations_sound("3 + 4 = 8.") is False
    assert smollm.equations_sound("no equations here") is None
    assert smollm.split_answer("The total is 9 apples")[2] == 9
    assert smollm.split_answer("no number") is None


def test_perturbations_keep_or_break_what_they_should():
    rng = np.random.default_rng(0)
    reasoning = "3 + 4 = 7. Then 7 * 2 = 14.\n"
    bad = smollm.perturb_step(reasoning, rng)
    # the first (second-to-last) equation changed, the last one kept
    assert smollm.equations_sound(bad) is False and bad.endswith("Then 7 * 2 = 14.\n")
    wrong = smollm.perturb_answer("Answer: 14", 14, rng)
    assert wrong.startswith("Answer: ") and int(wrong.split()[-1]) != 14


def test_word_problems_are_seeded_and_non_negative():
    a, b = smollm.make_word_problems(12, 3), smollm.make_word_problems(12, 3)
    assert a == b and all(p.truth >= 0 for p in a)
    assert len({p.question.split()[0] for p in a}) > 2


def test_missing_model_dir_is_a_data_path_error(tmp_path):
    with pytest.raises(DataPathError, match="gguf"):
        smollm.model_folder(SmolConfig(model_dir=str(tmp_path)))


def _rec(pid, kind, ok, sound):
    return Labeled(ReasoningSample("p", "r", "a"), pid, kind, ok, sound)


def test_task_labels_and_split_evaluation():
    records = [_rec(0, "sampled", True, True), _rec(0, "unsound_right", True, False),
               _rec(0, "wrong_answer", False, True), _rec(1, "sampled", False, False),
               _rec(2, "sampled", True, False), _rec(3, "sampled", True, None)]
    idx, lab = task_labels(records, "incorrect_answer")
    assert idx.tolist() == [0, 3, 4, 5] and lab.tolist() == [0, 1, 0, 0]
    idx, lab = task_labels(records, "unsound_right")  # an unverifiable trace joins no soundness task
    assert idx.tolist() == [0, 1, 4] and lab.tolist() == [0, 1, 1]
    idx, lab = task_labels(records, "wrong_answer_only")
    assert idx.tolist() == [0, 2] and lab.tolist() == [0, 1]
    # 8 problems, each with a clean and a flawed trace; the score flags flaws with a negative sign
    pairs = [(_rec(pid, "sampled", True, True), _rec(pid, "unsound_right", True, False)) for pid in range(8)]
    recs = [r for pair in pairs for r in pair]
    scores = {"s": np.array([1.0 if r.sound else -1.0 for r in recs]) + 0.01 * np.arange(16)}
    (res,) = evaluate(scores, recs, {0, 1, 2}, "unsound_right")
    assert res.orientation == -1 and res.test.auroc == 1.0 and res.test.n_pos == 5
    assert evaluate(scores, recs, set(), "unsound_right") == []  # no validation problems: no number
