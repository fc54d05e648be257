"""Fine-tuned classifier checkpoints as models: every family's own head, exact against transformers.

Each test builds a tiny random ``*ForSequenceClassification`` checkpoint offline (``from_config`` and
``save_pretrained`` into a temporary folder, with three labels), loads it the way users do (a folder),
and compares the pyramid at retention 1.0 with ``AutoModelForSequenceClassification`` on the same batch.
"""

from __future__ import annotations

import json

import pytest
import torch

from pyramid.api import Model
from pyramid.classifier import OWN_HEAD, CheckpointClassifier
from pyramid.core.loading import ModelLoadError, load_encoder
from pyramid.core.schedule import Schedule
from pyramid.core.selectors import full_length_selector, get_selector

V = 30522  # the default model's vocabulary: the folder carries its tokenizer
LABELS = {0: "sport", 1: "politics", 2: "weather"}


def _config(kind: str, **extra):
    from transformers import (AlbertConfig, BertConfig, CamembertConfig, DebertaV2Config, DistilBertConfig,
                              ElectraConfig, MPNetConfig, RobertaConfig, XLMRobertaConfig)

    heads = dict(num_labels=3, id2label=LABELS, label2id={v: k for k, v in LABELS.items()}, **extra)
    common = dict(vocab_size=V, hidden_size=32, num_hidden_layers=3, num_attention_heads=4, intermediate_size=64,
                  max_position_embeddings=130, **heads)
    if kind == "bert":
        return BertConfig(**common)
    if kind == "roberta":
        return RobertaConfig(**common, pad_token_id=1)
    if kind == "xlm-roberta":
        return XLMRobertaConfig(**common, pad_token_id=1)
    if kind == "camembert":
        return CamembertConfig(**common, pad_token_id=1)
    if kind == "electra":
        return ElectraConfig(**common, embedding_size=16)
    if kind == "distilbert":
        return DistilBertConfig(vocab_size=V, dim=32, n_layers=3, n_heads=4, hidden_dim=64, max_position_embeddings=130,
                                **heads)
    if kind == "albert":
        return AlbertConfig(**common, embedding_size=16)
    if kind == "mpnet":
        return MPNetConfig(**common, relative_attention_num_buckets=32, pad_token_id=1)
    if kind == "deberta-v2":
        return DebertaV2Config(**common, relative_attention=True, pos_att_type=["p2c", "c2p"], position_buckets=16,
                               max_relative_positions=64, position_biased_input=False, norm_rel_ebd="layer_norm",
                               share_att_key=True, type_vocab_size=0, pooler_hidden_size=32, pooler_hidden_act="gelu")
    raise ValueError(kind)


KINDS = ["bert", "roberta", "xlm-roberta", "camembert", "electra", "distilbert", "albert", "mpnet", "deberta-v2"]


def _save(folder, kind: str, tokenizer, seed: int = 0, **extra):
    from transformers import AutoModelForSequenceClassification

    torch.manual_seed(seed)
    model = AutoModelForSequenceClassification.from_config(_config(kind, **extra), attn_implementation="eager").eval()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return model


def _batch(pad_id: int):
    torch.manual_seed(1)
    ids = torch.randint(1000, 2000, (3, 20))
    ids[:, 0] = 101
    mask = torch.ones_like(ids)
    mask[1, 14:] = 0
    mask[2, 9:] = 0
    ids[mask == 0] = pad_id
    return ids, mask


@pytest.mark.parametrize("kind", KINDS)
def test_retention_one_equals_auto_model_for_sequence_classification(kind, tmp_path, minilm):
    ref = _save(tmp_path / kind, kind, minilm.tokenizer)
    enc = load_encoder(str(tmp_path / kind))
    assert enc.has_own_head and enc.name == kind
    clf = CheckpointClassifier(enc)
    assert clf.labels == ["sport", "politics", "weather"] and not clf.multi_label
    ids, mask = _batch(ref.config.pad_token_id or 0)
    with torch.inference_mode():
        expected = torch.softmax(ref(input_ids=ids, attention_mask=mask).logits, -1)
        probs, out = clf.predict(ids, mask, full_length_selector(), Schedule(retention=1.0))
    assert probs.shape == (3, 3)
    assert torch.allclose(probs, expected, atol=1e-4), (probs - expected).abs().max()
    # a real pyramid runs on the checkpoint too, and still gives a distribution over its labels
    with torch.inference_mode():
        probs, out = clf.predict(ids, mask, get_selector("coreset"), Schedule(retention=0.3))
    assert torch.allclose(probs.sum(-1), torch.ones(3), atol=1e-5)
    assert int(out.alive_counts()[0, -1]) < 20


def test_multi_label_checkpoints_use_a_sigmoid_per_label(tmp_path, minilm):
    ref = _save(tmp_path / "ml", "bert", minilm.tokenizer, problem_type="multi_label_classification")
    model = Model(load_encoder(str(tmp_path / "ml")))
    clf = model.classifier(OWN_HEAD)
    assert clf.multi_label
    ids, mask = _batch(0)
    with torch.inference_mode():
        expected = torch.sigmoid(ref(input_ids=ids, attention_mask=mask).logits)
        probs, _ = clf.predict(ids, mask, full_length_selector(), Schedule(retention=1.0))
    assert torch.allclose(probs, expected, atol=1e-4)
    trace = model.trace("rain all week, then the final was called off", "attention", schedule=Schedule(retention=0.5))
    pred = trace.prediction
    assert pred.multi_label and pred.predicted == [n for n, p in zip(pred.labels, pred.probs) if p >= 0.5]
    assert pred.label == (", ".join(pred.predicted) or "(none)")


def test_a_regression_checkpoint_runs_as_a_plain_encoder_with_a_reason(tmp_path, minilm):
    _save(tmp_path / "reg", "bert", minilm.tokenizer)
    cfg = json.loads((tmp_path / "reg" / "config.json").read_text())
    cfg.update(num_labels=1, id2label={"0": "score"}, label2id={"score": 0}, problem_type="regression")
    (tmp_path / "reg" / "config.json").write_text(json.dumps(cfg))
    enc = load_encoder(str(tmp_path / "reg"))
    assert not enc.has_own_head and "regression" in enc.head_note
    trace = Model(enc).trace("a fine film", "coreset")
    assert trace.prediction is None and "no classifier" in trace.prediction_note


def test_pickled_weights_are_refused(tmp_path, minilm):
    model = _save(tmp_path / "pk", "bert", minilm.tokenizer)
    (tmp_path / "pk" / "model.safetensors").unlink()
    torch.save(model.state_dict(), tmp_path / "pk" / "pytorch_model.bin")
    with pytest.raises(ModelLoadError, match="safetensors"):
        load_encoder(str(tmp_path / "pk"))


def test_a_checkpoint_without_its_head_weights_says_so(tmp_path, minilm):
    from safetensors.torch import load_file, save_file

    _save(tmp_path / "nohead", "bert", minilm.tokenizer)
    weights = load_file(str(tmp_path / "nohead" / "model.safetensors"))
    save_file({k: v for k, v in weights.items() if not k.startswith("classifier.")},
              str(tmp_path / "nohead" / "model.safetensors"))
    enc = load_encoder(str(tmp_path / "nohead"))
    assert not enc.has_own_head and "lacks the head" in enc.head_note


def test_the_model_predicts_with_its_own_labels_and_explains_unavailable_selectors(tmp_path, minilm):
    _save(tmp_path / "topics", "bert", minilm.tokenizer)
    model = Model(load_encoder(str(tmp_path / "topics")))
    assert model.inference_head == OWN_HEAD
    assert model.selectors() == ["coreset", "attention", "random", "first-k", "tome", "coreset-pool"]
    for learned in ("adapler", "trbert", "ltp", "token-dropping"):
        reason = model.unavailable(learned)
        assert reason and "fine-tuned classifier with its own head" in reason
    assert "no Train-Select model" in model.unavailable("coreset", "train-select")
    trace = model.trace("The match ended in a draw.", "coreset", schedule=Schedule(retention=0.3))
    pred = trace.prediction
    assert pred.head == "topics" and pred.labels == ["sport", "politics", "weather"]
    assert len(pred.top(3)) == 3 and pred.top(1)[0][0] == pred.label
    # the prediction comes from the trace's own pass: the same as a separate prediction
    again = model.predict("The match ended in a draw.", "coreset", schedule=Schedule(retention=0.3))
    assert again.probs == pytest.approx(pred.probs, abs=1e-6) and again.full_probs == pred.full_probs


def test_cli_trace_prints_the_checkpoints_labels(tmp_path, minilm, capsys):
    from pyramid.cli import main

    _save(tmp_path / "topics", "bert", minilm.tokenizer)
    code = main(["trace", "The match ended in a draw", "--model", str(tmp_path / "topics"), "--retention", "0.3"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    result = json.loads(captured.out)
    pred = result["prediction"]
    assert pred["labels"] == ["sport", "politics", "weather"] and pred["head"] == "topics"
    assert len(pred["probs"]) == 3 and pred["label"] in pred["labels"]
    code = main(["trace", "a film", "--model", str(tmp_path / "topics"), "--selector", "adapler"])
    err = capsys.readouterr().err
    assert code == 2 and "own head" in err
