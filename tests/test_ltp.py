"""LTP: the threshold rule by hand, the soft masks, and both training stages on a tiny model."""

from __future__ import annotations

import json

import pytest
import torch

from pyramid.core.attention import significance
from pyramid.core.encoder import PyramidEncoder
from pyramid.core.schedule import Schedule
from pyramid.core.selectors.ltp import LtpConfig, LtpLoadError, LtpSelector, LtpThresholds, load_thresholds


def _config(head="h", L=4):
    return LtpConfig(name="t", base_model="tiny-bert", head=head, hidden_size=32, num_layers=L)


def test_thresholds_rise_with_depth_and_the_first_layer_never_prunes():
    t = LtpThresholds(6, theta_final=0.03, reference_length=64)
    base = [float(t.threshold(j, floor=False).detach()) for j in range(1, 7)]
    assert base == pytest.approx([0.0, 0.005, 0.01, 0.015, 0.02, 0.025])
    assert float(t.threshold(1).detach()) == pytest.approx(1e-5)  # floored in hard mode
    sel = LtpSelector(t, _config(L=6))
    assert [sel.selects_after(j, 6) for j in range(7)] == [False, False, True, True, True, True, False]


def test_selector_keeps_tokens_whose_mean_received_attention_reaches_the_threshold(tiny_encoder):
    t = LtpThresholds(4, theta_final=0.2, reference_length=8)
    sel = LtpSelector(t, _config(L=4))
    tok = tiny_encoder.tokenizer
    enc = tok(["a long sentence with many different words about a film", "short one"], return_tensors="pt",
              padding=True)
    with torch.no_grad():
        out = PyramidEncoder(tiny_encoder, sel)(enc["input_ids"], enc["attention_mask"], output_attention_probs=True)
    lo = out.layers[1]  # after layer 2, the first where LTP acts
    assert lo.selected and not out.layers[0].selected
    received = significance(lo.attention_probs, lo.valid, include_self=True)
    expect = (received / 8 >= float(t.threshold(2).detach())) & lo.valid
    expect[:, 0] = True  # the encoder keeps [CLS]
    assert torch.equal(lo.keep, expect)
    assert torch.allclose(lo.scores, received / 8, atol=1e-6)
    # the chunked kernel (no probabilities) keeps the same tokens
    with torch.no_grad():
        fast = PyramidEncoder(tiny_encoder, sel)(enc["input_ids"], enc["attention_mask"])
    assert all(torch.equal(a.keep, b.keep) for a, b in zip(fast.layers, out.layers))


def test_scores_average_one_over_the_reference_length(tiny_encoder):
    """Every attention row sums to 1, so LTP's scores of the alive tokens average 1 / N_ref at any length."""
    t = LtpThresholds(4, reference_length=64)
    for n_words in (3, 20):
        ids = tiny_encoder.tokenizer([" ".join(["film"] * n_words)], return_tensors="pt")["input_ids"]
        with torch.no_grad():
            out = PyramidEncoder(tiny_encoder, LtpSelector(t, _config(L=4)))(ids, output_attention_probs=True)
        s = t.scores(significance(out.layers[1].attention_probs, out.layers[1].valid, include_self=True))
        assert float(s.mean()) == pytest.approx(1 / 64, rel=1e-4)


@pytest.mark.slow
def test_both_stages_train_and_write_the_artifacts(trained, tiny_encoder, tmp_path):
    from conftest import _write_data

    from pyramid.classifier import load_classifier
    from pyramid.training.ltp import LtpSettings, train_ltp

    clf, head_dir, dev, _ = trained
    data = _write_data(tmp_path / "train.tsv", 64, 17)
    s = LtpSettings(data=data, dev=dev, head=str(head_dir), name="tiny-ltp", out=str(tmp_path / "ltp"),
                    head_out=str(tmp_path / "tiny-ltp-head"), inference_out=str(tmp_path / "ltp-inf"),
                    batch_size=16, max_length=32, lam=0.5, theta_final=0.2, reference_length=8, temperature=1e-2,
                    lr=5e-3, head_lr=5e-3, theta_lr=1e-2, hard_lr=5e-3, command="pytest")
    thresholds, config = train_ltp(tiny_encoder, s, progress=False)
    assert config.head == "tiny-ltp-head"
    assert float(thresholds.offset.abs().sum()) > 0, "the soft stage moved the thresholds"
    loaded, lcfg = load_thresholds(str(tmp_path / "ltp"))
    assert torch.allclose(loaded.offset, thresholds.offset)
    assert "dev_flops_speedup" in lcfg.metrics and "soft stage" in (tmp_path / "ltp" / "README.md").read_text()
    head_cfg = json.loads((tmp_path / "tiny-ltp-head" / "head_config.json").read_text())
    assert head_cfg["trained_with"]["selector"] == "ltp"
    _, inf_cfg = load_thresholds(str(tmp_path / "ltp-inf"))
    assert inf_cfg.head == str(head_dir) and "unchanged" in (tmp_path / "ltp-inf" / "README.md").read_text()
    joint = load_classifier(tmp_path / "tiny-ltp-head", tiny_encoder)
    ids = tiny_encoder.tokenizer(["the film was good and the story was lovely"], return_tensors="pt")["input_ids"]
    probs, out = joint.predict(ids, None, LtpSelector(loaded, lcfg), Schedule(retention=1.0))
    assert torch.allclose(probs.sum(-1), torch.ones(1))


def test_missing_artifact_is_a_clear_error(tmp_path):
    with pytest.raises(LtpLoadError, match="train-ltp"):
        load_thresholds(str(tmp_path / "nope"))
