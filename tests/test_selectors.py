"""Each selector's rule, on hand-made inputs."""

import pytest
import torch

from pyramid.core.attention import significance
from pyramid.core.selectors import SELECTORS, SelectionContext, get_selector, keep_top_k

FIXED_LENGTH = [n for n, c in SELECTORS.items() if c.fixed_length]  # the learned and Token Dropping selectors have their own tests


def ctx(B=2, N=8, d=4, k=(3, 5), valid_n=(8, 6), probs=None, seed=0):
    g = torch.Generator().manual_seed(seed)
    valid = torch.zeros(B, N, dtype=torch.bool)
    for b, n in enumerate(valid_n):
        valid[b, :n] = True
    positions = torch.where(valid, torch.arange(N).expand(B, N), torch.full((B, N), -1))
    return SelectionContext(
        hidden=torch.randn(B, N, d, generator=g), valid=valid, positions=positions,
        input_ids=torch.zeros(B, N, dtype=torch.long), layer=1, num_layers=6,
        k=torch.tensor(k), attention_probs=probs, generator=torch.Generator().manual_seed(seed),
        keys=torch.randn(B, N, d, generator=g))


def test_keep_top_k_counts_cls_and_pads():
    scores = torch.tensor([[0.0, 5, 1, 4, 2, 9], [0.0, 1, 2, 3, 9, 9]])
    valid = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]], dtype=torch.bool)
    keep = keep_top_k(scores, valid, torch.tensor([3, 3]))
    assert keep[0].nonzero().flatten().tolist() == [0, 1, 5]  # [CLS] despite its low score
    assert keep[1].nonzero().flatten().tolist() == [0, 2, 3]  # pads skipped despite high scores


def test_significance_is_attention_received_without_diagonal():
    # one example, 2 heads, 3 tokens; head 1 = identity (only self-attention), head 2 = all to token 2
    h1 = torch.eye(3)
    h2 = torch.tensor([[0.0, 0, 1], [0, 0, 1], [0, 0, 1]])
    probs = torch.stack([h1, h2])[None]  # (1, 2, 3, 3)
    sig = significance(probs, torch.ones(1, 3, dtype=torch.bool))
    # head-mean = 0.5 * (h1 + h2); diagonal removed; token 2 receives 0.5 from rows 0 and 1
    assert sig[0].tolist() == pytest.approx([0.0, 0.0, 1.0])
    # a pad query row does not count
    sig_pad = significance(probs, torch.tensor([[True, False, True]]))
    assert sig_pad[0].tolist() == pytest.approx([0.0, 0.0, 0.5])


def test_attention_selector_keeps_most_attended():
    N = 6
    a = torch.full((N, N), 0.01)
    a[:, 4] = 1.0
    a[:, 2] = 0.5
    probs = (a / a.sum(-1, keepdim=True))[None, None].expand(1, 3, N, N)
    c = ctx(B=1, N=N, k=(3,), valid_n=(N,), probs=probs)
    sel = get_selector("attention").select(c)
    assert sel.keep[0].nonzero().flatten().tolist() == [0, 2, 4]
    with pytest.raises(ValueError):
        get_selector("attention").select(ctx(B=1, N=N, k=(3,), valid_n=(N,)))


def test_first_k_is_truncation():
    sel = get_selector("first-k").select(ctx())
    assert sel.keep[0].nonzero().flatten().tolist() == [0, 1, 2]
    assert sel.keep[1].nonzero().flatten().tolist() == [0, 1, 2, 3, 4]


def test_random_is_seeded_and_sized():
    a = get_selector("random").select(ctx(seed=1)).keep
    b = get_selector("random").select(ctx(seed=1)).keep
    assert torch.equal(a, b)
    draws = {tuple(get_selector("random").select(ctx(seed=s)).keep[0].tolist()) for s in range(10)}
    assert len(draws) > 1
    assert a.sum(1).tolist() == [3, 5] and bool(a[:, 0].all())
    assert not bool(a[1, 6:].any())


@pytest.mark.parametrize("name", FIXED_LENGTH)
def test_every_selector_keeps_exactly_k(name):
    N = 8
    probs = torch.softmax(torch.randn(2, 2, N, N), -1)
    sel = get_selector(name).select(ctx(probs=probs))
    assert sel.keep.sum(1).tolist() == [3, 5]
    assert bool(sel.keep[:, 0].all())
    assert not bool(sel.keep[1, 6:].any())
    assert sel.scores is None or sel.scores.shape == (2, N)


def test_unknown_selector():
    with pytest.raises(KeyError, match="coreset"):
        get_selector("nope")


@pytest.mark.parametrize("n_valid", [70, 40, 5])
def test_chunked_significance_equals_the_probabilities_path(tiny_encoder, monkeypatch, n_valid):
    """The chunked attention (no (B, h, N, N) tensor) gives the eager path's output and significance."""
    import pyramid.core.attention as loading
    from pyramid.core.layers import additive_mask, run_layer

    monkeypatch.setattr(loading, "SIGNIFICANCE_CHUNK_ELEMENTS", 1)  # the smallest chunks: 32 query rows
    torch.manual_seed(0)
    h = torch.randn(2, 70, 32)  # 70 tokens: chunks of 32, 32 and 6 rows
    valid = torch.ones(2, 70, dtype=torch.bool)
    valid[1, n_valid:] = False
    mask = additive_mask(valid, h.dtype)
    model = tiny_encoder.model
    with torch.no_grad():
        out_p, probs = run_layer(model, 1, h, mask, output_attention_probs=True)
        out_s, sig = run_layer(model, 1, h, mask, significance_rows=valid)
    assert torch.allclose(out_p, out_s, atol=1e-5)
    assert torch.allclose(sig, significance(probs, valid), atol=1e-5)


def test_attention_selector_keeps_the_same_tokens_either_way(tiny_encoder):
    from pyramid.core.encoder import PyramidEncoder
    from pyramid.core.schedule import Schedule

    enc = tiny_encoder.tokenizer(["a film of many words and some more words here", "short text"],
                                 return_tensors="pt", padding=True)
    pyr = PyramidEncoder(tiny_encoder, get_selector("attention"), Schedule(retention=0.3))
    with torch.no_grad():
        a = pyr(enc["input_ids"], enc["attention_mask"])  # chunked significance
        b = pyr(enc["input_ids"], enc["attention_mask"], output_attention_probs=True)  # eager probabilities
    assert all(la.attention_probs is None for la in a.layers)
    assert any(lb.attention_probs is not None for lb in b.layers)
    for la, lb in zip(a.layers, b.layers):
        assert torch.equal(la.keep, lb.keep)
    assert torch.allclose(a.last_hidden_state, b.last_hidden_state, atol=1e-5)
