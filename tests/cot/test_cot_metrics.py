"""AUROC / AUPR / FPR@95 with the incorrect class positive, and orientation fitting."""

import numpy as np
import pytest

from fedsim.cot.metrics import aupr, auroc, detection, fit_orientation, fpr_at_tpr


def test_separated_scores_give_perfect_auroc_and_aupr():
    scores = [0.1, 0.2, 0.3, 0.9, 1.0, 1.1]
    labels = [0, 0, 0, 1, 1, 1]
    assert auroc(scores, labels) == 1.0
    assert aupr(scores, labels) == 1.0
    assert fpr_at_tpr(scores, labels) == 0.0
    assert auroc(-np.asarray(scores), labels) == 0.0


def test_fpr_at_95_on_known_toy():
    # 20 positives: 0.5 and 2..20; catching 19/20 (95%) needs threshold 2 -> only the negative 2.5 passes.
    pos = [0.5, *range(2, 21)]
    neg = [1.5, 2.5, 0, -1, -2, -3, -4, -5, -6, -7]
    scores = np.array(pos + neg, dtype=float)
    labels = np.array([1] * len(pos) + [0] * len(neg))
    assert fpr_at_tpr(scores, labels, 0.95) == pytest.approx(0.1)
    assert fpr_at_tpr(scores, labels, 1.0) == pytest.approx(0.2)  # threshold 0.5 lets 1.5 and 2.5 in
    d = detection(scores, labels)
    assert (d.n_pos, d.n_neg) == (20, 10)
    # 20 x 10 pairs; misordered: (0.5 vs 1.5), (0.5 vs 2.5), (2 vs 2.5)
    assert d.auroc == pytest.approx(1 - 3 / 200)


def test_orientation_flips_for_low_means_bad():
    labels = [0, 0, 1, 1]
    assert fit_orientation([5, 4, 1, 0], labels) == -1
    assert fit_orientation([0, 1, 4, 5], labels) == 1


def test_bad_inputs_raise():
    with pytest.raises(ValueError):
        auroc([0.1, 0.2], [1, 1])
    with pytest.raises(ValueError):
        auroc([0.1, float("nan")], [0, 1])


def test_bootstrap_interval_brackets_the_auroc_and_shrinks_with_data():
    from fedsim.cot.metrics import auroc, bootstrap_auroc

    rng = np.random.default_rng(0)
    small_y, big_y = np.repeat([0, 1], 20), np.repeat([0, 1], 500)
    small_s, big_s = small_y + rng.normal(0, 1.0, 40), big_y + rng.normal(0, 1.0, 1000)
    lo, hi = bootstrap_auroc(small_s, small_y, n=300)
    assert lo <= auroc(small_s, small_y) <= hi
    blo, bhi = bootstrap_auroc(big_s, big_y, n=300)
    assert bhi - blo < hi - lo and blo <= auroc(big_s, big_y) <= bhi


def test_fast_auroc_equals_sklearn_with_ties():
    from fedsim.cot.metrics import auroc, fast_auroc

    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 200)
    s = np.round(y + rng.normal(0, 1.5, 200), 1)  # rounded: many ties
    assert fast_auroc(s, y) == pytest.approx(auroc(s, y), abs=1e-12)
