"""ERASER's comprehensiveness and sufficiency (pyramid.analysis.faithfulness) against direct full-length passes, and the
edge cases the docs define."""

from __future__ import annotations

import pytest

from pyramid.classifier import full_probabilities
from pyramid.analysis.faithfulness import (faithfulness_of_sets, faithfulness_rows, kept_to_the_end, random_set,
                                  removal_inputs, text_faithfulness, top_k_set)
from pyramid.core.schedule import Schedule
from pyramid.trace import trace_text

TEXT = "a gripping , funny film with a weak ending and a cast that never quite gels ."


@pytest.fixture(scope="module")
def clf():
    import pyramid

    model = pyramid.load()
    return model.classifier(model.inference_head)


def test_removal_keeps_cls_and_sep_and_order():
    ids = [101, 5, 6, 7, 8, 102]
    assert removal_inputs(ids, [2, 4]) == ([101, 5, 7, 102], [101, 6, 8, 102])
    assert removal_inputs(ids, []) == (ids, [101, 102])
    assert removal_inputs(ids, [0, 5, 1, 2, 3, 4]) == ([101, 102], ids)  # [CLS]/[SEP] indices are ignored


def test_figures_equal_direct_passes_and_edge_cases(clf):
    ids = clf.encoder.tokenizer(TEXT)["input_ids"]
    n = len(ids)
    sets = {"some": [2, 3, 7], "none": [], "all": list(range(1, n - 1))}
    j, figs = faithfulness_of_sets(clf, ids, sets)
    p = full_probabilities(clf, ids)
    assert j == max(range(len(p)), key=p.__getitem__)
    without, only = removal_inputs(ids, sets["some"])
    assert figs["some"][0] == pytest.approx(p[j] - full_probabilities(clf, without)[j], abs=1e-4)
    assert figs["some"][1] == pytest.approx(p[j] - full_probabilities(clf, only)[j], abs=1e-4)
    empty = full_probabilities(clf, [ids[0], ids[-1]])[j]
    assert figs["none"][0] == pytest.approx(0.0, abs=1e-5) and figs["none"][1] == pytest.approx(p[j] - empty, abs=1e-4)
    assert figs["all"][1] == pytest.approx(0.0, abs=1e-5) and figs["all"][0] == pytest.approx(p[j] - empty, abs=1e-4)


def test_selector_sets_and_same_size_references(clf, minilm):
    ids = clf.encoder.tokenizer(TEXT)["input_ids"]
    traces = {name: trace_text(minilm, TEXT, name, Schedule(retention=0.3)) for name in ("coreset", "tome")}
    for tr in traces.values():
        kept = kept_to_the_end(tr)
        assert kept == sorted(set(tr.layers[-1].alive) - {0, tr.n_tokens - 1})
    sal = {"grad_x_input": [0.0] + list(range(len(ids) - 2)) + [0.0], "integrated_gradients": [1.0] * len(ids)}
    tf = text_faithfulness(clf, ids, traces, sal, seed=3)
    for name in traces:
        assert set(tf.references[name]) == {"grad_x_input", "integrated_gradients", "random"}
    k = tf.sizes["coreset"]
    assert top_k_set(sal["grad_x_input"], k) == list(range(len(ids) - 1 - k, len(ids) - 1))
    assert random_set(len(ids), k, 5) == random_set(len(ids), k, 5) and len(random_set(len(ids), k, 5)) == k
    rows = faithfulness_rows([tf, tf], 0.3)
    names = [r["selector"] for r in rows]
    assert "coreset" in names and "random@coreset" in names and "grad_x_input@tome" in names
    row = next(r for r in rows if r["selector"] == "coreset")
    assert row["comp_low"] <= row["comprehensiveness"] <= row["comp_high"] and row["n"] == 2
    assert row["comp_vs_random"] == pytest.approx(tf.selectors["coreset"][0] - tf.references["coreset"]["random"][0])


def test_a_selector_that_keeps_only_cls(clf, minilm):
    """A one-word text at the lowest retention: the kept set may be empty; both figures stay defined."""
    ids = clf.encoder.tokenizer("dreadful")["input_ids"]
    tr = trace_text(minilm, "dreadful", "first-k", Schedule(retention=0.05))
    tf = text_faithfulness(clf, ids, {"first-k": tr}, {}, seed=0)
    comp, suff = tf.selectors["first-k"]
    assert -1.0 <= comp <= 1.0 and -1.0 <= suff <= 1.0
    if tf.sizes["first-k"] == 0:
        assert comp == pytest.approx(0.0, abs=1e-5)
