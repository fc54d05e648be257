"""Intervals and paired comparisons (pyramid/analysis/stats.py): scipy's bootstrap, checked against plain facts."""

from __future__ import annotations

import numpy as np
import pytest

from pyramid.analysis.stats import accuracy_interval, macro_f1, macro_f1_interval, paired_difference


def test_macro_f1_matches_scikit_learn():
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(0)
    for classes in (2, 5):
        t = rng.integers(0, classes, 300)
        p = np.where(rng.random(300) < 0.7, t, rng.integers(0, classes, 300))
        assert macro_f1(t, p) == pytest.approx(f1_score(t, p, average="macro"))
    assert macro_f1([0, 0, 1], [0, 0, 0]) == pytest.approx(f1_score([0, 0, 1], [0, 0, 0], average="macro"))


def test_accuracy_interval_is_reproducible_and_about_the_normal_width():
    correct = np.r_[np.ones(760, bool), np.zeros(112, bool)]  # 87.2% of SST-2 dev's 872
    a, b = accuracy_interval(correct), accuracy_interval(correct)
    assert a == b and a.low < a.value < a.high and a.n == 872
    half = 1.96 * np.sqrt(a.value * (1 - a.value) / a.n)  # the normal approximation: +-2.2 points
    assert (a.high - a.low) / 2 == pytest.approx(half, rel=0.15)
    assert accuracy_interval([True]).low == accuracy_interval([True]).high == 1.0  # one example: no spread


def test_paired_difference_sees_what_unpaired_intervals_hide():
    rng = np.random.default_rng(1)
    a = rng.random(872) < 0.87
    b = a.copy()
    flip = rng.choice(np.flatnonzero(a), 20, replace=False)  # B loses 20 of A's right answers, nothing else
    b[flip] = False
    ia, ib = accuracy_interval(a), accuracy_interval(b)
    assert ia.low < ib.high  # the two unpaired intervals overlap...
    d = paired_difference(a, b)
    assert d.value == pytest.approx(20 / 872) and d.excludes(0.0)  # ...but the paired difference is clear
    same = paired_difference(a, a)
    assert same.value == same.low == same.high == 0.0 and not same.excludes(0.0)
    with pytest.raises(ValueError, match="same examples"):
        paired_difference(a, a[:10])


def test_macro_f1_interval_brackets_the_value():
    t = np.arange(426) % 5
    p = np.where(np.arange(426) % 7 == 0, (t + 1) % 5, t)
    f = macro_f1_interval(t, p, n_classes=5)
    assert f.low <= f.value <= f.high and f.value == pytest.approx(macro_f1(t, p))


def _rows():
    """Two fixed-schedule selectors on the same 400 examples, and a learned one, with per-example correctness."""
    from pyramid.analysis.evaluation import pack_correct

    rng = np.random.default_rng(3)
    full = rng.random(400) < 0.9
    rows = []
    for sel, drop in (("coreset", (0.0, 0.02, 0.06)), ("random", (0.0, 0.10, 0.20))):
        for (ret, speed), d in zip(((1.0, 1.0), (0.5, 1.4), (0.2, 1.9)), drop):
            c = full & (rng.random(400) >= d)
            rows.append({"regime": "inference", "head": "h", "selector": sel, "retention": ret, "n": 400,
                         "accuracy": c.mean(), "agreement": 1.0, "flops_speedup": speed, "wall_s": 0.0,
                         "correct": pack_correct(full if ret == 1.0 else c)})
    c = full & (rng.random(400) >= 0.03)
    rows.append({"regime": "inference", "head": "h", "selector": "adapler", "retention": 0.3, "n": 400,
                 "accuracy": c.mean(), "agreement": 1.0, "flops_speedup": 1.6, "wall_s": 0.0, "correct": pack_correct(c)})
    return rows


def test_bits_round_trip():
    from pyramid.analysis.evaluation import pack_correct, unpack_correct

    c = np.random.default_rng(0).random(873) < 0.5
    assert (unpack_correct(pack_correct(c), 873) == c).all()
    with pytest.raises(ValueError):
        unpack_correct("not base64!", 10)


def test_matched_speedup_intervals_and_pairwise_differences():
    from pyramid.analysis.results import accuracy_at_speedup, interval_at_speedup, matched_table, pairwise_at_speedup

    rows = _rows()
    iv = interval_at_speedup(rows, "coreset", 1.6, "inference")
    assert iv.value == pytest.approx(accuracy_at_speedup(rows, "coreset", 1.6, "inference"))
    assert iv.low <= iv.value <= iv.high
    table = {m["selector"]: m for m in matched_table(rows, speedups=(1.6,))}
    assert table["random"]["vs full"]["1.6x"].excludes(0.0)  # random loses ~15% of the right answers
    assert table["adapler"]["own point"] is not None and table["adapler"]["1.6x"] is None
    pairs = {(p["a"], p["b"]): p["diff"] for p in pairwise_at_speedup(rows, 1.6, "inference")}
    assert pairs[("coreset", "random")].excludes(0.0) and pairs[("coreset", "random")].value > 0
    assert pairs[("coreset", "random")].value == pytest.approx(-pairs[("random", "coreset")].value)
    assert ("adapler", "coreset") in pairs  # the learned selector's point, at its own speedup
    assert not pairwise_at_speedup(rows, 1.7, "inference") or all(p["a"] != "adapler" for p in
                                                                    pairwise_at_speedup(rows, 1.7, "inference"))


def test_the_benchmarks_view_of_a_data_set_splits_reference_heads_from_both_regimes():
    from pyramid.analysis.results import dataset_results, load_eval_results

    results, problems = load_eval_results()
    assert not problems
    view = dataset_results(results, "sst2-dev")
    assert set(view.regimes) == {"inference", "train-select"} and view.n == 872
    assert all(f.head for f in view.references) and "coreset" in view.selectors
    assert view.full_value("accuracy") == view.full_accuracy is not None
    shown = view.shown(["coreset"], ["train-select"])
    assert shown and {(r["selector"], r["regime"]) for r in shown} == {("coreset", "train-select")}
