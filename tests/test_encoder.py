"""The pyramid encoder: exactness against the reference model, shrinking, batching, routing."""

import pytest
import torch

from pyramid.core.encoder import PyramidEncoder
from pyramid.core.routing.base import compact, gather_rows as _gather_rows
from pyramid.core.loading import encoder_from_model
from pyramid.core.schedule import Schedule
from pyramid.core.selectors import SELECTORS, Selection, Selector, get_selector
from tests.conftest import tiny_config

FIXED_LENGTH = [n for n, c in SELECTORS.items() if c.fixed_length]  # the learned and Token Dropping selectors have their own tests

TEXTS = [
    "a gripping , funny film with a weak ending .",
    "the plot is thin but the acting is superb and the score moves along nicely , never once dragging .",
    "ok",
]


def batch(encoder, texts=TEXTS):
    return encoder.tokenizer(texts, return_tensors="pt", padding=True)


@pytest.mark.parametrize("name", FIXED_LENGTH)
def test_retention_one_equals_bert_model(minilm, name):
    from transformers import AutoModel

    ref = AutoModel.from_pretrained(minilm.path, attn_implementation="eager").eval()
    b = batch(minilm)
    with torch.inference_mode():
        expected = ref(**b).last_hidden_state
        out = PyramidEncoder(minilm, get_selector(name), Schedule(retention=1.0))(
            b["input_ids"], b["attention_mask"], b["token_type_ids"])
    mask = b["attention_mask"].bool()
    assert out.last_hidden_state.shape == expected.shape
    assert (out.last_hidden_state - expected)[mask].abs().max() < 1e-5


@pytest.mark.parametrize("family", ["bert", "roberta"])
def test_tiny_models_of_each_family_match_reference(minilm, family):
    from transformers import AutoModel

    torch.manual_seed(0)
    ref = AutoModel.from_config(tiny_config(family), attn_implementation="eager").eval()
    enc = encoder_from_model(AutoModel.from_config(tiny_config(family)), minilm.tokenizer, name=family)
    enc.model.load_state_dict(ref.state_dict())
    ids = torch.randint(1000, 2000, (2, 12))
    ids[:, 0] = 101
    mask = torch.ones_like(ids)
    mask[1, 8:] = 0
    with torch.inference_mode():
        expected = ref(input_ids=ids, attention_mask=mask).last_hidden_state
        out = PyramidEncoder(enc, get_selector("attention"), Schedule(retention=1.0))(ids, mask)
    assert (out.last_hidden_state - expected)[mask.bool()].abs().max() < 1e-5


@pytest.mark.parametrize("name", FIXED_LENGTH)
def test_sequence_physically_shrinks_per_schedule(tiny_encoder, name):
    b = batch(tiny_encoder)
    sch = Schedule(retention=0.3, start_layer=1)
    with torch.inference_mode():
        out = PyramidEncoder(tiny_encoder, get_selector(name), sch)(
            b["input_ids"], b["attention_mask"], output_hidden_states=True, output_attention_probs=True)
    n = b["attention_mask"].sum(1).tolist()
    L = tiny_encoder.num_layers
    for bi, nb in enumerate(n):
        lengths = sch.lengths(nb, L)
        assert out.lengths[bi].tolist() == lengths
        for lo in out.layers:
            assert int(lo.keep[bi].sum()) == lengths[lo.layer - 1]
            assert int(lo.valid[bi].sum()) == ([nb] + lengths)[lo.layer - 1]
    for lo in out.layers:
        # physically shorter: as wide as the longest example's alive count, no more
        assert lo.hidden.shape[1] == int(lo.valid.sum(1).max())
        assert bool(lo.keep[:, 0].all())  # [CLS] always kept
        assert bool((lo.positions[:, 0] == 0).all())
        assert not bool((lo.keep & ~lo.valid).any())  # pads never kept
        pos = lo.positions.masked_fill(~lo.valid, 10**6)
        assert bool((pos[:, 1:] >= pos[:, :-1]).all())  # ascending original order
        if name == "attention" and lo.scores is not None:
            assert lo.attention_probs.shape[-1] == lo.hidden.shape[1]
    assert out.last_hidden_state.shape[1] == max(sch.lengths(x, L)[-1] for x in n)


@pytest.mark.parametrize("name", ["coreset", "attention", "first-k"])
def test_batch_equals_one_by_one(tiny_encoder, name):
    b = batch(tiny_encoder)
    pyr = PyramidEncoder(tiny_encoder, get_selector(name), Schedule(retention=0.4))
    with torch.inference_mode():
        out = pyr(b["input_ids"], b["attention_mask"])
        for i, text in enumerate(TEXTS):
            one = tiny_encoder.tokenizer([text], return_tensors="pt")
            single = pyr(one["input_ids"], one["attention_mask"])
            assert torch.allclose(single.cls_hidden[0], out.cls_hidden[i], atol=1e-4)
            for lo_b, lo_1 in zip(out.layers, single.layers):
                kept_b = lo_b.positions[i][lo_b.keep[i]].tolist()
                assert kept_b == lo_1.positions[0][lo_1.keep[0]].tolist()


def test_random_selector_is_seeded(tiny_encoder):
    b = batch(tiny_encoder)
    pyr = PyramidEncoder(tiny_encoder, get_selector("random"), Schedule(retention=0.3))
    with torch.inference_mode():
        runs = [pyr(b["input_ids"], b["attention_mask"], seed=s) for s in (1, 1, 2)]
    kept = [[lo.positions[lo.keep].tolist() for lo in r.layers] for r in runs]
    assert kept[0] == kept[1]
    assert kept[0] != kept[2]


def test_start_layer_delays_selection(tiny_encoder):
    b = batch(tiny_encoder)
    with torch.inference_mode():
        out = PyramidEncoder(tiny_encoder, get_selector("coreset"), Schedule(retention=0.3, start_layer=3))(
            b["input_ids"], b["attention_mask"])
    for lo in out.layers[:2]:
        assert bool((lo.keep == lo.valid).all()) and lo.selection_seconds == 0.0
    assert int(out.layers[2].keep.sum()) < int(out.layers[2].valid.sum())


class EveryOtherRejoin(Selector):
    """Toy routing: drop odd positions after layer 1, bring them back before the last layer."""

    name = "toy-rejoin"
    fixed_length = False
    routing = "rejoin"

    def selects_after(self, layer, num_layers):
        return layer == 1

    def select(self, ctx):
        return Selection(keep=(ctx.positions % 2 == 0) & ctx.valid)


def test_dropped_tokens_rejoin_at_the_last_layer(tiny_encoder):
    b = batch(tiny_encoder)
    with torch.inference_mode():
        out = PyramidEncoder(tiny_encoder, EveryOtherRejoin())(
            b["input_ids"], b["attention_mask"], output_hidden_states=True)
    L = tiny_encoder.num_layers
    mask = b["attention_mask"].bool()
    first, middle, last = out.layers[0], out.layers[1], out.layers[L - 1]
    assert bool((middle.positions[middle.valid] % 2 == 0).all())
    assert torch.equal(last.valid, mask) and torch.equal(last.positions[mask], torch.nonzero(mask)[:, 1])
    # The last layer's input for a rejoined token is its state where it left (output of layer 1):
    # rerun the last layer on that reconstructed input and compare.
    from pyramid.core.layers import additive_mask, run_layer

    prev = out.layers[L - 2]
    full = first.hidden.clone()
    full[prev.valid.nonzero(as_tuple=True)[0], prev.positions[prev.valid]] = prev.hidden[prev.valid]
    with torch.inference_mode():
        expected, _ = run_layer(tiny_encoder.model, L, full, additive_mask(mask, full.dtype))
    assert torch.allclose(out.last_hidden_state[mask], expected[mask], atol=1e-5)


class DropBeforeFirstLayer(Selector):
    """Toy per-example-length selector acting on the embedding output (like AdapLeR's CP_0)."""

    name = "toy-layer0"
    fixed_length = False

    def selects_after(self, layer, num_layers):
        return layer == 0

    def select(self, ctx):
        return Selection(keep=(ctx.positions < 4) & ctx.valid)


def test_selection_before_the_first_layer(tiny_encoder):
    b = batch(tiny_encoder)
    with torch.inference_mode():
        out = PyramidEncoder(tiny_encoder, DropBeforeFirstLayer())(b["input_ids"], b["attention_mask"])
    n = b["attention_mask"].sum(1)
    assert out.layers[0].valid.sum(1).tolist() == torch.clamp(n, max=4).tolist()
    assert out.layers[0].hidden is None


def test_gradients_flow_through_kept_rows(tiny_encoder):
    b = batch(tiny_encoder)
    model = tiny_encoder.model
    model.train()
    try:
        out = PyramidEncoder(tiny_encoder, get_selector("coreset"), Schedule(retention=0.3))(
            b["input_ids"], b["attention_mask"])
        out.cls_hidden.pow(2).sum().backward()
        grads = [p.grad for p in model.encoder.layer[-1].parameters()]
        assert all(g is not None and torch.isfinite(g).all() for g in grads)
        assert model.embeddings.word_embeddings.weight.grad.abs().sum() > 0
    finally:
        model.zero_grad(set_to_none=True)
        model.eval()


def test_bad_inputs_raise(tiny_encoder):
    pyr = PyramidEncoder(tiny_encoder, get_selector("coreset"), Schedule(retention=0.5))
    with pytest.raises(ValueError):
        pyr(torch.tensor([101, 2000, 102]))
    with pytest.raises(ValueError):
        pyr(torch.tensor([[0, 101, 102]]), torch.tensor([[0, 1, 1]]))


def test_compact_and_row_gather_equal_the_plain_definitions():
    """The one-example shortcut of ``compact`` and the flat ``index_select`` of ``_gather_rows`` give what
    a stable sort and an element-wise gather give, gradients included."""
    g = torch.Generator().manual_seed(0)
    for B in (1, 3):
        keep = torch.rand(B, 17, generator=g) < 0.5
        keep[:, 0] = True
        m = int(keep.sum(1).max())
        want = torch.argsort((~keep).to(torch.int8), dim=1, stable=True)[:, :m]
        idx = compact(keep)
        if B == 1:
            assert torch.equal(idx, want)
        else:  # rows shorter than m are filled with dropped slots in some order; the kept prefix is exact
            for b in range(B):
                n = int(keep[b].sum())
                assert torch.equal(idx[b, :n], want[b, :n])
        x = torch.randn(B, 17, 5, generator=g, requires_grad=True)
        got = _gather_rows(x, idx)
        ref = x.gather(1, idx.unsqueeze(-1).expand(-1, -1, 5))
        assert torch.equal(got, ref)
        (gx,) = torch.autograd.grad((got * torch.arange(got.numel()).view_as(got)).sum(), x)
        (rx,) = torch.autograd.grad((ref * torch.arange(ref.numel()).view_as(ref)).sum(), x)
        assert torch.equal(gx, rx)
