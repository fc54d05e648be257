"""Token Dropping: the importance table (EMA of the MLM loss), masking, routing with rejoin, training."""

from __future__ import annotations

import json

import pytest
import torch

from pyramid.core.encoder import PyramidEncoder
from pyramid.core.schedule import Schedule
from pyramid.core.selectors.token_dropping import TokenDroppingSelector
from pyramid.core.selectors.token_dropping import (ALWAYS_DROP, ALWAYS_KEEP, TokenDroppingLoadError, drop_layer,
                                              load_importance)
from pyramid.training.token_dropping import (TokenDroppingSettings, bias_corrected, mask_tokens, special_table,
                                             train_token_dropping, update_importance)
from pyramid.trace import trace_text


def test_drop_layer_follows_methods_4_1():
    assert drop_layer(12) == 5 and drop_layer(6) == 2 and drop_layer(4) == 1


def test_importance_is_an_exponential_moving_average():
    table = torch.full((5,), 10.0)
    updates = torch.zeros(5, dtype=torch.long)
    update_importance(table, updates, torch.tensor([1, 3]), torch.tensor([2.0, 4.0]), beta=0.9)
    assert torch.allclose(table, torch.tensor([10.0, 9.2, 10.0, 9.4, 10.0]))
    assert updates.tolist() == [0, 1, 0, 1, 0]


def test_bias_correction_recovers_the_mean_loss():
    table = torch.full((4,), 10.0)
    updates = torch.zeros(4, dtype=torch.long)
    # id 1 always has loss 2.0; id 2 has 1.0, then 3.0, then 5.0
    for c1, c2 in ((2.0, 1.0), (2.0, 3.0), (2.0, 5.0)):
        update_importance(table, updates, torch.tensor([1, 2]), torch.tensor([c1, c2]), beta=0.995)
    corrected = bias_corrected(table, updates, beta=0.995)
    assert float(table[1]) > 9.8  # the raw EMA barely left the start value
    assert float(corrected[1]) == pytest.approx(2.0, abs=1e-4)  # corrected: the loss itself
    assert 1.0 < float(corrected[2]) < 5.0 and float(corrected[2]) == pytest.approx(3.0, abs=0.02)
    assert float(corrected[0]) == 10.0 and float(corrected[3]) == 10.0  # never seen: the start value


def test_masking_skips_specials_and_pads(minilm):
    special, allow = special_table(minilm)
    tok = minilm.tokenizer
    enc = tok(["a film about " + "words " * 200, "short"], return_tensors="pt", padding=True, truncation=True)
    g = torch.Generator().manual_seed(0)
    ids, pick = mask_tokens(enc["input_ids"], enc["attention_mask"], special, tok.mask_token_id, 30522, g)
    assert not bool(pick[:, 0].any()) and not bool((pick & ~enc["attention_mask"].bool()).any())
    rate = float(pick[0].float().sum() / enc["attention_mask"][0].sum())
    assert 0.08 < rate < 0.22
    assert float((ids[pick] == tok.mask_token_id).float().mean()) > 0.6
    assert set(allow) >= {tok.cls_token_id, tok.sep_token_id, tok.mask_token_id, tok.unk_token_id}


def _table(minilm):
    torch.manual_seed(0)
    table = torch.rand(minilm.config.vocab_size) * 5
    special, allow = special_table(minilm)
    table[special] = ALWAYS_DROP
    table[torch.tensor(allow)] = ALWAYS_KEEP
    return table


def test_routing_keeps_the_important_tokens_and_rejoins_them_all(minilm):
    table = _table(minilm)
    sel = TokenDroppingSelector(table, None)
    assert [sel.selects_after(j, 6) for j in range(7)] == [False, False, True, False, False, False, False]
    text = "the jokes are obvious , the gags are corny , but i could not stop laughing at this film"
    tr = trace_text(minilm, text, sel, Schedule(retention=0.3))
    n = tr.n_tokens
    alive = tr.alive_counts()
    assert alive[:2] == [n, n]  # layers 1-2 see everything
    k = -(-3 * n // 10)  # ceil(0.3 n)
    assert alive[2:5] == [k, k, k]  # the middle layers see the important ones
    assert alive[5] == n  # everyone is back for the last layer
    ids = tr.input_ids
    kept = tr.layers[1].kept
    assert 0 in kept and len(ids) - 1 in kept  # [CLS] and [SEP] (allow-list)
    others = [i for i in range(1, n - 1)]
    expect = sorted(sorted(others, key=lambda i: (-float(table[ids[i]]), i))[: k - 2])
    assert sorted(set(kept) - {0, n - 1}) == expect
    js = tr.to_json()
    assert len(js["layers"][-1]["alive"]) > len(js["layers"][-2]["alive"])  # the trace shows the rejoin


def test_rejoined_states_are_the_ones_from_the_drop_layer(minilm):
    """Before the last layer, dropped tokens carry their layer-2 output; kept ones their layer-5 output;
    layer 3 is a cross layer: the kept tokens attend to every token's layer-2 output."""
    table = _table(minilm)
    ids = minilm.tokenizer(["a quiet and lovely little film with a sad ending"], return_tensors="pt")["input_ids"]
    pyr = PyramidEncoder(minilm, TokenDroppingSelector(table, None), Schedule(retention=0.5))
    with torch.no_grad():
        out = pyr(ids, output_hidden_states=True)
    l2, l5, l6 = out.layers[1], out.layers[4], out.layers[5]
    dropped = [int(p) for p, k in zip(l2.positions[0], l2.keep[0]) if not k]
    assert dropped and l6.valid.sum() == ids.shape[1]
    from pyramid.core.layers import run_layer

    full = torch.zeros(1, ids.shape[1], l2.hidden.shape[-1])
    full[0, l2.positions[0]] = l2.hidden[0]
    full[0, l5.positions[0][l5.valid[0]]] = l5.hidden[0][l5.valid[0]]
    with torch.no_grad():
        expected, _ = run_layer(minilm.model, 6, full, None)
    assert torch.allclose(out.last_hidden_state, expected, atol=1e-5)
    # the cross layer by hand: queries = the kept tokens' layer-2 states, keys and values = all of them
    l3 = out.layers[2]
    kept = l2.keep[0]
    sa = minilm.model.encoder.layer[2].attention.self
    hq, hkv = l2.hidden[:, kept], l2.hidden  # (1, k, d), (1, n, d)
    hd = sa.attention_head_size

    def heads(x, lin):
        return lin(x).view(1, x.shape[1], -1, hd).transpose(1, 2)

    with torch.no_grad():
        a = torch.softmax(heads(hq, sa.query) @ heads(hkv, sa.key).transpose(-1, -2) * sa.scaling, -1)
        ctx = (a @ heads(hkv, sa.value)).transpose(1, 2).reshape(1, hq.shape[1], -1)
        layer3 = minilm.model.encoder.layer[2]
        by_hand = layer3.feed_forward_chunk(layer3.attention.output(ctx, hq))
    assert torch.allclose(l3.hidden[0][l3.valid[0]], by_hand[0], atol=1e-5)


@pytest.mark.slow
def test_training_writes_a_table_with_the_fixed_ids(tiny_encoder, tmp_path):
    from conftest import _write_data

    data = _write_data(tmp_path / "texts.tsv", 96, 7)
    s = TokenDroppingSettings(data=[data], out=str(tmp_path / "td"), name="tiny-td", limit=None, max_length=32,
                              head_steps=150, batch_size=16, lr=5e-3, command="pytest")
    table, config = train_token_dropping(tiny_encoder, s, progress=False)
    special, allow = special_table(tiny_encoder)
    assert float(table[tiny_encoder.tokenizer.pad_token_id]) == ALWAYS_DROP
    assert all(float(table[i]) == ALWAYS_KEEP for i in allow)
    m = config.metrics
    assert m["mlm_loss_last_50_steps"] < m["mlm_loss_first_50_steps"]
    assert 0.70 < m["pretraining_encoder_flops_ratio_bert_base_512"] < 0.80  # the paper's ~25% saving
    assert m["vocabulary_ids_updated"] > 5
    cfg = json.loads((tmp_path / "td" / "token_dropping_config.json").read_text())
    assert cfg["vocab_size"] == 30522
    assert "pre-training" in (tmp_path / "td" / "README.md").read_text()
    loaded, _ = load_importance(str(tmp_path / "td"))
    assert torch.equal(loaded, table)
    with pytest.raises(TokenDroppingLoadError, match="train-token-dropping"):
        load_importance(str(tmp_path / "nope"))
