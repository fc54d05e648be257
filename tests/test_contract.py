"""The selector contract, over the whole registry (learned selectors included, with their shipped
weights on the model they belong to): what every selector must guarantee inside the pyramid encoder."""

from __future__ import annotations

import pytest
import torch

from pyramid.core.artifacts import REGIMES
from pyramid.classifier import encoder_for_head
from pyramid.core.encoder import PyramidEncoder
from pyramid.core.schedule import Schedule
from pyramid.plan import project_plan
from pyramid.core.selectors import SELECTORS, get_selector

TEXTS = [
    "the plot is thin but the acting is superb and the score moves along nicely , never once dragging .",
    "a gripping , funny film with a weak ending .",
    "an unfunny , overlong mess that wastes a fine cast on jokes nobody will remember .",
    "ok",
]
CASES = [(name, regime) for name in SELECTORS for regime in REGIMES]


def _selector_or_skip(name: str, regime: str, minilm):
    """The selector and the encoder its plan runs on (on the default model), or a skip."""
    reason, runs_on = project_plan(name, regime)
    if reason is not None:
        pytest.skip(f"{name} ({regime}) not installed: {reason}")
    return get_selector(name, regime), encoder_for_head(runs_on, minilm)


@pytest.mark.parametrize("name, regime", CASES, ids=[f"{n}-{r}" for n, r in CASES])
def test_every_selector_keeps_the_contract(minilm, name, regime):
    sel, enc = _selector_or_skip(name, regime, minilm)
    b = enc.tokenizer(TEXTS, return_tensors="pt", padding=True)
    schedule = Schedule(retention=0.3, start_layer=1)
    with torch.inference_mode():
        out = PyramidEncoder(enc, sel, schedule)(b["input_ids"], b["attention_mask"])
    n = b["attention_mask"].sum(1)
    records = ([out.embedding_selection] if out.embedding_selection is not None else []) + out.layers
    for lo in records:
        assert bool(lo.keep[:, 0].all()), "[CLS] must always be kept"
        assert not bool((lo.keep & ~lo.valid).any()), "pads are never kept"
        pos = lo.positions.masked_fill(~lo.valid, 10 ** 6)
        assert bool((pos[:, 1:] >= pos[:, :-1]).all()), "alive tokens stay in ascending order"
    for prev, nxt in zip(out.layers, out.layers[1:]):
        if sel.routing == "rejoin" and nxt.layer == len(out.layers):
            continue  # Token Dropping: everyone is back for the last layer
        for bi in range(len(TEXTS)):
            kept = set(prev.positions[bi][prev.keep[bi]].tolist())
            alive = set(nxt.positions[bi][nxt.valid[bi]].tolist())
            assert alive == kept, "the next layer's alive tokens are this layer's kept ones"
    if sel.fixed_length:
        for bi in range(len(TEXTS)):
            assert out.lengths[bi].tolist() == schedule.lengths(int(n[bi]), enc.num_layers)
            assert [int(lo.keep[bi].sum()) for lo in out.layers] == out.lengths[bi].tolist()
    assert out.selection_flops is not None and bool((out.selection_flops >= 0).all())


@pytest.mark.parametrize("name", [n for n, c in SELECTORS.items() if c.uses_retention])
@pytest.mark.parametrize("regime", REGIMES)
def test_retention_one_equals_the_reference_model(minilm, name, regime):
    from transformers import AutoModel

    sel, enc = _selector_or_skip(name, regime, minilm)
    ref = AutoModel.from_pretrained(minilm.path, attn_implementation="eager").eval()
    ref.load_state_dict(enc.model.state_dict())
    b = enc.tokenizer(TEXTS, return_tensors="pt", padding=True)
    with torch.inference_mode():
        expected = ref(**b).last_hidden_state
        out = PyramidEncoder(enc, sel, Schedule(retention=1.0))(b["input_ids"], b["attention_mask"],
                                                                b["token_type_ids"])
    mask = b["attention_mask"].bool()
    assert (out.last_hidden_state - expected)[mask].abs().max() < 1e-5
