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
