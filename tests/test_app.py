"""The explorer through streamlit.testing.v1.AppTest: renders, reacts to input, handles bad input."""

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "streamlit_app.py")
TIMEOUT = 300  # first run loads the model and waits for UMAP's one-time compile


def table_with(at, column):
    return next(df.value for df in at.dataframe if column in df.value.columns)


def fresh():
    return AppTest.from_file(APP, default_timeout=TIMEOUT)


def html_bodies(at):
    return [el.proto.body for el in at.get("html")]


def chart_specs(at):
    return [json.loads(el.proto.spec) for el in at.get("plotly_chart")]


@pytest.fixture(scope="module")
def default_run():
    return fresh().run()


def test_default_example_renders_every_panel(default_run):
    at = default_run
    assert not at.exception
    assert not at.error
    specs = chart_specs(at)
    assert len(specs) == 3  # coverage radii, embeddings, comparison
    coverage = specs[0]
    from pyramid.selectors import SELECTORS, usable_selectors

    usable = usable_selectors(None)
    assert {t["name"] for t in coverage["data"]} == {SELECTORS[n].short for n in usable}
    assert {"coreset", "attention", "random", "first-k"} <= set(usable)
    assert all(len(t["y"]) == 6 for t in coverage["data"])
    emb = specs[1]
    assert any(t.get("name") == "kept" for t in emb["data"])
    bodies = html_bodies(at)
    assert any("[CLS]" in b and "[SEP]" in b for b in bodies)
    assert sum(b.count('class="pl-row"') for b in bodies) == 18  # 6 layers x (main + 2 compared)
    labels = [m.label for m in at.metric]
    assert "FLOPs speedup" in labels
    table = next(df.value for df in at.dataframe if "run" in df.value.columns)  # the shipped heads' predictions
    assert list(table["run"])[0] == "full length (no selection)" and len(table) == 1 + len(usable)
    assert "sst2-lora: label" in table.columns and "sst2-lora-pyramid: label" in table.columns
    assert set(table["sst2-lora: label"]) <= {"negative", "positive"}
    assert at.button[0].label == "Run" or any(b.label == "Run" for b in at.button)
    downloads = {d.proto.label for d in at.get("download_button")}
    assert {"Trace (JSON)", "Trace (CSV)", "Coverage chart (HTML)", "Token pyramid (HTML)",
            "Comparison chart (HTML)", "Download this chart (HTML)"} <= downloads


def test_run_with_another_selector_and_retention():
    at = fresh().run()
    at.selectbox(key="selector").set_value("attention")
    at.slider(key="retention").set_value(0.5)
    at.text_area(key="text").input("the film is not bad at all , and the cast is wonderful .")
    next(b for b in at.button if b.label == "Run").click()
    at.run()
    assert not at.exception and not at.error
    coverage = chart_specs(at)[0]
    thick = [t for t in coverage["data"] if t["line"]["width"] == 4]
    assert [t["name"] for t in thick] == ["Attention"]
    assert any("wonderful" in b for b in html_bodies(at))


def test_url_query_string_restores_the_view_and_run_updates_it():
    at = fresh()
    at.query_params["text"] = "a wonderful , moving film"
    at.query_params["selector"] = "random"
    at.query_params["retention"] = "0.5"
    at.query_params["start_layer"] = "2"
    at.query_params["compare"] = "no-such-selector"  # ignored
    at.run()
    assert not at.exception and not at.error
    assert at.selectbox(key="selector").value == "random"
    assert at.slider(key="retention").value == pytest.approx(0.5)
    assert at.slider(key="start_layer").value == 2
    assert any("wonderful" in b for b in html_bodies(at))
    at.selectbox(key="selector").set_value("first-k")
    next(b for b in at.button if b.label == "Run").click()
    at.run()
    qp = {k: (v[0] if isinstance(v, list) else v) for k, v in at.query_params.items()}
    assert qp["selector"] == "first-k" and float(qp["retention"]) == pytest.approx(0.5)
    assert qp["start_layer"] == "2" and qp["text"] == "a wonderful , moving film"


def test_hostile_text_is_shown_as_text():
    at = fresh().run()
    at.text_area(key="text").input('<img src=x onerror=alert(1)> <script>alert("x")</script> fine')
    next(b for b in at.button if b.label == "Run").click()
    at.run()
    assert not at.exception
    bodies = "".join(html_bodies(at))
    assert "alert" in bodies and "script" in bodies, bodies[-3000:]  # the text is there...
    assert "<img" not in bodies and "<script" not in bodies  # ...but never as markup
    assert "&lt;" in bodies


def test_empty_text_gives_a_message():
    at = fresh().run()
    at.text_area(key="text").input("   ")
    next(b for b in at.button if b.label == "Run").click()
    at.run()
    assert not at.exception
    assert any("empty" in w.value for w in at.warning)
    assert not at.get("plotly_chart")


def test_long_text_is_truncated_with_a_notice():
    at = fresh().run()
    at.text_area(key="text").input("wonderful " * 700)
    next(b for b in at.button if b.label == "Run").click()
    at.run()
    assert not at.exception
    assert any("truncated" in w.value or "cut" in w.value for w in at.warning)
    assert len(at.get("plotly_chart")) == 3


def test_bad_model_path_gives_an_error():
    at = fresh().run()
    at.text_input(key="model_name").input("/no/such/model")
    at.run()
    assert not at.exception
    assert any("does not exist" in e.value for e in at.error)


def test_example_picker_fills_the_text():
    examples = json.loads((ROOT / "assets" / "examples.json").read_text())["examples"]
    at = fresh().run()
    at.selectbox(key="example").set_value(examples[2]["title"])
    at.run()
    assert at.text_area(key="text").value == examples[2]["text"]


BENCH_SCRIPT = f"""
import sys
sys.path.insert(0, {str(ROOT)!r})
import streamlit as st
from app import benchmarks
benchmarks.render()
"""


def test_benchmarks_page_draws_curves_from_shipped_results():
    at = AppTest.from_string(BENCH_SCRIPT, default_timeout=TIMEOUT).run()
    assert not at.exception and not at.error
    specs = chart_specs(at)
    assert len(specs) == 2
    names = {t["name"] for t in specs[0]["data"]}
    assert {"Core-set", "Attention", "Random", "First-k"} <= names
    assert specs[1]["layout"]["xaxis"]["title"]["text"].startswith("FLOPs speedup")
    datasets = at.selectbox(key="bench_dataset").options
    assert len(datasets) == 2  # SST-2 dev and IMDB
    at.selectbox(key="bench_dataset").set_value(at.selectbox(key="bench_dataset").options[1]).run()
    assert not at.exception and len(chart_specs(at)) == 2
    assert any("python -m pyramid evaluate" in c.value for c in at.code)
    assert any("python -m pyramid bench" in c.value for c in at.code)


def test_benchmarks_page_without_results_says_how_to_make_them(tmp_path, monkeypatch):
    script = BENCH_SCRIPT.replace("benchmarks.render()",
                                  f"import pyramid.results as r; benchmarks.RESULTS_DIR = __import__('pathlib').Path({str(tmp_path)!r})\n"
                                  "benchmarks.render()")
    (tmp_path / "eval__x__y.csv").write_text("selector,retention\ncoreset,0.5\n")
    at = AppTest.from_string(script, default_timeout=TIMEOUT).run()
    assert not at.exception
    assert any("could not be read" in w.value for w in at.warning)
    assert any("No evaluation results" in i.value for i in at.info)
    assert any("No speed benchmark" in i.value for i in at.info)


SALIENCY_SCRIPT = BENCH_SCRIPT.replace("from app import benchmarks\nbenchmarks.render()",
                                       "from app import saliency\nsaliency.render()")


def test_saliency_page_compares_methods_and_selectors():
    at = AppTest.from_string(SALIENCY_SCRIPT, default_timeout=TIMEOUT).run()
    assert not at.exception and not at.error
    specs = chart_specs(at)
    assert len(specs) == 3  # heatmap, Spearman matrix, top-k overlap matrix
    heat = specs[0]["data"][0]
    assert heat["type"] == "heatmap"
    assert heat["y"][:3] == ["grad_x_input", "integrated_gradients", "gradient"] and "rollout" in heat["y"]
    from pyramid.selectors import unavailable_reason, usable_selectors

    if unavailable_reason("adapler", None) is None:
        assert "AdapLeR CP0" in heat["y"] and "AdapLeR CP5" in heat["y"]  # the predictors' contributions
    kept = next(df.value for df in at.dataframe if "after L1" in df.value.columns)
    assert len(kept) == len(usable_selectors(None)) and "after L1" in kept.columns
    at.text_area(key="sal_text").input('<img src=x onerror=alert(1)> a dull , lifeless film')
    next(b for b in at.button if b.label == "Run").click()
    at.run()
    assert not at.exception
    xs = chart_specs(at)[0]["data"][0]["x"]
    assert not any("<img" in x for x in xs) and any("&lt;" in x for x in xs)


LEARN_SCRIPT = BENCH_SCRIPT.replace("from app import benchmarks\nbenchmarks.render()",
                                    "from app import learn\nlearn.render()")


def test_learn_page_walks_through_every_step():
    from app.learn import STEPS

    at = AppTest.from_string(LEARN_SCRIPT, default_timeout=TIMEOUT).run()
    assert not at.exception and not at.error
    charts_seen = 0
    for step in STEPS:
        at.radio(key="learn_step").set_value(step).run()
        assert not at.exception and not at.error, step
        assert at.subheader, step
        charts_seen += len(at.get("plotly_chart"))
    assert charts_seen >= 3  # covering balls, attention heatmap, soft-removal curve
    at.radio(key="learn_step").set_value(STEPS[2]).run()
    at.slider(key="learn_k").set_value(8).run()
    title = json.loads(at.get("plotly_chart")[0].proto.spec)["layout"]["title"]["text"]
    assert "k = 8" in title
