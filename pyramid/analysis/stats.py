"""Honest numbers: accuracy and macro-F1 with 95% bootstrap intervals, and paired comparisons.

Every interval is a percentile bootstrap over examples (``scipy.stats.bootstrap``, ``method="percentile"``)
with a fixed seed, so the same predictions always give the same interval; the number of resamples is a
setting (:data:`N_RESAMPLES`). A paired comparison resamples the *same* examples for both runs
(``paired=True``) and bootstraps the difference of their scores, so the interval reflects how the two runs
differ on the examples they share, not the spread of each one alone (Efron and Tibshirani, *An
Introduction to the Bootstrap*, 1993, ch. 13; docs/methods.md 9).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Sequence

import numpy as np

N_RESAMPLES = int(os.environ.get("PYRAMID_LENS_BOOTSTRAP_RESAMPLES", "2000"))
"""Bootstrap resamples per interval (``PYRAMID_LENS_BOOTSTRAP_RESAMPLES``; 2,000 by default)."""
SEED = 0
"""Seed of every bootstrap (intervals are reproducible)."""
CONFIDENCE = 0.95


@dataclass(frozen=True)
class Interval:
    """A statistic with its bootstrap interval.

    Attributes:
        value: the statistic on all examples. low, high: the 95% percentile interval. n: examples.
    """

    value: float
    low: float
    high: float
    n: int

    def excludes(self, x: float) -> bool:
        """The interval does not contain ``x`` (for a difference: the two runs are distinguishable)."""
        return not (self.low <= x <= self.high)

    def __str__(self) -> str:
        return f"{self.value:.4f} [{self.low:.4f}, {self.high:.4f}] (n = {self.n})"


def _accuracy(correct, axis=-1):
    return np.mean(correct, axis=axis)


def _macro_f1(y_true, y_pred, axis=-1, n_classes: int | None = None):
    """Macro-F1 along ``axis`` (vectorised over leading axes): the mean over classes of
    ``2 TP / (2 TP + FP + FN)``, classes absent from both truth and prediction left out of the mean
    (scikit-learn's ``f1_score(average="macro")`` counts them as 0 only when they appear in ``labels``)."""
    y_true = np.moveaxis(np.asarray(y_true), axis, -1)
    y_pred = np.moveaxis(np.asarray(y_pred), axis, -1)
    k = int(n_classes if n_classes is not None else max(int(y_true.max(initial=0)), int(y_pred.max(initial=0))) + 1)
    scores, present = [], []
    for c in range(k):
        t, p = y_true == c, y_pred == c
        tp = np.sum(t & p, axis=-1)
        denom = 2 * tp + np.sum(~t & p, axis=-1) + np.sum(t & ~p, axis=-1)
        scores.append(np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.0))
        present.append(denom > 0)
    scores, present = np.stack(scores, -1), np.stack(present, -1)
    return np.sum(scores * present, -1) / np.maximum(np.sum(present, -1), 1)


def macro_f1(y_true: Sequence[int], y_pred: Sequence[int], n_classes: int | None = None) -> float:
    """Macro-F1 of label ids (the unweighted mean of the per-class F1 over the classes that occur in the truth
    or the predictions)."""
    return float(_macro_f1(np.asarray(y_true), np.asarray(y_pred), n_classes=n_classes))


def _interval(data: tuple, statistic, value: float, n: int, n_resamples: int | None, seed: int) -> Interval:
    from scipy.stats import bootstrap

    if n < 2:
        return Interval(value, value, value, n)
    res = bootstrap(data, statistic, paired=len(data) > 1, vectorized=True, confidence_level=CONFIDENCE,
                    n_resamples=int(n_resamples or N_RESAMPLES), method="percentile",
                    random_state=np.random.default_rng(seed))
    low, high = res.confidence_interval
    low = value if np.isnan(low) else float(low)  # a constant statistic (every resample equal)
    high = value if np.isnan(high) else float(high)
    return Interval(float(value), min(low, value), max(high, value), n)


def mean_interval(values: Sequence[float], *, n_resamples: int | None = None, seed: int = SEED) -> Interval:
    """The mean of per-example values (e.g. ERASER's comprehensiveness, ``pyramid.analysis.faithfulness``) with its 95%
    percentile bootstrap interval over examples."""
    v = np.asarray(values, dtype=float)
    return _interval((v,), _accuracy, float(v.mean()) if v.size else float("nan"), int(v.size), n_resamples, seed)


def accuracy_interval(correct: Sequence[bool], *, n_resamples: int | None = None, seed: int = SEED) -> Interval:
    """Accuracy (share of ``correct``) with its 95% percentile bootstrap interval over examples."""
    c = np.asarray(correct, dtype=float)
    return _interval((c,), _accuracy, float(c.mean()) if c.size else float("nan"), int(c.size), n_resamples, seed)


def macro_f1_interval(y_true: Sequence[int], y_pred: Sequence[int], *, n_classes: int | None = None,
                      n_resamples: int | None = None, seed: int = SEED) -> Interval:
    """Macro-F1 with its 95% percentile bootstrap interval (truth and prediction resampled together)."""
    t, p = np.asarray(y_true), np.asarray(y_pred)
    k = n_classes if n_classes is not None else int(max(t.max(initial=0), p.max(initial=0))) + 1

    def stat(a, b, axis=-1):
        return _macro_f1(a, b, axis=axis, n_classes=k)

    return _interval((t, p), stat, macro_f1(t, p, k), int(t.size), n_resamples, seed)


def paired_difference(correct_a: Sequence[bool], correct_b: Sequence[bool], *, n_resamples: int | None = None,
                      seed: int = SEED) -> Interval:
    """Accuracy of run A minus accuracy of run B on the same examples, with the 95% percentile interval of
    the paired bootstrap (both runs resampled on the same indices). An interval that excludes 0 means the
    two runs are distinguishable on this data.

    Raises:
        ValueError: the runs have different numbers of examples.
    """
    a, b = np.asarray(correct_a, dtype=float), np.asarray(correct_b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"a paired comparison needs the same examples: {a.shape} vs {b.shape}")

    def diff(x, y, axis=-1):
        return np.mean(x, axis=axis) - np.mean(y, axis=axis)

    return _interval((a, b), diff, float(a.mean() - b.mean()) if a.size else float("nan"), int(a.size),
                     n_resamples, seed)


def blended_accuracy_interval(parts: Sequence[tuple[float, Sequence[bool]]], *, minus: Sequence[tuple[float, Sequence[bool]]] = (),
                              n_resamples: int | None = None, seed: int = SEED) -> Interval:
    """An accuracy interpolated between runs on the same examples, ``sum_i w_i acc(c_i)``, or the difference
    of two such blends (``minus``), with its 95% paired percentile bootstrap interval: every resample draws one
    set of example indices for all the runs involved.

    Used at matched FLOPs speedup: a fixed-schedule selector's accuracy at speedup ``x`` between its measured
    points ``x0 < x < x1`` is ``(1 - w) acc_0 + w acc_1`` with ``w = (x - x0) / (x1 - x0)``; the speedups are
    taken as fixed (docs/methods.md 9).

    Args:
        parts: ``[(weight, correct)]``, every ``correct`` a boolean vector over the same examples.
        minus: another blend, subtracted (a paired comparison at matched speedup).

    Raises:
        ValueError: vectors of different lengths, or no parts.
    """
    terms = [(float(w), np.asarray(c, dtype=float)) for w, c in parts] + \
        [(-float(w), np.asarray(c, dtype=float)) for w, c in minus]
    if not parts:
        raise ValueError("nothing to blend")
    n = terms[0][1].size
    if any(c.size != n for _, c in terms):
        raise ValueError("a paired comparison needs the same examples in every run")
    weights = np.array([w for w, _ in terms])

    def stat(*vectors, axis=-1):
        return sum(w * np.mean(v, axis=axis) for w, v in zip(weights, vectors))

    value = float(sum(w * c.mean() for w, c in terms)) if n else float("nan")
    return _interval(tuple(c for _, c in terms), stat, value, n, n_resamples, seed)
