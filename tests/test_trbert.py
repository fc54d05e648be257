"""TR-BERT: policy networks, the keep rule, the heuristic guide, REINFORCE rollouts and training."""

from __future__ import annotations

import json

import pytest
import torch

from pyramid.batching import pad_batch, pad_id_of
from pyramid.core.schedule import Schedule
from pyramid.core.selectors.trbert import TrbertSelector
from pyramid.core.selectors.trbert import PolicyNetworks, TrbertConfig, TrbertLoadError, load_policy, selection_points
from pyramid.training.trbert import TrbertSettings, guide_layer, guide_scores, rollout, train_trbert


def test_selection_points_follow_methods_3_1():
    assert selection_points(12) == (1, 6)
    assert selection_points(6) == (1, 3)
    assert guide_layer(12) == 9  # ceil(3L/4): BERT-base's layer 9
    assert guide_layer(6) == 5  # the authors' back_r = 4 on DistilBERT-6 (0-based index of layer 5)


def _policy(bias: float, seed: int = 0) -> PolicyNetworks:
    torch.manual_seed(seed)
    pol = PolicyNetworks(32, (1, 2))
    for net in pol.policies.values():
        torch.nn.init.normal_(net[2].weight, std=1.0)
        torch.nn.init.constant_(net[2].bias, bias)
    return pol.eval()


def test_keep_probability_forces_cls_and_zeroes_pads():
    pol = _policy(-3.0)
    h = torch.randn(2, 6, 32)
    valid = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0]], dtype=torch.bool)
    pi = pol.keep_probability(1, h, valid)
    assert torch.equal(pi[:, 0], torch.ones(2))
    assert float(pi[1, 3:].detach().abs().sum()) == 0.0
    assert bool(((pi > 0) & (pi < 1))[:, 1:][valid[:, 1:]].all())


def test_selector_keeps_tokens_with_pi_at_least_half(trained):
    clf = trained[0]
    pol = _policy(0.0)
    sel = TrbertSelector(pol, TrbertConfig("t", "tiny-bert", clf.config.name, 32, 4, [1, 2]))
    assert [sel.selects_after(j, 4) for j in range(5)] == [False, True, True, False, False]
    enc = clf.encoder.tokenizer(["the film was quite a story and good and the film was", "a dull story"],
                                return_tensors="pt", padding=True)
    _, out = clf.predict(enc["input_ids"], enc["attention_mask"], sel, Schedule(retention=1.0))
    for lo in out.layers:
        if lo.selected:
            assert torch.equal(lo.keep, ((lo.scores >= 0.5) & lo.valid) | (lo.valid & (torch.arange(lo.valid.shape[1]) == 0)))
            assert bool(lo.keep[:, 0].all())
    assert [lo.selected for lo in out.layers] == [True, True, False, False]


def test_guide_scores_are_gradient_times_state_change(trained):
    clf = trained[0]
    rows = [clf.encoder.tokenizer(t)["input_ids"] for t in ("the film was good", "a boring and dull story of a film")]
    batch = pad_batch(rows, pad_id_of(clf.encoder))
    y = torch.tensor([1, 0])
    scores = guide_scores(clf.encoder.model, clf.head, batch.input_ids, batch.attention_mask, y, (1, 2), 3)
    assert set(scores) == {1, 2}
    for s in scores.values():
        assert s.shape == batch.input_ids.shape and bool((s >= 0).all())
        assert float(s[0, len(rows[0]):].abs().sum()) == 0.0  # pads
        assert float(s.sum()) > 0


def test_rollouts_with_an_always_keep_policy_equal_the_full_model(trained):
    clf = trained[0]
    rows = [clf.encoder.tokenizer(t)["input_ids"] for t in ("the film was good", "a boring and dull story")]
    batch = pad_batch(rows, pad_id_of(clf.encoder))
    y = torch.tensor([1, 0])
    pol = _policy(30.0)  # pi ~ 1: every token kept
    ro = rollout(clf.encoder.model, clf.head, pol, batch.input_ids, batch.attention_mask, 4, None)
    ce = torch.nn.functional.cross_entropy(ro.logits.flatten(0, 1), y.repeat_interleave(4), reduction="none").view(2, 4)
    log_pi, kept = ro.log_pi, ro.kept
    assert ce.shape == (2, 4) and torch.allclose(kept, torch.ones(2, 4))
    with torch.no_grad():
        probs, _ = clf.predict(batch.input_ids, batch.attention_mask, TrbertSelector(pol, None), Schedule(retention=1.0))
    full = torch.nn.functional.cross_entropy(torch.log(probs), y, reduction="none")
    assert torch.allclose(ce, full[:, None].expand(2, 4), atol=1e-4)
    # log pi of the all-keep actions is ~0
    assert float(log_pi.detach().abs().max()) < 1e-3


def test_heuristic_copy_keeps_the_expected_count(trained):
    clf = trained[0]
    rows = [clf.encoder.tokenizer("the film was quite a story and good and the film was")["input_ids"]]
    batch = pad_batch(rows, pad_id_of(clf.encoder))
    y = torch.tensor([1])
    pol = _policy(0.0)
    guide = guide_scores(clf.encoder.model, clf.head, batch.input_ids, batch.attention_mask, y, (1, 2), 3)
    torch.manual_seed(0)
    kept = rollout(clf.encoder.model, clf.head, pol, batch.input_ids, batch.attention_mask, 8, guide).kept
    assert 0 < float(kept[0, 0]) < 1


@pytest.fixture(scope="module")
def trbert_runs(trained, tmp_path_factory):
    from conftest import _write_data

    clf, _, dev, _ = trained
    root = tmp_path_factory.mktemp("trbert")
    data = _write_data(root / "train.tsv", 96, 5)
    runs = {}
    for alpha in (0.0, 5.0):
        s = TrbertSettings(data=data, dev=dev if alpha else None, out=str(root / f"a{alpha}"), name=f"tiny-trbert-{alpha}",
                           head=clf.config.name, alpha=alpha, epochs=3, limit=None, batch_size=16, samples=4,
                           max_length=32, lr=1e-2, command="pytest")
        torch.manual_seed(0)
        runs[alpha] = train_trbert(clf, s, progress=False) + (root / f"a{alpha}",)
    return clf, runs


@pytest.mark.slow
def test_the_length_term_of_the_reward_makes_the_policy_drop_more(trbert_runs):
    clf, runs = trbert_runs
    kept0 = runs[0.0][1].training["final_kept_fraction"]
    kept5 = runs[5.0][1].training["final_kept_fraction"]
    assert kept5 < kept0 - 0.1


@pytest.mark.slow
def test_trbert_artifact_round_trip_and_card(trbert_runs):
    clf, runs = trbert_runs
    policy, config, folder = runs[5.0]
    for f in ("policy.safetensors", "trbert_config.json", "README.md"):
        assert (folder / f).is_file() and (folder / f).stat().st_size < 5e6
    cfg = json.loads((folder / "trbert_config.json").read_text())
    assert cfg["points"] == [1, 2] and cfg["head"] == clf.config.name
    assert "REINFORCE" in (folder / "README.md").read_text() and "dev_accuracy" in cfg["metrics"]
    loaded, _ = load_policy(str(folder))
    h = torch.randn(1, 5, 32)
    v = torch.ones(1, 5, dtype=torch.bool)
    for p in (1, 2):
        assert torch.allclose(loaded.keep_probability(p, h, v), policy.keep_probability(p, h, v), atol=1e-6)


def test_missing_policy_gives_a_clear_error(tmp_path):
    with pytest.raises(TrbertLoadError, match="train-trbert"):
        load_policy(str(tmp_path / "nope"))


@pytest.mark.slow
def test_joint_phase_trains_lora_head_and_policy(trbert_runs, tiny_encoder, tmp_path):
    """The joint phase (docs/methods.md 3.3 step 4, 8.2): from the RL policy, distilling the head's logits."""
    from conftest import _write_data

    from pyramid.classifier import load_classifier
    from pyramid.core.selectors.trbert import load_policy

    clf, runs = trbert_runs
    rl_policy, _, rl_folder = runs[5.0]
    data = _write_data(tmp_path / "train.tsv", 48, 13)
    s = TrbertSettings(data=data, dev=None, phase="joint", init_policy=str(rl_folder), head=clf.config.name,
                       out=str(tmp_path / "pol"), head_out=str(tmp_path / "joint-head"), name="tiny-joint",
                       alpha=1.0, epochs=1, batch_size=4, accumulate=2, samples=4, max_length=32, lr=1e-3,
                       lora_lr=5e-3, head_lr=5e-3, command="pytest")
    before = {k: v.clone() for k, v in clf.encoder.model.state_dict().items()}
    policy, config = train_trbert(clf, s, base=tiny_encoder, progress=False)
    assert config.head == "joint-head" and config.training["phase"] == "joint"
    joint = load_classifier(tmp_path / "joint-head", tiny_encoder)
    assert any(not torch.equal(v, before[k]) for k, v in joint.encoder.model.state_dict().items())
    loaded, _ = load_policy(str(tmp_path / "pol"))
    moved = [k for k, v in loaded.state_dict().items() if not torch.allclose(v, rl_policy.state_dict()[k])]
    assert moved, "the policy did not move from its RL start"
    assert "Joint phase" in (tmp_path / "pol" / "README.md").read_text()
    head_card = (tmp_path / "joint-head" / "README.md").read_text()
    assert "joint phase" in head_card and "shuffled with seed 0" in head_card and "hard selection" not in head_card

    # A continued run (--init-head, --init-policy) starts from the joint run's weights, not from --head's.
    from dataclasses import replace

    more = replace(s, init_head=str(tmp_path / "joint-head"), init_policy=str(tmp_path / "pol"), out=str(tmp_path / "pol2"),
                   head_out=str(tmp_path / "joint-head2"), lr=1e-12, lora_lr=1e-12, head_lr=1e-12, max_steps=1)
    train_trbert(clf, more, base=tiny_encoder, progress=False)
    again = load_classifier(tmp_path / "joint-head2", tiny_encoder)
    start = joint.encoder.model.state_dict()
    assert all(torch.allclose(v, start[k], atol=1e-3) for k, v in again.encoder.model.state_dict().items())
    assert all(torch.allclose(v, joint.head.state_dict()[k], atol=1e-3) for k, v in again.head.state_dict().items())
    assert "a continued joint run" in (tmp_path / "pol2" / "README.md").read_text()
