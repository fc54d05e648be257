"""The shipped learned-selector artifacts through the CLI: trace, evaluate and saliency-report."""

import json

import pytest

from pyramid.cli import main
from pyramid.plan import unavailable_reason, usable_selectors
from pyramid.core.selectors import SELECTORS

pytestmark = pytest.mark.slow

SHIPPED = [n for n in ("adapler", "trbert", "token-dropping", "ltp")]

NO_TRAIN_SELECT_MODEL_YET: set[str] = set()
"""Selectors whose Train-Select model is not shipped (none now; Token Dropping's was the last). Listed
here so that a missing artifact is a decision, not an accident: removing one makes the test below fail
until its name is added to this set."""


def test_every_selector_runs_in_the_inference_regime_and_train_select_where_shipped():
    from pyramid.core.artifacts import REGIMES

    assert "train-select" in REGIMES
    assert usable_selectors(None, "inference") == list(SELECTORS)
    missing = {n for n in SELECTORS if unavailable_reason(n, None, "train-select") is not None}
    assert missing == NO_TRAIN_SELECT_MODEL_YET, {n: unavailable_reason(n, None, "train-select") for n in missing}


def run_main(capsys, *args):
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_artifact_is_installed(name):
    assert unavailable_reason(name, None) is None, unavailable_reason(name, None)
    assert unavailable_reason(name, "/some/other/model") is not None  # tied to the default model


def test_trace_adapler_drops_before_layer_one_and_predicts(capsys):
    text = "a gorgeous , witty , seductive movie with a dull and overlong middle section that drags on and on ."
    code, out, err = run_main(capsys, "trace", text, "--selector", "adapler")
    assert code == 0, err
    js = json.loads(out)
    n = len(js["tokens"])
    assert "embedding_kept" in js and 0 in js["embedding_kept"]
    assert js["layers"][0]["alive"] == js["embedding_kept"]
    counts = [len(layer["alive"]) for layer in js["layers"]]
    assert counts[-1] < n and counts == sorted(counts, reverse=True)
    assert js["prediction"] is not None and len(js["prediction"]["probs"]) == 2


def test_trace_trbert_selects_after_layers_one_and_three(capsys):
    text = "the plot is thin and the jokes are stale , but the two leads are charming enough to carry it ."
    code, out, err = run_main(capsys, "trace", text, "--selector", "trbert")
    assert code == 0, err
    js = json.loads(out)
    counts = [len(layer["alive"]) for layer in js["layers"]]
    n = len(js["tokens"])
    assert counts[0] == n and counts[1] < n  # the first policy acts after layer 1
    assert counts[1] == counts[2] >= counts[3] == counts[4] == counts[5]  # the second after layer 3, no other


def test_trace_token_dropping_rejoins_at_the_last_layer(capsys):
    text = "i expected a lot more from this director ; the story is predictable and the ending falls completely flat ."
    code, out, err = run_main(capsys, "trace", text, "--selector", "token-dropping", "--retention", "0.5")
    assert code == 0, err
    js = json.loads(out)
    counts = [len(layer["alive"]) for layer in js["layers"]]
    n = len(js["tokens"])
    assert counts[0] == counts[1] == n and counts[2] < n and counts[5] == n


def test_evaluate_learned_and_token_dropping_rows(capsys, tmp_path):
    data = tmp_path / "mini.tsv"
    data.write_text("sentence\tlabel\na wonderful , moving film .\t1\na dull , lifeless mess .\t0\n"
                    "the best thing i have seen this year .\t1\nboring and far too long .\t0\n", encoding="utf-8")
    code, out, err = run_main(capsys, "evaluate", "--data", str(data), "--selectors", "adapler,trbert,token-dropping",
                              "--retention", "1.0,0.5", "--regime", "inference", "--json", "--quiet")
    assert code == 0, err
    rows = json.loads(out)
    assert [r["selector"] for r in rows] == ["adapler", "trbert", "token-dropping", "token-dropping"]
    assert all(0 < r["retention"] <= 1 for r in rows)
    code, out, err = run_main(capsys, "evaluate", "--data", str(data), "--selectors", "adapler",
                              "--head", "sst2-lora-pyramid", "--regime", "inference", "--quiet")
    assert code == 2 and "sst2-lora" in err


def test_saliency_report_over_a_few_sentences(capsys, tmp_path):
    data = tmp_path / "mini.tsv"
    data.write_text("sentence\tlabel\na wonderful , moving film with a great cast .\t1\n"
                    "a dull , lifeless mess that goes on far too long .\t0\n", encoding="utf-8")
    code, out, err = run_main(capsys, "saliency-report", "--data", str(data), "--json", "--quiet", "--k", "3")
    assert code == 0, err
    rows = json.loads(out)
    spear = [r for r in rows if r["kind"] == "score_spearman"]
    assert {r["selector"] for r in spear} >= {"adapler", "trbert"}
    assert len([r for r in spear if r["selector"] == "adapler"]) == 6  # CP0..CP5
    assert all(-1 <= r["value"] <= 1 for r in spear)
    kept = {r["selector"] for r in rows if r["kind"] == "top3_kept"}
    assert kept == set(usable_selectors())


def test_bench_refuses_learned_selectors(capsys):
    code, out, err = run_main(capsys, "bench", "--selectors", "adapler", "--quiet")
    assert code == 2 and "own" in err
