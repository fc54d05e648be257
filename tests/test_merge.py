"""Merging (docs/methods.md 10): the merge routing's size-weighted means and sizes, proportional attention,
ToMe's bipartite soft matching against ToMe's own rule, and core-set pooling's targets."""

from __future__ import annotations

import math

import pytest
import torch

from pyramid.core.encoder import PyramidEncoder
from pyramid.core.routing import RouteState, make_routing
from pyramid.core.schedule import Schedule
from pyramid.core.selectors import get_selector
import numpy as np

from pyramid.core.selectors.tome import TomeSelector, _bipartite_merge, bipartite_merge

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
    from pyramid.core.routing.merge import _checked_targets_torch, checked_targets

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


def _tome_sequence(metric: torch.Tensor, seq: list[int], r: int) -> tuple[dict, list[int]]:
    """ToMe's own bookkeeping on a physical sequence ``seq`` (token ids in sequence order, [CLS] first): the
    merges ``{src: dst}`` and the next sequence, ``[unmerged A (sorted), all B]`` (``tome/merge.py``)."""
    src, dst = _tome_reference(metric[seq], r)  # indices into seq
    merges = {seq[s]: seq[d] for s, d in dst.items()}
    a, b = seq[0::2], seq[1::2]
    return merges, [t for t in a if t not in merges] + b


def test_authors_order_is_tomes_sequence_across_layers():
    """Two layers of matching with the authors' order equal ToMe's, which reorders the sequence physically."""
    torch.manual_seed(3)
    n, r1, r2 = 17, 5, 4
    k1, k2 = torch.randn(n, 8), torch.randn(n, 8)
    target, _, order = _bipartite_merge(k1.numpy(), np.ones(n, np.float32), r1, None, authors_order=True)
    merges, seq = _tome_sequence(k1, list(range(n)), r1)
    assert {i: int(t) for i, t in enumerate(target) if t != i} == merges
    assert order.tolist() == seq
    # the next layer: the survivors in slot (positional) order, the split in ToMe's sequence order
    slots = sorted(seq)
    ranks = {tok: i for i, tok in enumerate(seq)}
    order2 = np.argsort([ranks[t] for t in slots], kind="stable")
    target2, _, _ = _bipartite_merge(k2[slots].numpy(), np.ones(len(slots), np.float32), r2, order2,
                                     authors_order=True)
    merges2, _ = _tome_sequence(k2, seq, r2)
    assert {slots[i]: slots[int(t)] for i, t in enumerate(target2) if t != i} == merges2
    positional, _, _ = _bipartite_merge(k2[slots].numpy(), np.ones(len(slots), np.float32), r2)
    assert not np.array_equal(positional, target2)  # the orders do split differently here


def test_authors_order_selector_resets_between_passes_and_batches(minilm):
    sel = TomeSelector(order="authors")
    b = minilm.tokenizer(TEXTS, return_tensors="pt", padding=True)
    with torch.inference_mode():
        pyr = PyramidEncoder(minilm, sel, Schedule(retention=0.1))
        first, again = pyr(b["input_ids"], b["attention_mask"]), pyr(b["input_ids"], b["attention_mask"])
        for i, text in enumerate(TEXTS):
            ids = minilm.tokenizer([text], return_tensors="pt")
            one = pyr(ids["input_ids"], ids["attention_mask"])
            assert torch.allclose(one.cls_hidden[0], first.cls_hidden[i], atol=1e-4)
    assert torch.equal(first.cls_hidden, again.cls_hidden)
    with pytest.raises(ValueError, match="token order"):
        TomeSelector(order="sorted")


@pytest.mark.parametrize("flag", [False, True])
def test_training_passes_proportional_attention_to_its_pyramids(tiny_encoder, tmp_path, monkeypatch, flag):
    """--proportional-attention false trains a merging selector without log(size) (ToMe's advice for training)."""
    from pyramid.core import encoder as encoder_module
    from pyramid.training.heads import TrainSettings, train_classifier

    seen = []
    init = encoder_module.PyramidEncoder.__init__

    def recording(self, enc, selector, schedule, *args, **kwargs):
        if selector.name == "tome":
            seen.append(kwargs.get("proportional_attention", True))
        init(self, enc, selector, schedule, *args, **kwargs)

    monkeypatch.setattr(encoder_module.PyramidEncoder, "__init__", recording)
    data = tmp_path / "train.tsv"
    data.write_text("sentence\tlabel\n" + "".join(f"a fine good film number {i} .\t1\nan awful bad one {i} .\t0\n"
                                                   for i in range(16)), encoding="utf-8")
    settings = TrainSettings(data=str(data), dev="", out=str(tmp_path / "h"), name="h", selector="tome",
                             retention_range=(0.3, 0.6), epochs=1, batch_size=8, lora_r=2, lora_alpha=4,
                             max_length=16, proportional_attention=flag, command="pytest")
    train_classifier(tiny_encoder, settings, progress=False)
    assert seen and set(seen) == {flag}


@pytest.mark.parametrize("name", ["tome", "coreset-pool"])
def test_sources_follow_every_merge_and_match_sizes(minilm, name):
    from pyramid.present.figures import groups_html
    from pyramid.trace import trace_text
    from pyramid.words import trace_groups

    tr = trace_text(minilm, TEXTS[0] + " <b>x</b>", name, Schedule(retention=0.2))
    src = tr.sources()
    assert len(src) == tr.num_layers
    for lt, groups in zip(tr.layers, src):
        assert sorted(groups) == sorted(lt.kept)
        sizes = dict(zip(lt.alive, lt.size))
        assert all(len(groups[t]) == pytest.approx(sizes[t]) and t in groups[t] for t in lt.kept)
        placed = sorted(p for members in groups.values() for p in members)
        assert len(placed) == len(set(placed))  # each original token stands in one group
    assert any(len(v) > 1 for v in src[-1].values())
    layers = tr.to_json()["layers"]
    assert all(item["sources"] == [src[j][t] for t in item["kept"]] for j, item in enumerate(layers))
    page = groups_html(tr, trace_groups(tr, True), tr.num_layers)
    assert "background:#" in page and "<b>" not in page and "&lt;" in page
    with pytest.raises(ValueError):
        groups_html(trace_text(minilm, TEXTS[0], "coreset", Schedule(retention=0.2)), trace_groups(tr, True), 1)
    token_groups = trace_groups(tr, False)
    t = next(t for t, v in src[-1].items() if len(v) > 1)
    one = groups_html(tr, token_groups, tr.num_layers, focus=t)
    assert one.count("underline double") == len(src[-1][t])  # only its own source tokens


def test_evaluate_can_turn_proportional_attention_off(monkeypatch):
    """evaluate(..., proportional_attention=False) reaches every pyramid it builds (evaluate --proportional-attention)."""
    import pyramid
    from pyramid.core import encoder as encoder_module
    from pyramid.data import LabelledData
    from pyramid.analysis.evaluation import evaluate

    model = pyramid.load()
    clf = model.classifier(model.inference_head)
    data = LabelledData(texts=TEXTS[:2] * 3, labels=[1, 0] * 3, label_names=clf.labels, path="x", text_column="t",
                        label_column="l")
    seen = []
    init = encoder_module.PyramidEncoder.__init__

    def recording(self, enc, selector, schedule=None, *args, **kwargs):
        seen.append((selector.name, kwargs.get("proportional_attention", True)))
        init(self, enc, selector, schedule, *args, **kwargs)

    monkeypatch.setattr(encoder_module.PyramidEncoder, "__init__", recording)
    for flag in (True, False):
        seen.clear()
        rows = evaluate(clf, data, ["tome"], [0.2], progress=False, proportional_attention=flag)
        assert rows[0]["n"] == 6
        assert ("tome", flag) in seen and all(f == flag for name, f in seen if name == "tome")
