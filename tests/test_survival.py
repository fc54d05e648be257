"""Every method on one text (pyramid.analysis.survival): depths, merges and rejoins read back from real traces."""

from __future__ import annotations

import pytest

from pyramid.core.schedule import Schedule
from pyramid.analysis.survival import survival, token_depths
from pyramid.trace import trace_text
from pyramid.words import trace_groups

TEXT = "the plot is thin but the acting is superb and the score moves along nicely , never once dragging ."


@pytest.fixture(scope="module")
def traces(minilm):
    sched = Schedule(retention=0.3)
    return {name: trace_text(minilm, TEXT, name, sched) for name in ("coreset", "first-k", "tome", "random")}


def test_depth_is_the_last_layer_entered_without_a_break(traces):
    for name, tr in traces.items():
        depth, merges, rejoins = token_depths(tr)
        L = tr.num_layers
        assert not rejoins
        for i in range(tr.n_tokens):
            entered = [lt.layer for lt in tr.layers if i in lt.alive]
            assert entered == list(range(1, depth[i] + 1)), (name, i)  # a prefix of the layers, then never again
        assert {i for i in range(tr.n_tokens) if depth[i] == L} == set(tr.layers[-1].alive)
        assert depth[0] == L  # [CLS]
        if name == "tome":
            assert merges and all(depth[i] == layer and target in tr.layers[layer - 1].kept
                                  for i, (layer, target) in merges.items())
        else:
            assert not merges


def test_rows_words_and_first_k_order(traces):
    groups = trace_groups(traces["coreset"], True)
    sv = survival(traces, groups, saliency=[1.0] * traces["coreset"].n_tokens, top_k=3)
    assert sv.runs == list(traces) and sv.depth.shape == (4, len(groups))
    first_k = sv.depth[sv.runs.index("first-k")][1:-1]  # real words: a first-k pyramid keeps a prefix
    assert all(a >= b for a, b in zip(first_k, first_k[1:]))
    assert sv.saliency[0] == 0.0 and max(sv.saliency) == 1.0 and len(sv.top) == 3 and 0 not in sv.top
    tome = sv.runs.index("tome")
    merged = [w for w in range(len(groups)) if sv.merged_after[tome, w]]
    assert merged and all(sv.merged_into[tome][w] is not None for w in merged)
    assert 0 in sv.kept_by_all()  # [CLS] is never dropped


def test_token_dropping_rejoins_at_the_last_layer(minilm):
    tr = trace_text(minilm, TEXT, "token-dropping", Schedule(retention=0.3))
    depth, _, rejoins = token_depths(tr)
    assert rejoins and set(rejoins.values()) == {tr.num_layers}
    assert all(depth[i] < tr.num_layers for i in rejoins)


def test_bad_input(traces, minilm):
    with pytest.raises(ValueError):
        survival({}, trace_groups(traces["coreset"], False))
    other = trace_text(minilm, "a different text .", "coreset", Schedule(retention=0.3))
    with pytest.raises(ValueError, match="another text"):
        survival({"a": traces["coreset"], "b": other}, trace_groups(traces["coreset"], False))
