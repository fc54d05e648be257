"""AdapLeR: contribution predictors, soft removal, threshold rule, training and the artifact."""

from __future__ import annotations

import json

import pytest
import torch

from pyramid.core.selectors.adapler import AdaplerConfig, AdaplerLoadError, ContributionPredictors, load_predictors
from pyramid.training.adapler import (AdaplerSettings, kl_to_saliency, lambda_at, soft_forward, soft_penalty,
                                      train_adapler)
from pyramid.batching import pad_batch, pad_id_of
from pyramid.core.schedule import Schedule
from pyramid.core.selectors import full_length_selector
from pyramid.core.selectors.adapler import AdaplerSelector


def _predictors(d=32, L=4, seed=0, eta=0.6):
    torch.manual_seed(seed)
    pred = ContributionPredictors(d, L, eta_init=eta)
    for cp in pred.cps:  # larger weights so the distributions are far from uniform
        torch.nn.init.normal_(cp[0].weight, std=0.5)
        torch.nn.init.normal_(cp[2].weight, std=1.0)
    pred.eval()
    return pred


def test_soft_penalty_shape_of_the_curve():
    delta = torch.tensor([[0.1]])
    x = torch.linspace(0, 1, 101).unsqueeze(0)  # (1, 101)
    s = soft_penalty(x, delta, lam=10.0)
    assert bool((s <= 0).all())
    assert bool((s[:, 1:] >= s[:, :-1]).all())  # non-decreasing in x
    above = s[x >= 0.1]
    assert float(above.min()) > -0.02  # ~0 above the threshold (exp(S) > 0.98)
    assert float(torch.exp(soft_penalty(torch.tensor([[0.09]]), delta, 10.0))) == pytest.approx(
        float(torch.exp(torch.tensor(10.0 / 0.1 * (0.09 - 0.1) - 0.1 / 10.0))), rel=1e-5)
    hard = torch.exp(soft_penalty(x, delta, lam=1e6))
    assert bool((hard[x < 0.099] < 1e-6).all()) and bool((hard[x > 0.101] > 0.999).all())
    assert float(soft_penalty(torch.tensor([[0.0]]), delta, 1e9)) == -10000.0  # clipped


def test_lambda_stages_spread_over_the_steps():
    stages = (10, 100, 1000, 10000, 100000)  # the authors' 10 * 10^e over 5 epochs (docs/methods.md 2.5)
    assert [lambda_at(s, 100, stages) for s in (0, 19, 20, 39, 40, 99)] == [10, 10, 100, 100, 1000, 100000]


def test_distribution_is_a_masked_softmax():
    pred = _predictors()
    h = torch.randn(2, 7, 32)
    w = torch.tensor([[1, 1, 0, 1, 1, 0, 0], [1, 0.5, 1, 1, 1, 1, 1]], dtype=torch.float32)
    p = pred.distribution(1, h, w)
    assert torch.allclose(p.sum(1), torch.ones(2), atol=1e-6)
    assert float(p[0, 2].detach()) < 1e-20 and float(p[0, 6].detach()) < 1e-20
    raw = torch.softmax(pred.cps[1](h).squeeze(-1), -1) * w
    assert torch.allclose(p, raw / raw.sum(1, keepdim=True), atol=1e-6)


def test_kl_is_zero_when_the_predictor_matches_the_target():
    sal = torch.tensor([[0.5, 1.0, 2.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    q = sal * mask / (sal * mask).sum()
    assert float(kl_to_saliency(sal, q, mask)) == pytest.approx(0.0, abs=1e-6)
    assert float(kl_to_saliency(sal, torch.full((1, 4), 0.25), mask)) > 0.05


def test_selector_applies_eta_over_n(tiny_encoder):
    from pyramid.core.encoder import PyramidEncoder

    pred = _predictors()
    sel = AdaplerSelector(pred, AdaplerConfig("t", "tiny-bert", "h", 32, 4))
    assert sel.head == "h" and not sel.fixed_length
    assert [sel.selects_after(j, 4) for j in range(5)] == [True, True, True, True, False]
    tok = tiny_encoder.tokenizer
    texts = ["a long sentence with many different words about a film that was fine",
             "short one", "another sentence of middling length here"]
    enc = tok(texts, return_tensors="pt", padding=True)
    out = PyramidEncoder(tiny_encoder, sel)(enc["input_ids"], enc["attention_mask"])
    es = out.embedding_selection
    assert es is not None and es.layer == 0 and es.selected
    # The rule at layer 0, by hand.
    n = es.valid.sum(1, keepdim=True)
    expect = (es.scores >= pred.eta[0] / n) & es.valid
    expect[:, 0] = True
    assert torch.equal(es.keep, expect)
    lengths = out.alive_counts()  # (B, L)
    assert bool((lengths[:, 1:] <= lengths[:, :-1]).all())
    assert bool((lengths[:, 0] < enc["attention_mask"].sum(1)).any())  # something dropped before layer 1
    assert len({tuple(r) for r in lengths.tolist()}) > 1  # lengths differ per example
    for lo in out.layers:
        assert bool(lo.keep[:, 0].all())  # [CLS] always stays
        assert not bool((lo.keep & ~lo.valid).any())  # pads never kept


def test_soft_removal_with_a_huge_temperature_equals_hard_removal(trained):
    clf = trained[0]
    pred = _predictors(eta=0.7)
    sel = AdaplerSelector(pred, AdaplerConfig("t", "tiny-bert", clf.config.name, 32, 4))
    tok = clf.encoder.tokenizer
    texts = ["the film was quite a story and good and the film was", "bad", "a dull and boring story was the film"]
    enc = tok(texts, return_tensors="pt", padding=True)
    with torch.no_grad():
        soft = soft_forward(clf.encoder.model, clf.head, pred, enc["input_ids"], enc["attention_mask"], lam=1e12)
        hard_probs, out = clf.predict(enc["input_ids"], enc["attention_mask"], sel, Schedule(retention=1.0))
    assert bool((out.alive_counts() < enc["attention_mask"].sum(1, keepdim=True)).any())
    assert torch.allclose(torch.softmax(soft.logits, -1), hard_probs, atol=1e-5)
    # Soft lengths entering each layer equal the hard alive counts.
    assert torch.allclose(soft.lengths, out.alive_counts().float(), atol=1e-3)


def test_cp_flops_are_counted(trained):
    from pyramid.analysis.evaluation import example_speedups

    clf = trained[0]
    pred = _predictors(eta=0.01)
    for cp in pred.cps:  # uniform distributions: p = 1/n >= 0.01/n, nothing is dropped
        torch.nn.init.zeros_(cp[2].weight)
    sel = AdaplerSelector(pred, AdaplerConfig("t", "tiny-bert", clf.config.name, 32, 4))
    ids = clf.encoder.tokenizer(["the film was good"], return_tensors="pt")["input_ids"]
    _, out = clf.predict(ids, None, sel, Schedule(retention=1.0))
    speed, alive = example_speedups(out, clf.encoder.config)
    assert int(alive.min()) == ids.shape[1]
    assert float(speed[0]) < 1.0  # nothing dropped, predictors still ran: slower than the full model


def test_grad_x_input_batch_matches_single_texts(trained):
    from pyramid.analysis.attribution import grad_x_input_batch, gradient_saliency

    clf = trained[0]
    rows = [clf.encoder.tokenizer(t)["input_ids"] for t in ("the film was good", "a boring story and a dull film")]
    batch = pad_batch(rows, pad_id_of(clf.encoder))
    target = torch.tensor([1, 0])
    s = grad_x_input_batch(clf, batch.input_ids, batch.attention_mask, target)
    for b, ids in enumerate(rows):
        one = gradient_saliency(clf, ids, target=int(target[b]), methods=("grad_x_input",)).scores["grad_x_input"]
        assert torch.allclose(s[b, : len(ids)], one, atol=1e-5)
        assert float(s[b, len(ids):].abs().sum()) == 0.0


@pytest.fixture(scope="module")
def adapler_trained(trained, tmp_path_factory):
    from conftest import _write_data

    clf, _, dev, _ = trained
    root = tmp_path_factory.mktemp("adapler")
    data = _write_data(root / "train.tsv", 96, 3)
    settings = AdaplerSettings(data=data, dev=dev, out=str(root / "tiny-adapler"), name="tiny-adapler",
                               head=clf.config.name, epochs=3, limit=None, holdout=16, batch_size=16, max_length=32,
                               lr=1e-2, eta_lr=1e-2, phi=0.01, command="pytest")
    torch.manual_seed(0)
    init = ContributionPredictors(32, 4)
    pred, config = train_adapler(clf, settings, progress=False)
    return clf, pred, config, root / "tiny-adapler", data, init


@pytest.mark.slow
def test_training_distils_the_saliency_and_writes_the_artifact(adapler_trained):
    from pyramid.analysis.attribution import saliency_targets
    from pyramid.batching import encode_texts
    from pyramid.data import read_labelled

    clf, pred, config, folder, data, init = adapler_trained
    for f in ("predictors.safetensors", "adapler_config.json", "README.md"):
        assert (folder / f).is_file()
        assert (folder / f).stat().st_size < 5e6
    card = (folder / "README.md").read_text()
    assert "frozen" in card and "pytest" in card and "dev_accuracy" in card
    cfg = json.loads((folder / "adapler_config.json").read_text())
    assert cfg["head"] == clf.config.name and cfg["num_layers"] == 4
    assert all(0.01 <= e <= 1.0 for e in cfg["training"]["eta"])
    assert cfg["training"]["eta"] != [0.25] * 4  # the thresholds were learned
    # The trained predictors are closer to the saliency targets than untrained ones (full length).
    d = read_labelled(data, label_names=clf.labels)
    ids = encode_texts(clf.encoder, d.texts, 32)[:32]
    targets = saliency_targets(clf, ids, d.labels[:32], progress=False)
    batch = pad_batch(ids, pad_id_of(clf.encoder))
    sal = torch.zeros(batch.input_ids.shape)
    for i, t in enumerate(targets):
        sal[i, : len(t)] = t
    m = batch.attention_mask.float()

    def mean_kl(p):
        with torch.no_grad():
            f = soft_forward(clf.encoder.model, clf.head, p, batch.input_ids, batch.attention_mask, lam=1e12)
            return float(kl_to_saliency(sal, f.distributions[0], m).mean())

    assert mean_kl(pred) < mean_kl(init)
    # Round trip through the files.
    loaded, lcfg = load_predictors(folder)
    h = torch.randn(1, 5, 32)
    w = torch.ones(1, 5)
    for j in range(4):
        assert torch.allclose(loaded.distribution(j, h, w), pred.distribution(j, h, w), atol=1e-6)
    assert torch.allclose(loaded.eta, pred.eta)
    assert lcfg.metrics["dev_flops_speedup"] > 0


@pytest.mark.slow
def test_evaluate_gives_one_adapler_row(adapler_trained):
    from pyramid.data import read_labelled
    from pyramid.analysis.evaluation import ROW_KEYS, evaluate

    clf, pred, config, folder, data, _ = adapler_trained
    d = read_labelled(data, label_names=clf.labels).head(24)
    rows = evaluate(clf, d, ["coreset", AdaplerSelector(pred, config)], [1.0, 0.5], progress=False)
    assert [r["selector"] for r in rows] == ["coreset", "coreset", "adapler"]
    row = rows[-1]
    assert set(row) == set(ROW_KEYS) and row["regime"] == "inference" and row["head"] == clf.config.name
    assert 0 < row["retention"] <= 1.0 and row["n"] == 24
    other = AdaplerConfig("x", "tiny-bert", "another-head", 32, 4)
    with pytest.raises(ValueError, match="another-head"):
        evaluate(clf, d, [AdaplerSelector(pred, other)], [1.0], progress=False)


def test_missing_and_corrupt_artifacts_give_clear_errors(tmp_path):
    with pytest.raises(AdaplerLoadError, match="train-adapler"):
        load_predictors(str(tmp_path / "nope"))
    (tmp_path / "bad").mkdir()
    with pytest.raises(AdaplerLoadError, match="missing"):
        load_predictors(str(tmp_path / "bad"))
    (tmp_path / "bad" / "predictors.safetensors").write_bytes(b"not a file")
    (tmp_path / "bad" / "adapler_config.json").write_text("{}")
    with pytest.raises(AdaplerLoadError, match="Could not load"):
        load_predictors(str(tmp_path / "bad"))


def test_full_length_selector_drops_nothing(trained):
    clf = trained[0]
    ids = clf.encoder.tokenizer(["the film was good and lovely"], return_tensors="pt")["input_ids"]
    _, out = clf.predict(ids, None, full_length_selector(), Schedule(retention=1.0))
    assert out.alive_counts().tolist() == [[ids.shape[1]] * 4]


@pytest.mark.slow
def test_saliency_agreement_over_a_data_set(adapler_trained):
    from pyramid.data import read_labelled
    from pyramid.analysis.saliency_eval import REPORT_KEYS, saliency_agreement

    clf, pred, config, folder, data, _ = adapler_trained
    d = read_labelled(data, label_names=clf.labels).head(20)
    rep = saliency_agreement(clf, d, ["first-k", "coreset", AdaplerSelector(pred, config)], retention=0.3, k=3,
                             progress=False)
    assert sorted(rep.score_spearman["adapler"]) == [0, 1, 2, 3]  # CP0..CP3
    assert all(-1.0 <= v <= 1.0 for v in rep.score_spearman["adapler"].values())
    assert set(rep.topk_kept) == {"first-k", "coreset", "adapler"}
    for shares in rep.topk_kept.values():
        assert len(shares) == 4
        assert all(0.0 <= v <= 1.0 for v in shares)
        assert all(a >= b - 1e-9 for a, b in zip(shares, shares[1:]))  # dropped tokens never come back
    assert rep.topk_kept["first-k"][-1] < 1.0  # truncation loses salient tokens at retention 0.3
    rows = rep.rows()
    assert all(set(r) == set(REPORT_KEYS) for r in rows)
    assert len(rows) == 4 + 3 * 4


@pytest.mark.slow
def test_joint_training_updates_lora_head_and_predictors(trained, tiny_encoder, tmp_path):
    """The Train-Select mode (docs/methods.md 8.1): LoRA, head, predictors and eta learn together and a
    new head is written; the starting head is not modified."""
    from conftest import _write_data

    from pyramid.classifier import load_classifier

    clf, head_dir, dev, _ = trained
    data = _write_data(tmp_path / "train.tsv", 80, 11)
    s = AdaplerSettings(data=data, dev=dev, joint=True, out=str(tmp_path / "pred"), head_out=str(tmp_path / "joint-head"),
                        name="tiny-joint", head=clf.config.name, epochs=2, holdout=16, batch_size=16, max_length=32,
                        lr=1e-2, lora_lr=5e-3, head_lr=5e-3, eta_lr=1e-2, phi=0.01, command="pytest")
    before = {k: v.clone() for k, v in clf.encoder.model.state_dict().items()}
    pred, config = train_adapler(clf, s, base=tiny_encoder, progress=False)
    assert config.head == "joint-head" and config.training["joint"] is True
    for f in ("adapter_model.safetensors", "head.safetensors", "head_config.json", "README.md"):
        assert (tmp_path / "joint-head" / f).is_file()
    for f in ("predictors.safetensors", "adapler_config.json", "README.md"):
        assert (tmp_path / "pred" / f).is_file()
    assert "Joint training" in (tmp_path / "pred" / "README.md").read_text()
    joint = load_classifier(tmp_path / "joint-head", tiny_encoder)
    changed = [k for k, v in joint.encoder.model.state_dict().items() if not torch.equal(v, before[k])]
    assert changed, "the LoRA weights did not move"
    assert all(torch.equal(v, before[k]) for k, v in clf.encoder.model.state_dict().items())  # start head untouched
    assert config.training["checkpoint"]["stages"], "the checkpoint rule ran on the holdout rows"
    assert "dev_accuracy" in config.metrics and "dev_flops_speedup" in config.metrics
    # The head's own card carries the joint run's dev figures, its seed and how it was trained.
    assert joint.config.metrics["dev_flops_speedup"] == config.metrics["dev_flops_speedup"]
    card = (tmp_path / "joint-head" / "README.md").read_text()
    assert "shuffled with seed 0" in card and "soft removal" in card and "hard selection" not in card
    assert f"| dev_accuracy | {config.metrics['dev_accuracy']} |" in card


def test_flushed_denormals_zeroes_subnormals_inside_and_restores_after():
    """The joint trainers' soft masks produce subnormal floats; the block flushes them (speed only)."""
    from pyramid.training.common import flushed_denormals

    tiny = torch.tensor([1e-39, 1e-30], dtype=torch.float32)  # (2,): a subnormal and a normal float
    supported = torch.set_flush_denormal(True)
    torch.set_flush_denormal(False)
    with flushed_denormals():
        inside = tiny * 1.0
    after = tiny * 1.0
    if supported:  # x86 with SSE3: every CI machine here
        assert inside[0].item() == 0.0
    assert inside[1].item() == pytest.approx(1e-30)
    assert after[0].item() == pytest.approx(1e-39, rel=1e-3)  # default restored: subnormals kept
