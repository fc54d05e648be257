"""Train-Select for a user's own classifier checkpoint: `python -m pyramid train --model DIR ...`.

Tiny random ``*ForSequenceClassification`` checkpoints (three labels, single- and multi-label) are built
offline in a temporary model cache; the trainer writes ``<checkpoint>-ts-<selector>`` beside them, which
``AutoModelForSequenceClassification`` loads as it is and :class:`pyramid.api.Model` finds as the
checkpoint's Train-Select model.
"""

from __future__ import annotations

import json
import random

import pytest
import torch

from pyramid import cli
from pyramid.api import Model
from pyramid.core.artifacts import TRAIN_SELECT_FILE, checkpoint_train_select
from pyramid.training.lengthdrop import Objective

from test_checkpoint_classifier import LABELS, _save

WORDS = {"sport": ["goal", "match", "team"], "politics": ["vote", "minister", "party"],
         "weather": ["rain", "storm", "sunny"]}


def _write(path, n: int, seed: int, labels=("sport", "politics", "weather"), column="topic"):
    rng = random.Random(seed)
    rows = [f"text,{column}"]
    for i in range(n):
        y = labels[i % len(labels)]
        filler = " ".join(rng.choice(["the", "a", "today", "news", "and", "said"]) for _ in range(rng.randint(3, 14)))
        rows.append(f"\"{filler} {rng.choice(WORDS[y])} {filler}\",{y}")
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return str(path)


@pytest.fixture()
def cache(tmp_path, minilm):
    """A model cache holding a tiny 3-label BERT checkpoint and a multi-label one, and data files."""
    root = tmp_path / "models"
    _save(root / "news-bert", "bert", minilm.tokenizer, seed=3)
    _save(root / "news-multi", "bert", minilm.tokenizer, seed=4, problem_type="multi_label_classification")
    data = tmp_path / "data"
    data.mkdir()
    return root, _write(data / "train.csv", 48, 0), _write(data / "dev.csv", 24, 1)


def _train(*args: str) -> int:
    return cli.main(["train", "--quiet", "--epochs", "1", "--batch-size", "8", "--max-length", "32",
                     "--sandwich", "1", "--lora-r", "2", "--lora-alpha", "4", *args])


@pytest.mark.slow
@pytest.mark.parametrize("name,selector", [("news-bert", "coreset"), ("news-multi", "tome")])
def test_a_checkpoint_trains_its_own_train_select_model(cache, capsys, name, selector):
    from transformers import AutoModelForSequenceClassification

    root, train, dev = cache
    ckpt = root / name
    before = {k: v.clone() for k, v in AutoModelForSequenceClassification.from_pretrained(ckpt).state_dict().items()}
    assert _train("--model", str(ckpt), "--data", train, "--dev", dev, "--label-column", "topic",
                  "--selector", selector, "--retention-range", "0.2,0.6") == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    out = root / f"{name}-ts-{selector}"
    assert summary["out"] == str(out) and out.is_dir()
    assert not [p for p in root.iterdir() if p.name.startswith(".")]  # no temporary folder left behind
    # transformers loads it as it is: same class, labels and problem type; weights changed (LoRA merged)
    model = AutoModelForSequenceClassification.from_pretrained(out)
    assert model.config.id2label == {i: n for i, n in LABELS.items()}
    assert model.config.problem_type == ("multi_label_classification" if name == "news-multi" else None)
    assert type(model).__name__ == "BertForSequenceClassification"
    after = model.state_dict()
    assert set(after) == set(before)  # no LoRA keys: merged
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert not any("lora" in k for k in after)
    record = json.loads((out / TRAIN_SELECT_FILE).read_text())
    assert record["base_model"] == name and record["selector"] == selector
    assert record["retention_range"] == [0.2, 0.6] and record["labels"] == list(LABELS.values())
    for key in ("dev_accuracy_full_length", f"dev_accuracy_{selector}_rho0.3", "dev_n"):
        assert key in record["metrics"]
    assert "Train-Select model of" in (out / "README.md").read_text()
    # the checkpoint itself is untouched
    again = AutoModelForSequenceClassification.from_pretrained(ckpt).state_dict()
    assert all(torch.equal(before[k], again[k]) for k in before)

    # the model finds it as the checkpoint's Train-Select model, and evaluates both regimes
    m = Model.load(str(ckpt))
    assert checkpoint_train_select(m.encoder.path, m.name, selector) == out
    assert m.unavailable(selector, "train-select") is None
    assert selector in m.selectors("train-select")
    assert m.unavailable("attention", "train-select") is not None  # not trained
    plan = m.plan(selector, "train-select")
    assert plan.runs_on == out.name and plan.predicts == out.name
    trace = m.trace("the minister said the vote was today", selector, "train-select")
    assert trace.prediction is not None and trace.prediction.head == out.name
    assert trace.prediction.labels == list(LABELS.values())
    assert [t for t, p in m.model_cards(plan)] == [f"Train-Select model `{out.name}`"]

    from pyramid.data import read_labelled
    from pyramid.analysis.evaluation import evaluate_regimes

    data = read_labelled(dev, label_column="topic", label_names=list(LABELS.values()))
    rows = evaluate_regimes(m, data, [selector], [1.0, 0.3], progress=False)
    assert {(r["regime"], r["head"]) for r in rows} == {("inference", name), ("train-select", out.name)}


@pytest.mark.slow
def test_train_then_evaluate_train_select_from_the_command_line(cache, capsys, tmp_path):
    root, train, dev = cache
    ckpt = root / "news-bert"
    assert _train("--model", str(ckpt), "--data", train, "--label-column", "topic", "--selector", "attention",
                  "--retention-range", "0.3,0.6", "--full", "true") == 0
    capsys.readouterr()
    out_csv = tmp_path / "rows.csv"
    assert cli.main(["evaluate", "--model", str(ckpt), "--data", dev, "--label-column", "topic", "--selectors",
                     "attention,coreset", "--retention", "1.0,0.5", "--regime", "both", "--quiet",
                     "--out", str(out_csv)]) == 0
    err = capsys.readouterr().err
    assert "coreset" in err and "train-select" in err  # no Train-Select core-set model: a note, inference rows kept
    text = out_csv.read_text()
    assert "train-select,news-bert-ts-attention,attention" in text
    record = json.loads((root / "news-bert-ts-attention" / TRAIN_SELECT_FILE).read_text())
    assert record["lora"] is False and record["metrics"] == {}  # --full; no --dev given


@pytest.mark.parametrize("args,message", [
    (["--selector", "coreset"], "unknown label"),  # a file with other labels than the checkpoint's
    (["--selector", "adapler"], "AdapLeR needs weights of its own"),
    ([], "give --selector"),
])
def test_bad_training_requests_fail_with_one_line(cache, tmp_path, capsys, args, message):
    root, train, _ = cache
    data = train
    if "unknown label" in message:
        data = _write(tmp_path / "other.csv", 12, 0, labels=("sport", "politics", "weather"))
        data_text = (tmp_path / "other.csv").read_text().replace(",weather", ",business")
        (tmp_path / "other.csv").write_text(data_text)
    assert _train("--model", str(root / "news-bert"), "--data", data, "--label-column", "topic", *args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and message in err and "\n" not in err
    assert sorted(p.name for p in root.iterdir()) == ["news-bert", "news-multi"]  # nothing written


def test_one_class_and_missing_columns_are_refused(cache, tmp_path, capsys):
    root, _, _ = cache
    one = _write(tmp_path / "one.csv", 12, 0, labels=("sport",))
    assert _train("--model", str(root / "news-bert"), "--data", one, "--label-column", "topic", "--selector",
                  "coreset") == 2
    assert "at least two classes" in capsys.readouterr().err
    bad = tmp_path / "cols.csv"
    bad.write_text("body,topic\nhello,sport\n")
    assert _train("--model", str(root / "news-bert"), "--data", str(bad), "--selector", "coreset") == 2
    assert "text" in capsys.readouterr().err


def test_a_regression_checkpoint_and_a_learned_trainer_are_refused(tmp_path, minilm, capsys):
    root = tmp_path / "models"
    _save(root / "reg", "bert", minilm.tokenizer)
    cfg = json.loads((root / "reg" / "config.json").read_text())
    cfg.update(num_labels=1, id2label={"0": "score"}, label2id={"score": 0}, problem_type="regression")
    (root / "reg" / "config.json").write_text(json.dumps(cfg))
    data = _write(tmp_path / "d.csv", 12, 0)
    assert _train("--model", str(root / "reg"), "--data", data, "--label-column", "topic", "--selector",
                  "coreset") == 2
    assert "regression" in capsys.readouterr().err
    _save(root / "clf", "bert", minilm.tokenizer)
    assert cli.main(["train-trbert", "--model", str(root / "clf"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "fine-tuned classifier checkpoint" in err and "\n" not in err.strip()


def test_multi_label_objective_losses():
    obj = Objective(logits=None, num_labels=3, multi_label=True)
    logits = torch.tensor([[2.0, -1.0, 0.5]], requires_grad=True)
    y = torch.tensor([0])
    expected = torch.nn.functional.binary_cross_entropy_with_logits(logits, torch.tensor([[1.0, 0.0, 0.0]]))
    assert torch.allclose(obj.label_loss(logits, y), expected)
    p = obj.teacher(logits)
    assert torch.allclose(p, torch.sigmoid(logits.detach()))
    assert obj.distill(logits, p).abs().item() < 1e-6  # a model distilled from itself: KL 0
    other = obj.distill(torch.tensor([[0.0, 0.0, 0.0]]), p)
    assert other.item() > 0
    single = Objective(logits=None, num_labels=3)
    q = single.teacher(logits)
    assert torch.allclose(q.sum(-1), torch.ones(1)) and single.distill(logits, q).abs().item() < 1e-6


@pytest.mark.parametrize("trainer", ["train-adapler", "train-trbert", "train-token-dropping", "train-ltp"])
@pytest.mark.parametrize("name", ["news-bert", "news-multi"])
def test_every_learned_trainer_refuses_a_checkpoint_in_one_line(cache, capsys, trainer, name):
    """The learned selectors' trainers take a project head; on a 3-label or multi-label checkpoint they say why not."""
    root, train, _ = cache
    assert cli.main([trainer, "--model", str(root / name), "--data", train, "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "fine-tuned classifier checkpoint" in err and "\n" not in err
    assert sorted(p.name for p in root.iterdir()) == ["news-bert", "news-multi"]


@pytest.mark.parametrize("selector", ["random", "first-k", "coreset-pool"])
def test_every_fixed_schedule_and_merging_selector_trains_on_a_checkpoint(cache, capsys, selector):
    root, train, _ = cache
    assert _train("--model", str(root / "news-multi"), "--data", train, "--label-column", "topic",
                  "--selector", selector, "--retention-range", "0.3,0.6", "--limit", "16") == 0
    assert (root / f"news-multi-ts-{selector}" / TRAIN_SELECT_FILE).is_file()


@pytest.mark.slow
def test_the_pooler_is_trained_with_the_head(cache, capsys):
    """BERT's pooler belongs to the head the checkpoint reads; with LoRA it is trained in full, like the classifier."""
    from safetensors.torch import load_file

    root, train, _ = cache
    assert _train("--model", str(root / "news-bert"), "--data", train, "--label-column", "topic", "--selector",
                  "coreset", "--retention-range", "0.3,0.6") == 0
    before = load_file(str(root / "news-bert" / "model.safetensors"))
    after = load_file(str(root / "news-bert-ts-coreset" / "model.safetensors"))
    for key in ("bert.pooler.dense.weight", "classifier.weight"):
        assert not torch.equal(before[key], after[key]), key
