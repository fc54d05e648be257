"""Merging (docs/methods.md 10): the merge routing's size-weighted means and sizes, proportional attention,
ToMe's bipartite soft matching against ToMe's own rule, and core-set pooling's targets."""

from __future__ import annotations

import math

import pytest
import torch

from pyramid.encoder import PyramidEncoder
from pyramid.routing import RouteState, make_routing
from pyramid.schedule import Schedule
from pyramid.selectors import get_selector
from pyramid.selectors.tome import bipartite_merge

TEXTS = ["the plot is thin but the acting is superb and the score moves along nicely , never once dragging .",
         "a gripping , funny film with a weak ending .", "ok"]


def _run(enc, name, retention=0.3, **kw):
    b = enc.tokenizer(TEXTS, return_tensors="pt", padding=True)
    with torch.inference_mode():
        return PyramidEncoder(enc, get_selector(name), Schedule(retention=retention), **kw)(
            b["input_ids"], b["attention_mask"], output_coverage=True), b


@pytest.mark.parametrize("name", ["tome", "coreset-pool"])
def test_sizes_add_up_and_cls_is_never_merged(minilm, name):
    out, b = _run(minilm, name)
    n = b["attention_mask"].sum(1)
    for lo in out.layers:
        assert lo.size is not None
        kept_size = (lo.size * lo.keep).sum(1)  # every original token is in exactly one kept state...
        more = lo.keep.sum(1) > 1  # ...unless only [CLS] is left: then the others are dropped (nothing merges into it)
        assert torch.allclose(kept_size[more], n[more].to(kept_size.dtype)), (lo.layer, kept_size, n)
        assert bool((kept_size[~more] == 1).all())
        assert bool((lo.size[:, 0] == 1).all())  # nothing merges into [CLS]
        if lo.merged_into is not None:
            targets = lo.merged_into[lo.merged_into >= 0]
            assert not bool((targets == 0).any())
            rows, slots = (lo.merged_into >= 0).nonzero(as_tuple=True)
            assert bool(lo.keep[rows, lo.merged_into[rows, slots]].all())  # only into kept tokens
            assert not bool(lo.keep[rows, slots].any())
    for bi in range(len(TEXTS)):  # the schedule's lengths, as for every fixed-length selector
        assert [int(lo.keep[bi].sum()) for lo in out.layers] == out.lengths[bi].tolist()


def test_merge_is_the_size_weighted_mean():
    torch.manual_seed(0)
    h = torch.randn(1, 6, 4)
    valid = torch.ones(1, 6, dtype=torch.bool)
    size = torch.tensor([[1.0, 2.0, 1.0, 3.0, 1.0, 1.0]])
    state = RouteState(h, valid, torch.arange(6).unsqueeze(0), torch.zeros(1, 6, dtype=torch.long), size)
    keep = torch.tensor([[True, True, False, True, False, True]])
    targets = torch.tensor([[-1, -1, 1, -1, 1, -1]])  # tokens 2 and 4 into token 1
    routing = make_routing("merge")
    new, sizes = routing.route(1, 6, state, keep, targets)
    expected = (2 * h[0, 1] + 1 * h[0, 2] + 1 * h[0, 4]) / 4
    assert torch.allclose(new.hidden[0, 1], expected, atol=1e-6)
    assert torch.equal(new.hidden[0, 0], h[0, 0]) and torch.equal(new.hidden[0, 2], h[0, 3])
    assert new.size.tolist() == [[1.0, 4.0, 3.0, 1.0]] and sizes[0, 1] == 4.0
    assert new.positions.tolist() == [[0, 1, 3, 5]]
    bias = routing.bias(new)
    assert torch.allclose(bias, torch.log(new.size))  # proportional attention: log(size) on the logits


def test_proportional_attention_is_switchable(minilm):
    on, _ = _run(minilm, "tome")
    off, _ = _run(minilm, "tome", proportional_attention=False)
    assert [lo.keep.sum().item() for lo in on.layers[:1]] == [lo.keep.sum().item() for lo in off.layers[:1]]
    assert not torch.allclose(on.cls_hidden, off.cls_hidden)  # later layers see the sizes only when on


def _tome_reference(metric: torch.Tensor, r: int):
    """ToMe's bipartite_soft_matching (tome/merge.py, class_token=True) for one example: (src, dst) slots."""
    m = metric / metric.norm(dim=-1, keepdim=True)
    a, b = m[::2], m[1::2]
    scores = a @ b.T
    scores[0, :] = -math.inf
    node_max, node_idx = scores.max(dim=-1)
    edge = node_max.argsort(descending=True)
    src = edge[:r]
    return set((2 * src).tolist()), {int(2 * s): int(2 * node_idx[s] + 1) for s in src}


@pytest.mark.parametrize("n,r", [(12, 3), (21, 10), (8, 1)])
def test_one_round_is_tomes_bipartite_soft_matching(n, r):
    torch.manual_seed(n)
    metric = torch.randn(n, 8)
    target, score = bipartite_merge(metric, torch.ones(n), r)
    src, dst = _tome_reference(metric, r)
    merged = {i for i in range(n) if target[i] != i}
    assert merged == src
    assert {i: int(target[i]) for i in merged} == dst
    assert score[0] == 2.0


def test_more_than_half_takes_several_rounds_and_keeps_cls():
    torch.manual_seed(1)
    n, r = 20, 16
    target, _ = bipartite_merge(torch.randn(n, 8), torch.ones(n), r)
    kept = [i for i in range(n) if target[i] == i]
    assert len(kept) == n - r and kept[0] == 0
    assert all(int(target[i]) in kept and int(target[i]) != 0 for i in range(n) if target[i] != i and target[i] >= 0)
    # only [CLS] may remain, and nothing merges into it: the last token is dropped
    target, _ = bipartite_merge(torch.randn(5, 8), torch.ones(5), 4)
    assert (target == 0).sum() == 1 and (target == -1).sum() == 4


@pytest.mark.parametrize("name", ["tome", "coreset-pool"])
def test_batch_equals_one_by_one(minilm, name):
    batch, b = _run(minilm, name)
    for i, text in enumerate(TEXTS):
        ids = minilm.tokenizer([text], return_tensors="pt")
        with torch.inference_mode():
            one = PyramidEncoder(minilm, get_selector(name), Schedule(retention=0.3))(ids["input_ids"],
                                                                                      ids["attention_mask"])
        assert torch.allclose(one.cls_hidden[0], batch.cls_hidden[i], atol=1e-4)


def test_coreset_pooling_merges_into_the_covering_centre(minilm):
    out, _ = _run(minilm, "coreset-pool")
    lo = out.layers[0]
    h = lo.coverage  # coverage over the merge targets
    plain, _ = _run(minilm, "coreset")
    assert torch.equal(plain.layers[0].keep, lo.keep)  # the same centres as core-set
    near = plain.layers[0].coverage.nearest
    merged = lo.merged_into >= 0
    # the target is the nearest centre, except where that is [CLS] (nothing merges into it)
    same = (lo.merged_into == near) | (near == 0)
    assert bool(same[merged].all()) and h.radius.shape == (len(TEXTS),)


def test_gradients_flow_through_merges(tiny_encoder):
    b = tiny_encoder.tokenizer(TEXTS[:2], return_tensors="pt", padding=True)
    out = PyramidEncoder(tiny_encoder, get_selector("tome"), Schedule(retention=0.3))(b["input_ids"],
                                                                                     b["attention_mask"])
    out.last_hidden_state.sum().backward()
    grads = [p.grad for p in tiny_encoder.model.encoder.layer[0].parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    tiny_encoder.model.zero_grad()


def test_checked_targets_applies_the_merge_rules_on_every_path():
    from pyramid.routing.merge import _checked_targets_torch, checked_targets

    g = torch.Generator().manual_seed(0)
    B, N = 4, 30
    given = torch.randint(-1, N + 3, (B, N), generator=g)  # out-of-range targets too
    keep = torch.rand(B, N, generator=g) < 0.4
    valid = torch.ones(B, N, dtype=torch.bool)
    valid[1, 20:] = False
    keep &= valid
    expected = torch.full((B, N), -1)
    for b in range(B):
        for i in range(N):
            t = int(given[b, i])
            if valid[b, i] and not keep[b, i] and 0 < t < N and keep[b, t]:
                expected[b, i] = t
    assert torch.equal(checked_targets(given, keep, valid), expected)
    assert torch.equal(_checked_targets_torch(given, keep, valid), expected)
    assert (expected >= 0).any()  # the rules let some merges through
