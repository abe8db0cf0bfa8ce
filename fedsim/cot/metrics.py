"""Detection metrics of CoT-Kinetics (arXiv 2505.13408): AUROC, AUPR and FPR@95.

As in the third-party CoT-Kinetics harness (CoE fork), the *incorrect* / *unsound* class is the
positive class and scores are oriented so that higher means "more likely positive". Orientation of
each score is fitted once on a validation split (:func:`fit_orientation`) and then frozen for test.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import rankdata
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

ArrayLike = Sequence[float] | np.ndarray


@dataclass(frozen=True)
class Detection:
    auroc: float
    aupr: float
    fpr95: float
    n_pos: int
    n_neg: int


def _check(scores: ArrayLike, labels: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=float)
    y = np.asarray(labels).astype(int)
    if s.shape != y.shape or s.ndim != 1:
        raise ValueError(f"scores {s.shape} and labels {y.shape} must be 1-d and the same length")
    if y.min(initial=0) < 0 or y.max(initial=0) > 1 or len(set(y.tolist())) < 2:
        raise ValueError("labels must be 0/1 with both classes present")
    if not np.all(np.isfinite(s)):
        raise ValueError("scores contain NaN or inf")
    return s, y


def auroc(scores: ArrayLike, labels: ArrayLike) -> float:
    s, y = _check(scores, labels)
    return float(roc_auc_score(y, s))


def aupr(scores: ArrayLike, labels: ArrayLike) -> float:
    """Average precision with the positive (incorrect) class as the retrieval target."""
    s, y = _check(scores, labels)
    return float(average_precision_score(y, s))


def fpr_at_tpr(scores: ArrayLike, labels: ArrayLike, tpr_level: float = 0.95) -> float:
    """Lowest false-positive rate among thresholds that catch >= ``tpr_level`` of positives."""
    s, y = _check(scores, labels)
    fpr, tpr, _ = roc_curve(y, s, drop_intermediate=False)
    return float(fpr[tpr >= tpr_level - 1e-12].min())


def detection(scores: ArrayLike, labels: ArrayLike) -> Detection:
    s, y = _check(scores, labels)
    return Detection(auroc(s, y), aupr(s, y), fpr_at_tpr(s, y), int(y.sum()), int((1 - y).sum()))


def fit_orientation(scores: ArrayLike, labels: ArrayLike) -> int:
    """+1 if high scores indicate the positive class on this (validation) split, else -1."""
    return 1 if auroc(scores, labels) >= 0.5 else -1


def fast_auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    """AUROC as the Mann-Whitney statistic with average ranks for ties: equal to :func:`auroc` without
    its input checks, for the thousands of evaluations of a bootstrap or an option grid."""
    ranks = rankdata(scores)
    n_pos = int(labels.sum())
    n_neg = len(labels) - n_pos
    return float((ranks[labels == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def bootstrap_auroc(scores: ArrayLike, labels: ArrayLike, n: int = 1000, seed: int = 0,
                    level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the AUROC over resampled traces (resamples lacking a class
    are skipped), so small test splits show how far a number can move."""
    s, y = _check(scores, labels)
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n):
        idx = rng.integers(0, len(s), len(s))
        if 0 < y[idx].sum() < len(idx):
            values.append(fast_auroc(s[idx], y[idx]))
    lo, hi = np.quantile(values, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)
