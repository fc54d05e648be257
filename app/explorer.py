"""The explorer page: paste text, choose a selector, a schedule and a regime, press Run, watch each layer.

State that cannot disagree: the text, the settings and the results shown live in session state under
this page's own keys (``pl_*``); the widgets are re-filled from them whenever Streamlit has dropped
the widgets' own state (after a visit to another page), so the text box always shows the text the
results describe. Only what is on screen is computed: the chosen and the compared runs and their
predictions on Run; the other tabs (coverage of every selector, the UMAP projection) when opened.
"""

from __future__ import annotations

import contextlib
import functools
import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import streamlit as st

from pyramid.core.artifacts import REGIMES
from pyramid.classifier import OWN_HEAD, HeadLoadError, Prediction
from pyramid.core.schedule import ScheduleError
from pyramid.analysis.survival import survival
from pyramid.core.selectors import SELECTORS, selector_label
from pyramid.tokenization import EmptyTextError, TokenizedText
from pyramid.trace import trace_flops
from pyramid.words import trace_groups

from pyramid.present import figures

from . import panels
from .model_menu import load_chosen_model
from .resources import (grad_x_input_for, prediction_for, projection_for, scrub_for, selectors_for, shown_regime_for,
                        tokenize_cached, torch_thread, trace_for, umap_warmup_thread, why_unavailable)
from .settings import load_settings

ASSETS = Path(__file__).resolve().parent.parent / "assets"
REGIME_HELP = (
    "**Inference-only**: every selector runs on the model's full-length classifier (`sst2-lora` on the default "
    "model, a fine-tuned checkpoint's own head); selection is added at inference. **Train-Select**: each selector "
    "runs on a model fine-tuned with that selector in the loop, the way its paper trains it (docs/methods.md 8; the "
    "project's models of the default model)."
)
RETENTION_HELP = (
    "Final retention ratio ρ: the share of tokens the schedule keeps at the end of the geometric decay. Lengths "
    "shrink by the same factor after every layer from the start layer on (docs/methods.md 1.3). 1.0 keeps every "
    "token. Learned selectors (AdapLeR, TR-BERT, LTP) set their own lengths; Token Dropping reads ρ as its keep "
    "fraction."
)
START_HELP = "Start layer s: the first layer after whose output tokens are dropped. Earlier layers see every token."
COMPARE_HELP = ("A second run on the same text and schedule, shown in the Compare tab. Choosing the same selector "
                "compares it with itself in the other regime.")
URL_KEYS = ("text", "selector", "compare", "retention", "start_layer", "seed", "regime")
"""Explorer state kept in the URL query string, so that a copied link reopens the same view."""
FORM_DEFAULTS = {"retention": 0.3, "start_layer": 1, "seed": 0, "regime": "inference"}


@st.cache_data(show_spinner=False)
def load_examples() -> list[dict]:
    """Example texts shipped in ``assets/examples.json``."""
    with open(ASSETS / "examples.json", encoding="utf-8") as fh:
        return json.load(fh)["examples"]


def _selector_help() -> str:
    """The Selector menu's help: each selector's own description, and the rules the encoder enforces."""
    lines = [f"**{cls.short}**: {cls.description}" for cls in SELECTORS.values()]
    return "How tokens are chosen after each layer.\n\n" + "\n\n".join(lines) + "\n\n[CLS] is always kept."


def _regime_name(regime: str, head: str | None) -> str:
    """The regime switch's labels, naming the inference-only regime's classifier (``head``) on the chosen model."""
    inference = {None: "Inference-only (no classifier)", OWN_HEAD: "Inference-only (its own head)"}.get(
        head, f"Inference-only ({head})")
    return {"inference": inference, "train-select": "Train-Select (selector's own model)"}[regime]


def _other(regime: str) -> str:
    return REGIMES[1 - REGIMES.index(regime)]


def _shown(value: str) -> str:
    """A query-string value as a caption may show it: at most 40 characters, as code (no markdown, no HTML)."""
    value = str(value).replace("`", "'").replace("\n", " ")
    return f"`{value[:40]}{'…' if len(value) > 40 else ''}`"


def _state_from_url(names: list[str], num_layers: int) -> None:
    """Fill the persistent state from the query string, once per session. A value that cannot be used is
    ignored (or brought into range), and ``pl_url_ignored`` says which, for one caption on the page."""
    if st.session_state.get("pl_url_loaded"):
        return
    st.session_state["pl_url_loaded"] = True
    qp = st.query_params
    form = dict(st.session_state.get("pl_form", {}))
    ignored = []
    if qp.get("text", "").strip():
        st.session_state["pl_text"] = qp["text"]
    for key in ("selector", "compare"):
        if key in qp:
            if qp[key] in names:
                form[key] = qp[key]
            else:
                ignored.append(f"{key}={_shown(qp[key])} (not a selector that runs on this model)")
    if "regime" in qp:
        if qp["regime"] in REGIMES:
            form["regime"] = qp["regime"]
        else:
            ignored.append(f"regime={_shown(qp['regime'])} (inference or train-select)")

    def number(key: str, parse, low, high, step=None):
        if key not in qp:
            return
        try:
            raw = parse(qp[key])
            if raw != raw:  # NaN
                raise ValueError
        except (ValueError, OverflowError):
            ignored.append(f"{key}={_shown(qp[key])} (not a number)")
            return
        value = min(high, max(low, raw))
        if step is not None:
            value = float(round(round(value / step) * step, 2))
        form[key] = value
        if value != raw:
            ignored.append(f"{key}={_shown(qp[key])} (outside {low}..{high} or between steps: {value} used)")

    number("retention", float, 0.05, 1.0, 0.05)
    number("start_layer", int, 1, max(1, num_layers - 1))
    number("seed", int, 0, 2**32 - 1)
    st.session_state["pl_form"] = form
    st.session_state["pl_url_ignored"] = ignored


def _state_to_url(run: dict) -> None:
    """Write the run's settings into the query string (the browser's address bar)."""
    st.query_params.from_dict({k: str(run[k]) for k in URL_KEYS})


def _init_widgets(names: list[str], num_layers: int) -> dict:
    """Persistent defaults, and the widgets re-filled from them when Streamlit dropped their state."""
    ss = st.session_state
    form = {"selector": names[0], "compare": names[min(1, len(names) - 1)], **FORM_DEFAULTS, **ss.get("pl_form", {})}
    if form["selector"] not in names:
        form["selector"] = names[0]
    if form["compare"] not in names:
        form["compare"] = names[min(1, len(names) - 1)]
    form["start_layer"] = int(min(max(1, num_layers - 1), form["start_layer"]))
    ss["pl_form"] = form
    for key in ("selector", "compare", "retention", "start_layer", "seed", "regime"):
        ss.setdefault(f"w_{key}", form[key])
    ss.setdefault("w_text", ss["pl_text"])
    ss.setdefault("w_words", ss.get("pl_words", False))
    return form


def _on_example() -> None:
    examples = {e["title"]: e["text"] for e in load_examples()}
    title = st.session_state.get("w_example")
    if title in examples:
        st.session_state["w_text"] = examples[title]


def _on_run() -> None:
    """The Run button's callback (before the script reruns): the page then takes the form's values as the new run
    and computes it before drawing anything."""
    st.session_state["pl_submitted"] = True


def _on_words() -> None:
    st.session_state["pl_words"] = bool(st.session_state.get("w_words"))


def render() -> None:
    """Draw the explorer page."""
    t_start = time.perf_counter()
    settings = load_settings()
    st.title("Pyramid Lens · explorer")
    st.caption(
        "A pyramid encoder drops tokens layer by layer. Paste a text, choose how tokens are selected, how fast the "
        "sequence shrinks and which model runs, and press **Run** to see which tokens each layer keeps, how well the "
        "kept tokens cover the dropped ones, and where every token sits in embedding space."
    )
    model = load_chosen_model(settings)
    if model is None:
        return
    model_name = model.name
    L = model.num_layers

    examples = load_examples()
    names = selectors_for(model, model_name, "inference")
    if not names:
        st.error("No selector can run on this model.")
        return
    _unavailable_note(model, model_name, names)
    st.session_state.setdefault("pl_text", examples[0]["text"])
    _state_from_url(names, L)
    ignored = st.session_state.pop("pl_url_ignored", None)  # said once, on the page the link opened
    if ignored:
        st.caption("This link's " + "; ".join(ignored) + ": ignored (or brought into range).")
    _init_widgets(names, L)
    ss = st.session_state
    if ss.pop("pl_submitted", False) or "pl_run" not in ss:
        values = {k: ss[f"w_{k}"] for k in ("selector", "compare", "retention", "start_layer", "seed", "regime")}
        values.update(retention=float(values["retention"]), start_layer=int(values["start_layer"]), seed=int(values["seed"]))
        ss["pl_text"] = ss["w_text"]
        ss["pl_form"] = values
        new = {"text": ss["w_text"], **values, "model": model_name}
        old = ss.get("pl_run", {})
        # a new run's widgets start from their defaults (their keys carry the run's id); Run on the same text and
        # settings keeps the id, so that the page redraws the same elements (nothing is rebuilt in the browser)
        same = {k: v for k, v in old.items() if k != "id"} == new
        ss["pl_run"] = {**new, "id": old.get("id", 0) + (0 if same else 1)}
        _state_to_url(ss["pl_run"])
    run = ss["pl_run"]
    # every pass of the Run before anything below is drawn: a browser on the same cores draws the page after the
    # passes, not during them (docs/architecture: the app's overhead)
    results = _compute(model, model_name, run, settings) if run["model"] == model_name else None

    chosen_example = next((e for e in examples if e["title"] == st.session_state.get("w_example")), None)
    if chosen_example is not None and chosen_example["text"] != st.session_state.get("w_text"):
        st.session_state["w_example"] = None  # the text is no longer that example
    st.selectbox("Load an example", [e["title"] for e in examples], index=None, key="w_example",
                 placeholder="Choose an example text…", on_change=_on_example,
                 help="Puts one of the example texts into the text box (SST-2 dev sentences, IMDB reviews). Each "
                      "comes with something to try.")
    tip = next((e.get("try") for e in examples if e["text"] == st.session_state.get("w_text")), None)
    if tip:
        st.caption(f"What to try with this example: {tip}")

    with st.form("run-form"):
        st.text_area("Text", key="w_text", height=150,
                     help=f"Any text. Longer than {min(settings.max_tokens, model.max_length)} tokens is truncated, "
                          "with a notice.")
        c1, c2 = st.columns(2)
        c1.selectbox("Selector", names, format_func=selector_label, key="w_selector", help=_selector_help())
        c2.selectbox("Compare with", names, format_func=selector_label, key="w_compare", help=COMPARE_HELP)
        c3, c4, c5 = st.columns([2, 2, 3])
        c3.slider("Final retention ratio ρ", 0.05, 1.0, step=0.05, key="w_retention", help=RETENTION_HELP)
        c4.slider("Start layer s", 1, max(2, L - 1), key="w_start_layer", help=START_HELP, disabled=L < 3)
        c5.radio("Model each selector runs on", REGIMES, key="w_regime", horizontal=True,
                 format_func=functools.partial(_regime_name, head=model.inference_head),
                 help=REGIME_HELP)
        with st.expander("More settings"):
            st.number_input("Seed (random selector)", 0, 2**32 - 1, key="w_seed",
                            help="Seed of the random selector's draw; the same seed gives the same trace.")
        st.caption("The link in the address bar reopens this view (text and settings) after Run.")
        st.form_submit_button("Run", type="primary", on_click=_on_run)

    if results is None:
        st.info("The model changed: press Run to trace the text with it.")
        return
    _results(model, model_name, run, results, t_start)


def _unavailable_note(model, model_name: str, names: list[str]) -> None:
    """In the sidebar: the selectors that do not run on this model, and why."""
    missing = [n for n in SELECTORS if n not in names]
    if not missing:
        return
    with st.sidebar.expander(f"Not available on this model ({len(missing)})"):
        for name in missing:
            st.markdown(f"**{selector_label(name, True)}**: {why_unavailable(model, name, model_name, 'inference')}")


def _runs(model, model_name: str, run: dict) -> tuple[tuple[str, str], tuple[str, str], list[str]]:
    """``((selector, regime) chosen, (selector, regime) compared, notices)``: each in the regime it is shown in
    (:func:`pyramid.plan.shown_regime`, cached)."""
    chosen = (run["selector"], run["regime"])
    other = (run["compare"], run["regime"] if run["compare"] != run["selector"] else _other(run["regime"]))
    out, notes = [], []
    for sel, regime in (chosen, other):
        regime, note = shown_regime_for(model, model_name, sel, regime)
        out.append((sel, regime))
        notes += [note] if note else []
    return out[0], out[1], notes


@dataclass
class RunResults:
    """Everything a Run shows before the user opens anything, computed before the page draws it
    (:func:`_compute`): the tokenization, the two runs' traces (each with the prediction of its own pass) and the
    prediction table's answers. ``warning`` (an empty text) or ``error`` (a selector that could not run) end the
    page early."""

    max_tokens: int
    tokenized: TokenizedText | None = None
    warning: str | None = None
    error: str | None = None
    runs: tuple = ()
    notes: list[str] = field(default_factory=list)
    traces: dict = field(default_factory=dict)
    full: Prediction | None = None
    regimes: list[str] = field(default_factory=list)
    predictions: dict = field(default_factory=dict)
    every: bool = False


def _compute(model, model_name: str, run: dict, settings, *, every: bool | None = None,
             progress: bool = True) -> RunResults:
    """Every encoder pass a Run shows by default: the chosen and the compared run's traces, the full-length answer
    and the prediction table's other-regime answers (``every``: every selector's, as the table's toggle asks;
    default: the toggle's state). Each comes from the shared caches when already computed. With ``progress``, a
    caption says when the Run waits behind other users' computations (spinners appear after 0.5 s)."""
    res = RunResults(max_tokens=min(settings.max_tokens, model.max_length))
    try:
        res.tokenized = tokenize_cached(model, model_name, run["text"], res.max_tokens)
    except EmptyTextError as exc:
        res.warning = str(exc)
        return res
    chosen, compared, res.notes = _runs(model, model_name, run)
    res.runs = (chosen, compared)
    args = run_args(run, res.max_tokens)
    queued = torch_thread().pending if progress else 0
    if queued:  # overload is visible: the Run waits behind the others' passes
        st.caption(f"The server is busy: {queued} computation{'s' if queued > 1 else ''} of other users "
                   "ahead of this Run; it starts when they are done.")
    try:
        with (st.spinner("Running the pyramid encoder…" if not queued else
                         f"Waiting behind {queued} computation{'s' if queued > 1 else ''}, then running the pyramid "
                         "encoder…") if progress else contextlib.nullcontext()):
            for sel, reg in (chosen, compared):
                res.traces[(sel, reg)] = trace_for(model, model_name, run["text"], sel, reg, *args, res.tokenized)
            ids, sched = tuple(res.tokenized.input_ids), args[:3]
            res.full = prediction_for(model, model_name, ids, None, "inference", *sched)  # the model caches it
            if res.full is None:
                return res
            res.every = bool(st.session_state.get("w_pred_all", False)) if every is None else every
            shown = list(dict.fromkeys(sel for sel, _ in res.traces))
            names = selectors_for(model, model_name, "inference") if res.every else shown
            res.regimes = [r for r in REGIMES if r == "inference" or selectors_for(model, model_name, r)]
            for name in names:
                for regime in res.regimes:
                    res.predictions[(name, regime)] = _prediction_of(model, model_name, ids, name, regime, sched,
                                                                     res.traces)
    except (ScheduleError, HeadLoadError, ValueError) as exc:
        res.error = f"Could not run this selector: {exc}"
    return res


def _results(model, model_name: str, run: dict, res: RunResults, t_start: float) -> None:
    """Everything below the form, for the run in session state, drawn from its computed results."""
    if res.warning is not None:
        st.warning(res.warning)
        return
    tokenized, max_tokens = res.tokenized, res.max_tokens
    if tokenized.truncated:
        st.warning(f"This text has {tokenized.original_length} tokens; the model reads at most {max_tokens}, so only "
                   f"the first {max_tokens} are traced (the rest is cut).")
    for note in res.notes:
        st.warning(note)
    if res.error is not None:
        st.error(res.error)
        return
    (sel_a, reg_a), (sel_b, reg_b) = res.runs
    trace, other = res.traces[(sel_a, reg_a)], res.traces[(sel_b, reg_b)]
    name_a, name_b = figures.run_name(sel_a, reg_a), figures.run_name(sel_b, reg_b)
    notice = SELECTORS[sel_a].notice(model.selector(sel_a, reg_a), model.num_layers)  # the regime's weights: their head
    if notice:
        st.info(notice)

    flops = trace_flops(trace, model.config)
    n_words = len(trace_groups(trace, True))
    m1, m2, m3, m4 = st.columns(4)
    m1.metric("Tokens", trace.n_tokens, help=f"Word pieces including [CLS] and [SEP] ({n_words} words and special "
                                             "tokens).")
    m2.metric("Entering the last layer", len(trace.layers[-1].alive), help="Tokens that reach the last layer.")
    m3.metric("FLOPs speedup", f"{flops.speedup:.2f}x",
              help=f"Analytic FLOPs of the full encoder over this run's, counting the selector's own cost (encoder "
                   f"alone: {flops.encoder_speedup:.2f}x). docs/methods.md 0.3.")
    answered = m4.empty()

    predictions = st.container()  # filled after the panels (its answers are computed already)
    _model_cards(model, ((sel_a, reg_a), (sel_b, reg_b)))

    words = st.toggle("Words, not word pieces", key="w_words", on_change=_on_words,
                      help="Group word pieces into the words they come from (the tokenizer's word ids): a word is kept "
                           "at a layer if any of its pieces is.")
    groups_a, groups_b = trace_groups(trace, words), trace_groups(other, words)
    caption = figures.schedule_caption(trace, sel_a, reg_a)
    tabs = st.tabs(["Kept tokens per layer", "Coverage radius", "Embeddings", "Compare", "Every method"], key="pl_tab",
                   on_change="rerun")
    rid = run["id"]  # widgets of a run start from their defaults on a new run
    with tabs[0]:
        if tabs[0].open:
            panels.pyramid_panel(trace, groups_a, caption, key=f"pyr-{rid}")
            _scrub(model, model_name, run, res, sel_a, reg_a, trace, groups_a, key=f"scrub-{rid}")
    with tabs[1]:
        if tabs[1].open:
            runs = {name_a: trace, name_b: other}
            if st.checkbox("Every selector (same regime)", key=f"cov-all-{rid}",
                           help="Add every other selector's run of this text to the chart (computed on demand)."):
                with st.spinner("Tracing the other selectors…"):
                    for name in selectors_for(model, model_name, reg_a):
                        label = figures.run_name(name, reg_a)
                        if label not in runs:
                            try:
                                runs[label] = trace_for(model, model_name, run["text"], name, reg_a,
                                                        *run_args(run, max_tokens), tokenized)
                            except (HeadLoadError, ValueError):
                                continue
            panels.coverage_panel(runs, name_a, {name_a: groups_a, name_b: groups_b,
                                                 **{n: trace_groups(t, words) for n, t in runs.items()
                                                    if n not in (name_a, name_b)}}, key=f"cov-{rid}")
    with tabs[2]:
        if tabs[2].open:
            warm = umap_warmup_thread()
            if warm.is_alive():
                with st.spinner("Preparing UMAP (compiled once per machine, then loaded from numba's disk cache)…"):
                    warm.wait()
            with st.spinner("Projecting every token's state at every layer with UMAP…"):
                key = (model_name, run["text"], sel_a, reg_a, run["retention"], run["start_layer"], run["seed"])
                projection = projection_for(trace, key)
            panels.embedding_panel(trace, projection, key=f"emb-{rid}")
    with tabs[3]:
        if tabs[3].open:
            if (sel_a, reg_a) == (sel_b, reg_b):
                st.info("Both runs are the same; choose another selector to compare (the same selector compares its "
                        "two regimes when its Train-Select model is installed).")
            else:
                panels.compare_panel(trace, other, name_a, name_b, groups_a, groups_b, key=f"cmp-{rid}")
    with tabs[4]:
        if tabs[4].open:
            _every_method(model, model_name, run, res, reg_a, trace, words, key=f"all-{rid}")
    panels.downloads_panel(trace, groups_a, words, lambda: figures.coverage_figure({name_a: trace, name_b: other}, name_a),
                           _download_name(run), key=f"dl-{rid}")
    encoder_ms = 1000 * sum(lt.layer_seconds + lt.selection_seconds for lt in trace.layers)
    with predictions:
        _predictions(model, model_name, run, res)
    answered.metric("Answered in", f"{time.perf_counter() - t_start:.2f} s",
                    help=f"Server time of this whole run, from the request to the last panel drawn (the chosen run's "
                         f"encoder itself: {encoder_ms:.0f} ms when it was computed; repeated runs come from the cache).")
    umap_warmup_thread()  # UMAP's one-time compile, after the first answer so that it never delays one


def _every_method(model, model_name: str, run: dict, res: RunResults, regime: str, trace, words: bool, *,
                  key: str) -> None:
    """The Every method tab: one trace per selector that runs here in the chosen run's regime (from the shared
    cache: the shown runs are there already), the full-length classifier's saliency, drawn as one chart."""
    names = selectors_for(model, model_name, regime)
    traces, unavailable = {}, {}
    with st.spinner("Tracing every selector on this text…"):
        for name in names:
            try:
                traces[selector_label(name, True)] = trace_for(model, model_name, run["text"], name, regime,
                                                               *run_args(run, res.max_tokens), res.tokenized)
            except (HeadLoadError, ValueError) as exc:
                unavailable[name] = str(exc)
        head = model.inference_head
        saliency = None
        if head is not None:
            try:
                saliency = grad_x_input_for(model, model_name, head, tuple(res.tokenized.input_ids))
            except HeadLoadError:
                saliency = None
    for name in SELECTORS:
        if name not in names and name not in unavailable:
            unavailable[name] = why_unavailable(model, name, model_name, regime) or "not offered in this regime"
    sv = survival(traces, trace_groups(trace, words), saliency=saliency)
    panels.survival_panel(sv, figures.REGIME_NAMES.get(regime, regime), unavailable, figures.LABEL_LIMIT, key=key,
                          on_open=_open_as_main)


def _scrub(model, model_name: str, run: dict, res: RunResults, selector: str, regime: str, trace, groups, *,
           key: str) -> None:
    """The ρ slider: the chosen selector's pyramid at every retention from 0.05 to 1.0, computed once per text and
    selector when asked, then scrubbed in the browser."""
    if not SELECTORS[selector].uses_retention:
        return
    if not st.toggle("Scrub ρ: this selector's pyramid at every retention", key=f"{key}-on",
                     help="Traces the text at ρ = 0.05, 0.10, ..., 1.0 (one pass each, once per text and selector); "
                          "the slider under the chart then redraws it in the browser, without a round trip."):
        return
    with st.spinner("Tracing every retention from 0.05 to 1.0…"):
        frames = scrub_for(model, model_name, tuple(res.tokenized.input_ids), selector, regime, int(run["start_layer"]),
                           int(run["seed"]))
    st.plotly_chart(figures.scrub_figure(frames, trace.n_tokens, groups, figures.run_name(selector, regime),
                                         run["retention"]), key=f"{key}-fig", width="stretch")
    st.caption("Drag the slider (or click a value): the chart changes in the browser. Colours as in the strip above; "
               f"start layer {run['start_layer']}.")


def _open_as_main(selector: str) -> None:
    """The Every method tab's Open button (a callback, before the rerun): ``selector`` becomes the chosen run, on the
    same text and settings, and the page shows its pyramid."""
    ss = st.session_state
    ss["w_selector"] = selector
    ss["w_text"] = ss.get("pl_text", ss.get("w_text", ""))
    ss["pl_tab"] = "Kept tokens per layer"
    ss["pl_submitted"] = True


def run_args(run: dict, max_tokens: int) -> tuple:
    """The schedule and seed arguments of :func:`trace_for` for a run."""
    return run["retention"], run["start_layer"], run["seed"], max_tokens


def _prediction_of(model, model_name: str, ids: tuple[int, ...], name: str, regime: str, sched: tuple,
                   traces: dict):
    """One cell of the prediction table: from the run's own trace when it is shown, else one pass (None when the
    selector has no model in this regime)."""
    if (name, regime) in traces:
        return traces[(name, regime)].prediction
    if why_unavailable(model, name, model_name, regime) is None:
        return prediction_for(model, model_name, ids, name, regime, *sched)
    return None


def _predictions(model, model_name: str, run: dict, res: RunResults) -> None:
    """The predictions: full length, and the selectors shown in both regimes (or every selector), each with
    its label, the label's probability and the most probable classes, from the Run's computed answers (the shown
    runs' from their own traces; the others one pass each, computed when the toggle asks for them)."""
    with st.expander("Prediction", expanded=True):
        st.toggle("Every selector", key="w_pred_all", help="Predictions of every selector, not only the two shown "
                                                           "(computed on demand).")
        full = res.full
        if full is None:
            st.info(f"No prediction: '{model_name}' is a plain encoder with no classifier trained on it (a "
                    "fine-tuned classifier checkpoint in the model cache predicts with its own head).")
            return
        regimes = res.regimes
        rows = [{"run": f"full length, no selection ({model.describe_head()})",
                 **panels.prediction_cells(full, "inference-only", full=True),
                 **{k: v for r in regimes[1:]
                    for k, v in panels.prediction_cells(None, panels.REGIME_COLUMN[r], blank=True).items()}}]
        for name in dict.fromkeys(name for name, _ in res.predictions):
            row = {"run": ("▶ " if name == run["selector"] else "") + selector_label(name)}
            for regime in regimes:
                row.update(panels.prediction_cells(res.predictions[(name, regime)], panels.REGIME_COLUMN[regime]))
            rows.append(row)
        panels.prediction_panel(rows, full.labels, model.describe_head(), multi_label=full.multi_label, key="pred")


def first_run(model, model_name: str) -> dict:
    """The run a new visitor's page shows before any Run: the first example text with the form's defaults
    (the first two selectors, ``FORM_DEFAULTS``), as :func:`render` builds it."""
    names = selectors_for(model, model_name, "inference")
    form = {"selector": names[0], "compare": names[min(1, len(names) - 1)], **FORM_DEFAULTS}
    form["start_layer"] = int(min(max(1, model.num_layers - 1), form["start_layer"]))
    return {"text": load_examples()[0]["text"], **form, "retention": float(form["retention"]),
            "seed": int(form["seed"]), "model": model_name, "id": 1}


def precompute(model, model_name: str, run: dict, settings) -> RunResults:
    """Every computation the page makes to show ``run`` with its default tabs (tokens, the two traces, the
    prediction table's passes), without drawing anything: the server's warm-up (:mod:`app.warmup`) puts the
    first page's answer into the shared caches before the first visitor asks for it. An empty text or a selector
    that cannot run is reported in the result (``warning``, ``error``), as the page would show it."""
    return _compute(model, model_name, run, settings, every=False, progress=False)


def _model_cards(model, runs) -> None:
    """The model cards of what the shown runs ran with: how each was trained, its figures, its deviations."""
    cards = list(dict.fromkeys(card for sel, regime in runs for card in model.model_cards(model.plan(sel, regime))))
    if not cards:
        return
    box = st.expander("How these models were trained (model cards: data, settings, command, deviations)",
                      key="pl_cards", on_change="rerun")
    if not box.open:  # drawn only when opened: a Run does not pay for cards nobody reads
        return
    with box:
        tabs = st.tabs([title for title, _ in cards])
        for tab, (_, path) in zip(tabs, cards):
            # the card's headings three levels down, so that they read as parts of this expander
            tab.markdown(re.sub(r"^(#{1,3}) ", r"###\1 ", path.read_text(encoding="utf-8"), flags=re.M))


def _download_name(run: dict) -> str:
    """A file-name stem for the downloads: selector, regime and schedule."""
    return f"pyramid-lens_{run['selector']}_{run['regime']}_rho{run['retention']:.2f}_s{run['start_layer']}"
