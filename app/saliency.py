"""The Saliency page: which tokens matter for the prediction, and does each selector keep them?"""

from __future__ import annotations

import pandas as pd
import streamlit as st
import torch

from pyramid.analysis.attribution import normalise, order_by_agreement, scale_to_row_max
from pyramid.classifier import HeadLoadError
from pyramid.analysis.faithfulness import REFERENCE_LABELS
from pyramid.core.selectors import SELECTORS, selector_label
from pyramid.tokenization import EmptyTextError
from pyramid.words import word_groups

from pyramid.present import figures
from .model_menu import load_chosen_model
from .resources import (faithfulness_for, on_torch, prediction_for, saliency_for, tokenize_cached,
                        traces_for_classifier)
from .settings import load_settings

EXPLAIN = """
**What each row measures**

* **gradient × input** (AdapLeR's saliency target, docs/methods.md 2.2): how much the logit of the predicted
  class would move if a token's embedding were scaled, i.e. the gradient times the embedding, as an
  L2 norm over the hidden size. Local: it describes the model's slope at this input.
* **integrated gradients**: the same idea integrated along a straight path from a baseline (the text with
  every word replaced by [PAD]) to the text, 20 steps. Its attributions add up to the logit's change.
* **gradient norm**: only the slope, without the input; often noisier.
* **significance Lj** (PoWER-BERT): how much attention a token receives from the other tokens at layer j,
  averaged over heads (docs/methods.md 5.1).
* **rollout** (Abnar and Zuidema, 2020): attention multiplied through the layers, read from [CLS].
* **AdapLeR CPl** (docs/methods.md 2.3): what AdapLeR's contribution predictor l, a small network trained
  to imitate gradient × input, predicts for the tokens entering layer l+1 (here on the full-length
  states). At inference a token stays if this score is at least η/n (η learned per layer, n the tokens
  alive). It is a cheap *prediction* of saliency, so it is only as good as its agreement with the gradient rows.
* **TR-BERT π after Lj**: the probability TR-BERT's policy gives a token of staying after layer j (kept
  if π ≥ 0.5).
* **LTP score after Lj**: the attention the token receives, divided by a reference length; kept if it
  reaches LTP's learned threshold for layer j.

Attention weights show where the model looks, **not why it decides**: a token can receive much
attention and barely change the prediction (Jain and Wallace, 2019; Wiegreffe and Pinter, 2019).
Each row is drawn on its own scale (its largest word = 1), so colours compare words within a row, not
methods with each other; the agreement matrices below compare methods.
"""


PREDICTED = "(the predicted class)"
DEFAULT_HEAD_OF_REPORT = "sst2-lora"
"""The head the shipped SST-2-dev-wide report (``saliency-report --out``) was made with."""

ROW_NAMES = {"grad_x_input": "gradient × input", "integrated_gradients": "integrated gradients",
             "gradient": "gradient norm", "rollout": "attention rollout"}


def _row_name(name: str) -> str:
    """A method's row name as people read it (significance Lj, AdapLeR CPl, ... keep theirs)."""
    return ROW_NAMES.get(name, name)


def _default_matrix_rows(report) -> list[str]:
    """At most ~10 methods for the agreement matrices: the gradient methods, rollout, the first and last
    layer's significance, and each learned selector's last score row."""
    names = list(report.rows)
    keep = [n for n in ("grad_x_input", "integrated_gradients", "gradient", "rollout") if n in names]
    sig = [n for n in names if n.startswith("significance")]
    return keep + sig[:1] + sig[-1:] + [rows[-1] for rows in report.learned_rows.values()]


def render() -> None:
    """Draw the Saliency page."""
    settings = load_settings()
    st.title("Pyramid Lens · saliency")
    st.caption("Which tokens matter for the classifier's prediction, by gradient saliency (captum) and by "
               "attention, and whether each selector keeps the most salient tokens. It runs on the model chosen in "
               "the sidebar (the same as the explorer's).")
    model = load_chosen_model(settings)
    if model is None:
        return
    model_name, head = model.name, model.inference_head
    if head is None:
        st.info(f"'{model_name}' is a plain encoder with no classifier trained on it, so there is no prediction to "
                "explain. Choose the default model, or put a fine-tuned classifier checkpoint in the model cache.")
        return
    try:
        labels = on_torch(model.classifier, head).labels
    except HeadLoadError as exc:
        st.error(f"Could not load the classifier of '{model_name}': {exc}")
        return
    ss = st.session_state
    explorer_run = ss.get("pl_run")
    # Start from the explorer's text, and follow it whenever the explorer ran a new one.
    if explorer_run is not None and ss.get("pl_sal_source") != explorer_run.get("id"):
        ss["pl_sal_source"] = explorer_run.get("id")
        ss["pl_sal_text"] = explorer_run["text"]
        ss.pop("w_sal_text", None)
    ss.setdefault("pl_sal_text", "it 's a charming and often affecting journey .")
    ss.setdefault("w_sal_text", ss["pl_sal_text"])
    with st.form("sal-form"):
        st.text_area("Text", key="w_sal_text", height=110,
                     help="Starts from the explorer's text; edit it and press Run to analyse another.")
        c1, c2, c3 = st.columns(3)
        retention = c1.slider("Final retention ratio ρ", 0.05, 1.0, 0.3, 0.05, key="sal_retention",
                              help="Schedule of the fixed-length selectors compared against the salient "
                                   "tokens (the learned selectors set their own lengths).")
        k = c2.slider("Top-k salient tokens", 1, 20, 5, key="sal_k",
                      help="How many of the most salient tokens (gradient × input) to follow.")
        steps = c3.select_slider("IG steps", [10, 20, 50], 20, key="sal_steps",
                                 help="Integrated Gradients steps: more is more exact and slower.")
        options = [PREDICTED] + labels
        if ss.get("sal_target") not in options:  # a new model, with other labels
            ss["sal_target"] = PREDICTED
        st.selectbox("Class to explain", options, key="sal_target",
                     help="The gradient methods attribute this class's logit; by default the class the model predicts "
                          "for the text at full length.")
        if st.form_submit_button("Run", type="primary"):
            ss["pl_sal_text"] = ss["w_sal_text"]
    text = ss["pl_sal_text"]
    max_tokens = min(settings.max_tokens, model.max_length)
    try:
        tokenized = tokenize_cached(model, model_name, text, max_tokens)
    except EmptyTextError as exc:
        st.warning(str(exc))
        return
    if tokenized.truncated:
        st.warning(f"This text has {tokenized.original_length} tokens; only the first {max_tokens} are analysed.")
    target = labels.index(ss["sal_target"]) if ss.get("sal_target") in labels else None
    ids = tuple(tokenized.input_ids)
    with st.spinner("Computing gradient saliency, integrated gradients and attention…"):
        report = saliency_for(model, model_name, head, ids, int(k), int(steps), target)
    full = prediction_for(model, model_name, ids, None, "inference", 1.0, 1, 0)
    predicted = ""
    if full is not None:
        top = " · ".join(f"{label} {p:.2f}" for label, p in full.top(3, full=True))
        predicted = f" The model predicts **{full.full_label}** at full length ({top})."
    how = "the class picked above" if target is not None else "the predicted class"
    st.markdown(f"Class explained: **{report.label}** ({how}, whose logit is attributed).{predicted}")
    words = st.toggle("Words, not word pieces", key="w_sal_words", value=ss.get("pl_words", False),
                      help="Sum each word's pieces (the tokenizer's word ids).")
    groups = word_groups(tokenized.tokens, tokenized.word_ids, tokenized.words) if words else \
        word_groups(tokenized.tokens, [], [])
    shares = {}
    for name, row in report.rows.items():  # each method's share per word (summed pieces), on one scale
        shares[_row_name(name)] = normalise(torch.tensor(groups.sum(row.tolist()))).tolist()
    special = [len(m) == 1 and tokenized.word_ids[m[0]] is None for m in groups.members] if tokenized.word_ids else \
        [t in {"[CLS]", "[SEP]", "<s>", "</s>"} for t in groups.labels]
    unit = "word" if words else "token"
    c1, c2 = st.columns([2, 3])
    by_agreement = c1.toggle("Order rows by agreement with gradient × input", key="w_sal_order",
                             help="Gradient × input first, then the methods whose ranking of the words is closest to "
                                  "it (Spearman over the text's words), the least agreeing last.")
    order = order_by_agreement(shares, _row_name("grad_x_input"), special) if by_agreement else list(shares)
    scaled = scale_to_row_max({n: shares[n] for n in order}, special)
    n = len(groups)
    window = None
    if n > figures.LABEL_LIMIT:
        start = c2.slider(f"Readable window from {unit}", 1, n - figures.LABEL_LIMIT + 1, 1, step=10, key="w_sal_window",
                          help=f"The chart shows {figures.LABEL_LIMIT} {unit}s at a time with their text; slide along "
                               "the text.")
        window = (start - 1, start - 1 + figures.LABEL_LIMIT)
    st.plotly_chart(figures.saliency_heatmap(groups.labels, scaled, f"Importance of each {unit}, by method",
                                             window, raw=shares), key="sal-heat", width="stretch")
    st.caption(f"Each row on its own scale: 1.0 (darkest) is that method's most important {unit} of this text, "
               "[CLS] and [SEP] apart (blank), so that a method that puts most of its mass on [CLS] (attention) still "
               "shows how it ranks the words. Hover gives each cell's share of its row (all cells summing to 1).")
    with st.expander("What the rows measure", expanded=False):
        st.markdown(EXPLAIN)

    traces = traces_for_classifier(model, model_name, head, ids, float(retention))
    from pyramid.analysis.attribution import kept_top_k

    salient = report.rows["grad_x_input"]
    table = pd.DataFrame([
        {"selector": SELECTORS[name].label,
         **{f"after layer {j}": round(v, 2) for j, v in enumerate(kept_top_k(tr, salient, report.k), start=1)}}
        for name, tr in traces.items()
    ])
    st.subheader(f"Does each selector keep the {report.k} most salient tokens?")
    st.dataframe(table, hide_index=True, width="stretch", key="sal-kept")
    st.caption(f"Share of the {report.k} tokens with the highest gradient × input saliency that are still kept after "
               f"each layer, ρ = {retention:.2f}, start layer 1 (1.0 = all kept), on {model.describe_head()} of "
               f"`{model_name}`.")

    _faithfulness_table(model, model_name, head, ids, float(retention), report, traces)

    names = list(report.rows)
    chosen = st.multiselect("Methods in the agreement matrices", names, default=_default_matrix_rows(report),
                            format_func=_row_name, key="sal_matrix_rows",
                            help="Pick the methods to compare pairwise; numbers are written in the cells up to "
                                 f"{figures.MATRIX_TEXT_LIMIT} methods (hover shows them beyond).")
    if len(chosen) >= 2:
        idx = [names.index(n) for n in chosen]
        labels = [_row_name(n) for n in chosen]
        rho = report.spearman[idx][:, idx]
        overlap = report.overlap[idx][:, idx]
        left, right = st.columns(2)
        left.plotly_chart(figures.matrix_figure(labels, rho, "Spearman rank correlation", -1.0, 1.0, "Spearman ρ"),
                          key="sal-rho", width="stretch")
        right.plotly_chart(figures.matrix_figure(labels, overlap, f"Top-{report.k} overlap", 0.0, 1.0, "overlap"),
                           key="sal-overlap", width="stretch")
        st.caption("Left: how similarly two methods rank all tokens (1 = same order; Spearman). Right: the share of "
                   "one method's top-k tokens that the other also ranks in its top-k.")
    if model.inference_head == DEFAULT_HEAD_OF_REPORT:
        _data_set_report()


def _faithfulness_table(model, model_name: str, head: str, ids: tuple, retention: float, report, traces) -> None:
    """Is each selector's kept set faithful? ERASER's comprehensiveness and sufficiency of the tokens each selector
    keeps to the last layer, beside same-size sets of the saliency methods and a random one."""
    saliency = {k: report.rows[k].tolist() for k in ("grad_x_input", "integrated_gradients") if k in report.rows}
    with st.spinner("Deleting each kept set from the text, and keeping only it…"):
        tf = faithfulness_for(model, model_name, head, ids, retention, int(report.target), traces, saliency)

    def pts(x: float) -> float:
        return round(100 * x, 1)

    rows = []
    for name, (comp, suff) in tf.selectors.items():
        refs = tf.references.get(name, {})
        row = {"selector": SELECTORS[name].label, "kept to the end": tf.sizes[name],
               "comprehensiveness": pts(comp), "sufficiency": pts(suff)}
        for ref, label in REFERENCE_LABELS.items():
            if ref in refs:
                row[f"{label}: comp."] = pts(refs[ref][0])
                row[f"{label}: suff."] = pts(refs[ref][1])
        rows.append(row)
    st.subheader("Do the kept tokens carry the decision?")
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", key="sal-faith")
    st.caption(f"ERASER's faithfulness (DeYoung et al., 2020; docs/methods.md 12), in points of the probability of "
               f"**{report.label}** at full length: **comprehensiveness** is how much it drops when the tokens a selector "
               "keeps to the last layer are deleted from the text (higher: the kept tokens were needed); "
               "**sufficiency** is how much it drops when only they are given (lower, even negative: they suffice). "
               "Deleted means taken out of the token sequence, [CLS] and [SEP] kept, and the shorter text classified at "
               "full length by the same classifier. Beside each selector, the same number of tokens chosen by gradient × "
               f"input, by integrated gradients and at random (seeded). ρ = {retention:.2f}, start layer 1; an empty "
               "kept set gives comprehensiveness 0 and an all-kept set sufficiency 0. Over a data set: "
               "`python -m pyramid saliency-report --faithfulness 0.5,0.3`.")


def _data_set_report() -> None:
    """The shipped SST-2-dev-wide report (``saliency-report --out``), when present."""
    from pyramid.analysis.results import RESULTS_DIR, load_saliency_report

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
        table.columns = [f"after layer {c}" for c in table.columns]
        table.index = [SELECTORS[n].label if n in SELECTORS else n for n in table.index]
        st.markdown(f"Mean share of each text's {kept[0]['kind'][3:].split('_')[0]} most salient tokens kept after "
                    f"each layer ({kept[0]['n']} texts; fixed-length selectors at ρ = "
                    f"{meta.get('retention', '?')}):")
        st.dataframe(table.round(3), key="sal-ds-kept")
    if meta.get("command"):
        st.caption("Made by:")
        st.code(meta["command"], language="bash", wrap_lines=True)
    _data_set_faithfulness()


def _data_set_faithfulness() -> None:
    """The shipped SST-2-dev-wide faithfulness report (``saliency-report --faithfulness --out``), when present."""
    from pyramid.analysis.results import RESULTS_DIR, load_faithfulness

    rows, meta = load_faithfulness(RESULTS_DIR)
    if not rows:
        return

    def fig(r, key: str) -> str:
        return f"{100 * r[key]:+.1f} [{100 * r[key[:4] + '_low']:+.1f}, {100 * r[key[:4] + '_high']:+.1f}]"

    def diff(r, key: str) -> str:
        if r.get(key) is None:
            return ""
        return f"{100 * r[key]:+.1f} [{100 * r[key + '_low']:+.1f}, {100 * r[key + '_high']:+.1f}]"

    table = []
    for r in rows:
        if "@" in r["selector"]:
            continue
        refs = {ref: next((x for x in rows if x["selector"] == f"{ref}@{r['selector']}" and
                           x["retention"] == r["retention"]), None) for ref in REFERENCE_LABELS}
        row = {"ρ": r["retention"], "selector": selector_label(r["selector"]), "kept (mean)": round(r["mean_size"], 1),
               "comprehensiveness": fig(r, "comprehensiveness"), "sufficiency": fig(r, "sufficiency"),
               "comp. minus random": diff(r, "comp_vs_random"), "suff. minus random": diff(r, "suff_vs_random")}
        for ref, label in REFERENCE_LABELS.items():
            if refs[ref] is not None:
                row[f"{label}: comp. / suff."] = (f"{100 * refs[ref]['comprehensiveness']:+.1f} / "
                                                  f"{100 * refs[ref]['sufficiency']:+.1f}")
        table.append(row)
    st.markdown(f"Do the kept tokens carry the decision? ERASER's comprehensiveness and sufficiency of each selector's "
                f"kept set over {rows[0]['n']} texts, points of the predicted class's probability with 95% bootstrap "
                "intervals; minus random: the paired difference with a random set of the same size on the same texts "
                "(comprehensiveness: higher is better; sufficiency: lower is better):")
    st.dataframe(pd.DataFrame(table), hide_index=True, width="stretch", key="sal-ds-faith")
    if meta.get("command"):
        st.code(meta["command"], language="bash", wrap_lines=True)
