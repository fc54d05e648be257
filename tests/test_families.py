"""Every encoder family on a tiny random-weight model built here (no downloads): at retention 1.0 the
pyramid equals the library's own model; every selector runs on it; relative positions survive removal."""

from __future__ import annotations

import copy

import pytest
import torch

from pyramid.core.encoder import PyramidEncoder
from pyramid.core.layers import additive_mask, run_layers
from pyramid.core.loading import encoder_from_model
from pyramid.core.schedule import Schedule
from pyramid.core.selectors import SELECTORS, Selection, Selector, get_selector

V = 1000


def _config(kind: str):
    from transformers import (AlbertConfig, BertConfig, DebertaV2Config, DistilBertConfig, ElectraConfig,
                              MPNetConfig, RobertaConfig)

    common = dict(vocab_size=V, hidden_size=32, num_hidden_layers=4, num_attention_heads=4, intermediate_size=64,
                  max_position_embeddings=130, hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1)
    if kind == "bert":
        return BertConfig(**common)
    if kind == "roberta":
        return RobertaConfig(**common, pad_token_id=1)
    if kind == "electra":
        return ElectraConfig(**common, embedding_size=16)
    if kind == "distilbert":
        return DistilBertConfig(vocab_size=V, dim=32, n_layers=4, n_heads=4, hidden_dim=64, max_position_embeddings=130)
    if kind == "albert":
        return AlbertConfig(**common, embedding_size=16, num_hidden_groups=2, inner_group_num=1)
    if kind == "mpnet":
        return MPNetConfig(**common, relative_attention_num_buckets=32, pad_token_id=1)
    if kind == "deberta-v2":
        return DebertaV2Config(**common, relative_attention=True, pos_att_type=["p2c", "c2p"], position_buckets=16,
                               max_relative_positions=64, position_biased_input=False, norm_rel_ebd="layer_norm",
                               share_att_key=True, conv_kernel_size=3, type_vocab_size=0)
    if kind == "deberta-v2-separate":
        return DebertaV2Config(**common, relative_attention=True, pos_att_type=["p2c", "c2p"], position_buckets=-1,
                               max_relative_positions=-1, position_biased_input=True, share_att_key=False,
                               type_vocab_size=0)
    raise ValueError(kind)


KINDS = ["bert", "roberta", "electra", "distilbert", "albert", "mpnet", "deberta-v2", "deberta-v2-separate"]


@pytest.fixture(scope="module", params=KINDS)
def family_model(request, minilm):
    from transformers import AutoModel

    torch.manual_seed(0)
    ref = AutoModel.from_config(_config(request.param), attn_implementation="eager").eval()
    model = copy.deepcopy(ref)
    enc = encoder_from_model(model, minilm.tokenizer, name=f"tiny-{request.param}")
    return request.param, ref, enc


def _batch(pad_id: int = 0):
    torch.manual_seed(1)
    ids = torch.randint(5, V, (3, 20))
    ids[:, 0] = 3  # a [CLS]-like first token
    mask = torch.ones_like(ids)
    mask[1, 14:] = 0
    mask[2, 9:] = 0
    ids[mask == 0] = pad_id
    return ids, mask


@pytest.mark.parametrize("name", ["attention", "coreset", "first-k"])
def test_retention_one_equals_the_library_model(family_model, name):
    kind, ref, enc = family_model
    ids, mask = _batch(ref.config.pad_token_id or 0)
    with torch.inference_mode():
        expected = ref(input_ids=ids, attention_mask=mask).last_hidden_state
        out = PyramidEncoder(enc, get_selector(name), Schedule(retention=1.0))(ids, mask)
    valid = mask.bool()
    assert (out.last_hidden_state - expected)[valid].abs().max() < 1e-5, kind


def _random_learned(name: str, enc):
    """A learned selector with random weights of the right shape for this encoder."""
    from pyramid.core.selectors.adapler import AdaplerConfig, AdaplerSelector, ContributionPredictors
    from pyramid.core.selectors.ltp import LtpConfig, LtpSelector, LtpThresholds
    from pyramid.core.selectors.token_dropping import TokenDroppingSelector
    from pyramid.core.selectors.trbert import PolicyNetworks, TrbertConfig, TrbertSelector, selection_points

    d, L = enc.config.hidden_size, enc.num_layers
    torch.manual_seed(2)
    if name == "adapler":
        pred = ContributionPredictors(d, L, eta_init=0.8)
        return AdaplerSelector(pred.eval(), AdaplerConfig("t", enc.name, "h", d, L))
    if name == "trbert":
        return TrbertSelector(PolicyNetworks(d, selection_points(L)).eval(),
                              TrbertConfig("t", enc.name, "h", d, L, list(selection_points(L))))
    if name == "ltp":
        return LtpSelector(LtpThresholds(L, theta_final=0.2, reference_length=8), LtpConfig("t", enc.name, "h", d, L))
    if name == "token-dropping":
        return TokenDroppingSelector(torch.rand(V) * 5, None)
    return get_selector(name)


@pytest.mark.parametrize("name", list(SELECTORS))
def test_every_selector_runs_on_every_family(family_model, name):
    kind, ref, enc = family_model
    sel = _random_learned(name, enc)
    ids, mask = _batch(ref.config.pad_token_id or 0)
    with torch.inference_mode():
        out = PyramidEncoder(enc, sel, Schedule(retention=0.3))(ids, mask, output_coverage=True)
    n = mask.sum(1)
    assert out.last_hidden_state.shape[-1] == 32 and torch.isfinite(out.last_hidden_state).all()
    for lo in out.layers:
        assert bool(lo.keep[:, 0].all()) and not bool((lo.keep & ~lo.valid).any())
    if sel.fixed_length:
        assert out.alive_counts()[:, -1].tolist() == [max(1, -(-3 * int(x) // 10)) for x in n]


class DropEvenAfterLayerOne(Selector):
    """Keeps [CLS] and the odd positions after layer 1 (a selector for the test only)."""

    name = "test-drop-even"
    fixed_length = False

    def selects_after(self, layer, num_layers):
        return layer == 1

    def select(self, ctx):
        return Selection(keep=((ctx.positions % 2 == 1) | (ctx.positions == 0)) & ctx.valid)


@pytest.mark.parametrize("kind", ["mpnet", "deberta-v2", "deberta-v2-separate", "bert"])
def test_removed_tokens_keep_the_distances_of_the_others(minilm, kind):
    """Physically removing tokens after layer 1 gives the same states as masking them out of attention
    at full length: the relative positions of the kept tokens are their original ones."""
    from transformers import AutoModel

    torch.manual_seed(0)
    model = AutoModel.from_config(_config(kind), attn_implementation="eager").eval()
    enc = encoder_from_model(model, minilm.tokenizer, name=kind)
    ids, mask = _batch(model.config.pad_token_id or 0)
    valid = mask.bool()
    with torch.inference_mode():
        out = PyramidEncoder(enc, DropEvenAfterLayerOne())(ids, mask)
        positions = torch.arange(ids.shape[1]).expand_as(ids)
        keep = ((positions % 2 == 1) | (positions == 0)) & valid

        def before(j, hidden):
            return additive_mask(keep if j >= 2 else valid, hidden.dtype)

        reference = run_layers(model, ids, mask, before=before)  # (B, N, d), dropped tokens only masked
    for b in range(ids.shape[0]):
        got = out.last_hidden_state[b][out.valid[b]]
        want = reference[b][keep[b]]
        assert got.shape == want.shape
        assert (got - want).abs().max() < 1e-5, kind


def test_an_unsupported_family_names_the_supported_ones(tmp_path):
    from transformers import GPT2Config

    from pyramid.core.loading import ModelLoadError, load_encoder

    GPT2Config(n_layer=1, n_embd=8, n_head=2).save_pretrained(tmp_path)
    with pytest.raises(ModelLoadError) as err:
        load_encoder(str(tmp_path))
    assert "gpt2" in str(err.value) and "distilbert" in str(err.value) and "deberta-v2" in str(err.value)
