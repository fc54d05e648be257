"""The Saliency page: which tokens matter for the prediction, and does each selector keep them?"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from pyramid.classifier import DEFAULT_HEAD, HeadLoadError
from pyramid.loading import DEFAULT_MODEL, ModelLoadError
from pyramid.selectors import SELECTORS, selector_label
from pyramid.trace import EmptyTextError

from . import figures
from .resources import get_classifier, get_encoder, saliency_for, tokenize_cached, traces_for_classifier
from .settings import load_settings

EXPLAIN = """
**What each row measures**

* **gradient × input** (AdapLeR's saliency target, docs/methods.md 2.2): how much the logit of the predicted
  class would move if a token's embedding were scaled, i.e. the gradient times the embedding, as an
  L2 norm over the hidden size. Local: it describes the model's slope at this input.
* **integrated gradients**: the same idea integrated along a straight path from a baseline (the text with
  every word replaced by [PAD]) to the text, 20 steps. Its attributions add up to the logit's change.
* **gradient norm**: only the slope, without the input; often noisier.
* **significance Lj** (PoWER-BERT): how much attention a token receives at layer j, averaged over heads.
* **rollout** (Abnar and Zuidema, 2020): attention multiplied through the layers, read from [CLS].
* **AdapLeR CPl** (docs/methods.md 2.3): what AdapLeR's contribution predictor l, a small network trained
  to imitate gradient × input, predicts for the tokens entering layer l+1 (here on the full-length
  states). At inference a token stays if this score is at least eta/n. It is a cheap *prediction* of
  saliency, so it is only as good as its agreement with the gradient rows.

Attention weights show where the model looks, **not why it decides**: a token can receive much
attention and barely change the prediction (Jain and Wallace, 2019; Wiegreffe and Pinter, 2019).
Rows are scaled to sum to 1 so that they share one colour scale.
"""


def render() -> None:
    """Draw the Saliency page."""
    settings = load_settings()
    st.title("Pyramid Lens · saliency")
    st.caption("Which tokens matter for the sentiment head's prediction, by gradient saliency (captum) and by "
               "attention, and whether each selector keeps the most salient tokens.")
    try:
        encoder = get_encoder(DEFAULT_MODEL, settings.allow_custom_models)
        classifier = get_classifier(encoder, DEFAULT_MODEL, DEFAULT_HEAD)
    except (ModelLoadError, HeadLoadError) as exc:
        st.error(f"The saliency lab needs the sentiment head {DEFAULT_HEAD}: {exc}")
        return
    if "sal_text" not in st.session_state:
        st.session_state["sal_text"] = st.session_state.get("text") or "it 's a charming and often affecting journey ."
    with st.form("sal-form"):
        text = st.text_area("Text", key="sal_text", height=110)
        c1, c2, c3 = st.columns(3)
        retention = c1.slider("Final retention ratio ρ", 0.05, 1.0, 0.3, 0.05, key="sal_retention",
                              help="Schedule of the fixed-length selectors compared against the salient "
                                   "tokens (AdapLeR and TR-BERT set their own lengths).")
        k = c2.slider("Top-k salient tokens", 1, 20, 5, key="sal_k",
                      help="How many of the most salient tokens (gradient × input) to follow.")
        steps = c3.select_slider("IG steps", [10, 20, 50], 20, key="sal_steps",
                                 help="Integrated Gradients steps: more is more exact and slower.")
        st.form_submit_button("Run", type="primary")
    max_tokens = min(settings.max_tokens, encoder.max_length)
    try:
        tokenized = tokenize_cached(encoder, DEFAULT_MODEL, text, max_tokens)
    except EmptyTextError as exc:
        st.warning(str(exc))
        return
    if tokenized.truncated:
        st.warning(f"This text has {tokenized.original_length} tokens; only the first {max_tokens} are analysed.")
    with st.spinner("Computing gradient saliency, integrated gradients and attention…"):
        report = saliency_for(classifier, DEFAULT_HEAD, tuple(tokenized.input_ids), int(k), int(steps))
    st.markdown(f"Prediction explained: **{report.label}** (the class whose logit is attributed).")
    st.plotly_chart(figures.saliency_heatmap(report.tokens, report.rows, "Token importance by method"),
                    key="sal-heat", width="content")
    with st.expander("What the rows measure", expanded=False):
        st.markdown(EXPLAIN)

    traces = traces_for_classifier(classifier, DEFAULT_HEAD, tuple(tokenized.input_ids), float(retention))
    from pyramid.attribution import kept_top_k

    salient = report.rows["grad_x_input"]
    table = pd.DataFrame([
        {"selector": SELECTORS[name].label,
         **{f"after L{j}": round(v, 2) for j, v in enumerate(kept_top_k(tr, salient, report.k), start=1)}}
        for name, tr in traces.items()
    ])
    st.subheader(f"Does each selector keep the top-{report.k} salient tokens?")
    st.dataframe(table, hide_index=True, width="stretch", key="sal-kept")
    st.caption(f"Share of the {report.k} tokens with the highest gradient × input saliency that are still kept "
               f"after each layer, ρ = {retention:.2f}, start layer 1 (1.0 = all kept).")

    names = list(report.rows)
    left, right = st.columns(2)
    left.plotly_chart(figures.matrix_figure(names, report.spearman, "Spearman rank correlation", -1.0, 1.0),
                      key="sal-rho", width="stretch")
    right.plotly_chart(figures.matrix_figure(names, report.overlap, f"Top-{report.k} overlap", 0.0, 1.0),
                       key="sal-overlap", width="stretch")
    st.caption("Left: how similarly two methods rank all tokens (1 = same order). Right: the share of one "
               "method's top-k tokens that the other also ranks in its top-k.")

    _data_set_report()


def _data_set_report() -> None:
    """The shipped SST-2-dev-wide report (``saliency-report --out``), when present."""
    from pyramid.results import RESULTS_DIR, load_saliency_report

    rows, meta = load_saliency_report(RESULTS_DIR)
    if not rows:
        return
    st.subheader("Over all of SST-2 dev")
    spear = [r for r in rows if r["kind"] == "score_spearman"]
    if spear:
        st.markdown("Mean Spearman correlation between each learned selector's own token scores (on the full-length "
                    "states) and gradient × input saliency of the gold class:")
        st.dataframe(pd.DataFrame([{"selector": selector_label(r["selector"]), "layer": r["layer"],
                                    "mean Spearman": round(r["value"], 3), "texts": r["n"]} for r in spear]),
                     hide_index=True, key="sal-ds-cp")
    kept = [r for r in rows if r["kind"].startswith("top")]
    if kept:
        table = pd.DataFrame(kept).pivot(index="selector", columns="layer", values="value")
        table.columns = [f"after L{c}" for c in table.columns]
        table.index = [SELECTORS[n].label if n in SELECTORS else n for n in table.index]
        st.markdown(f"Mean share of each text's {kept[0]['kind'][3:].split('_')[0]} most salient tokens kept after "
                    f"each layer ({kept[0]['n']} texts; fixed-length selectors at ρ = "
                    f"{meta.get('retention', '?')}):")
        st.dataframe(table.round(3), key="sal-ds-kept")
    if meta.get("command"):
        st.caption("Made by:")
        st.code(meta["command"], language="bash")
