"""Explorer panels: each receives computed data (traces, projections, predictions) and draws it."""

from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from pyramid.data import spreadsheet_safe
from pyramid.analysis.results import MATCHED_SPEEDUPS, pairwise_at_speedup
from pyramid.core.selectors import SELECTORS, selector_label
from pyramid.trace import Trace, compare_traces, trace_rows
from pyramid.words import Groups, word_rows

from pyramid.present import figures

DETAIL_WINDOW = 120
"""Items the detailed pyramid shows at once for a long text (the overview above it shows all)."""


def pyramid_panel(trace: Trace, groups: Groups, caption: str, *, key: str) -> None:
    """Kept tokens per layer: an overview heat strip of the whole text and the readable pyramid of a
    window of it (rows wrap to the panel's width)."""
    unit = "words" if len(groups) != trace.n_tokens else "tokens"
    title = f"Every {unit[:-1]} at every layer: {caption}"
    n = len(groups)
    # the strip as HTML (a few ms in the browser); the Plotly chart, which costs ~70-150 ms a Run and a 4.7 MB
    # library on a first page, only when asked for (issue 43)
    if n > DETAIL_WINDOW and st.toggle("Zoomable strip", key=f"{key}-zoom",
                                       help="Draw the strip as a chart you can drag on to zoom into a stretch of the "
                                            "text (and hover for each token at each layer)."):
        st.plotly_chart(figures.pyramid_overview(trace, groups, title), key=f"{key}-overview", width="stretch")
    else:
        st.html(figures.pyramid_strip_html(trace, groups, title))
    window = (0, n)
    if n > DETAIL_WINDOW:
        start = st.slider(f"Detail from {unit[:-1]}", 1, n - DETAIL_WINDOW + 1, 1, step=10, key=f"{key}-start",
                          help=f"The detailed pyramid below shows {DETAIL_WINDOW} {unit} at a time; the strip above "
                               "shows the whole text (turn on 'Zoomable strip' to drag on it to zoom).")
        window = (start - 1, start - 1 + DETAIL_WINDOW)
    st.html(figures.pyramid_html(trace, groups, None, window))
    merging = [lt.layer for lt in trace.layers if lt.merged]
    if trace.routing == "merge" and merging:
        layer = st.select_slider("Merge groups after layer", options=[lt.layer for lt in trace.layers],
                                 value=merging[-1], key=f"{key}-groups",
                                 help="Every group the merges have formed by this layer, at once: the words a "
                                      "surviving token stands for share its colour (ToMe's source map).")
        src = trace.sources()[layer - 1]
        multi = [t for t in sorted(src) if len(src[t]) > 1]
        focus = st.selectbox("Follow one surviving token", [None] + multi, key=f"{key}-focus",
                             format_func=lambda t: "every group" if t is None else
                             f"{trace.tokens[t]} (#{t}, stands for {len(src[t])} tokens)",
                             help="Underline only the words this token stands for after the chosen layer.")
        st.html(figures.groups_html(trace, groups, layer, window, focus))


def coverage_panel(runs: dict[str, Trace], chosen: str, groups: dict[str, Groups], *, key: str) -> None:
    """Coverage radius per layer for the runs shown, and per-token (or per-word) coverage at one layer.

    Args:
        runs: display name -> trace. chosen: the display name drawn thicker. groups: display name -> groups.
    """
    st.plotly_chart(figures.coverage_figure(runs, chosen), key=f"{key}-radii", width="stretch")
    st.caption(
        "The coverage radius of a layer is the largest distance from a dropped token to its nearest kept token, or "
        "from a merged token to the token that absorbed it (docs/methods.md 1.2, 10.4): small means the kept tokens "
        "still stand for every token. Greedy k-center (core-set) "
        "keeps it within 2x of the best possible for the same number of tokens; the other selectors ignore "
        "geometry. Lines appear only at layers where the run dropped tokens."
    )
    trace = runs[chosen]
    selecting = [lt.layer for lt in trace.layers if len(lt.kept) < len(lt.alive)]
    if not selecting:
        st.info("This run dropped no token, so there is no coverage to list.")
        return
    layer = st.select_slider("Layer", options=selecting, value=selecting[0], key=f"{key}-layer",
                             help="Layers where tokens were dropped; the table lists that layer's selection.")
    rows = figures.coverage_rows(trace, layer, groups[chosen])
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", height=320, key=f"{key}-table",
                 column_config={"distance": st.column_config.NumberColumn(
                     "distance", help="Euclidean distance to the covering kept token (0 when kept)", format="%.3f")})
    st.caption(f"Layer {layer}, {chosen}: every item alive there, whether it is kept after the layer, and the kept "
               "token that covers it (itself if kept).")


@st.fragment
def embedding_panel(trace: Trace, projection, *, key: str) -> None:
    """Shared-axes 2-D projection of token states, one layer at a time (reruns only itself)."""
    layers = projection.layers
    selecting = [lt.layer for lt in trace.layers if len(lt.kept) < len(lt.alive)]
    default = selecting[0] if selecting else 0
    layer = st.select_slider(
        "Layer", options=layers, value=default, key=f"{key}-layer",
        format_func=lambda j: "embeddings" if j == 0 else f"layer {j}",
        help="Layer 0 is the embedding output; layer j is the output of layer j for the tokens alive there.",
    )
    fig = figures.embedding_figure(trace, projection, layer)
    st.plotly_chart(fig, key=f"{key}-fig", width="stretch")
    st.download_button("Download this chart (HTML)", data=lambda: _standalone_html(fig),
                       file_name=f"pyramid-lens_embedding_{trace.selector}_layer{layer}.html", mime="text/html",
                       on_click="ignore", key=f"{key}-dl")
    st.caption(
        f"One {projection.method.upper()} projection fitted on every token at every layer, so the axes are the same "
        "for all layers. Blue circles are kept after this layer, orange crosses are dropped, violet diamonds are "
        "merged into another token; a thin line joins each dropped token to the kept token that covers it, and "
        "each merged token to the token that absorbed it. Grey dots are the other layers' points. Distances in 2-D "
        "only roughly reflect distances in the hidden space."
    )


def compare_panel(trace_a: Trace, trace_b: Trace, name_a: str, name_b: str, groups_a: Groups, groups_b: Groups,
                  *, key: str) -> None:
    """Two runs on the same text, one above the other: overlap and radii, then both pyramids."""
    rows = compare_traces(trace_a, trace_b)
    st.plotly_chart(figures.comparison_figure(rows, name_a, name_b, trace_a.selector, trace_b.selector),
                    key=f"{key}-fig", width="stretch")
    table = pd.DataFrame([{
        "layer": r["layer"], "Jaccard of kept sets": round(r["jaccard"], 3), "kept by both": len(r["both"]),
        f"kept only by {name_a}": len(r["only_a"]), f"kept only by {name_b}": len(r["only_b"]),
        f"radius, {name_a}": round(r["radius_a"], 3), f"radius, {name_b}": round(r["radius_b"], 3),
    } for r in rows])
    st.dataframe(table, hide_index=True, width="stretch", key=f"{key}-table", column_config={
        "Jaccard of kept sets": st.column_config.NumberColumn(
            "Jaccard of kept sets", format="%.3f",
            help="Tokens kept by both runs over tokens kept by either (1 = the same tokens, 0 = none in common)."),
        "layer": st.column_config.NumberColumn("layer", help="Tokens are dropped after this layer's output.")})
    for trace, name, groups, sub in ((trace_a, name_a, groups_a, "a"), (trace_b, name_b, groups_b, "b")):
        st.html(figures.pyramid_strip_html(trace, groups, name))


REGIME_COLUMN = {"inference": "inference-only", "train-select": "Train-Select"}
"""Column prefix of each regime in the prediction table."""
TOP_CLASSES = 3
"""Classes listed per run in the prediction table."""


def prediction_cells(pred, column: str, *, full: bool = False, blank: bool = False) -> dict:
    """One run's cells in the prediction table: ``<column>: label``, ``<column>: P(label)`` (the probability of
    the most probable predicted label) and ``<column>: top classes`` (the most probable classes with their
    probabilities). ``pred`` None gives "n/a" (that model is not installed here); ``full`` reads the
    full-length answer; ``blank`` leaves the cells empty."""
    if pred is None:
        return {f"{column}: label": "" if blank else "n/a", f"{column}: P(label)": None, f"{column}: top classes": ""}
    top = pred.top(TOP_CLASSES, full=full)
    return {f"{column}: label": pred.full_label if full else pred.label,
            f"{column}: P(label)": top[0][1],
            f"{column}: top classes": " · ".join(f"{label} {p:.2f}" for label, p in top)}


def prediction_panel(rows: list[dict], labels: list[str], head: str, *, multi_label: bool = False, key: str) -> None:
    """Predictions: the full-length model, and each selector shown in its regimes, for any number of labels."""
    frame = pd.DataFrame(rows)
    config = {c: st.column_config.ProgressColumn(c, min_value=0.0, max_value=1.0, format="%.3f",
                                                 help="Probability of the most probable predicted label")
              for c in frame.columns if c.endswith("P(label)")}
    st.dataframe(frame, hide_index=True, width="stretch", key=f"{key}-table", column_config=config)
    shown = ", ".join(labels[:12]) + (f" and {len(labels) - 12} more" if len(labels) > 12 else "")
    kind = ("multi-label: every label with a probability of at least 0.5 is predicted (a sigmoid per label)"
            if multi_label else "one label per text (softmax over the labels)")
    st.caption(
        f"The predicted label, its probability and the {TOP_CLASSES} most probable of the model's {len(labels)} labels "
        f"({shown}; {kind}). **Inference-only**: {head}, fine-tuned at full length, with the selector added at "
        "inference. **Train-Select**: the model fine-tuned with that selector in the loop (docs/methods.md 8). "
        "n/a: that model is not installed here."
    )


def safe_csv(rows) -> str:
    """Rows (dicts) or a DataFrame as CSV text that is safe to open in a spreadsheet: a text cell starting
    like a formula (``=``, ``+``, ``-``, ``@``) gets a leading ``'`` (:func:`pyramid.data.spreadsheet_safe`).
    Tokens and words come from user text, so every download that holds them goes through here."""
    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(rows)
    return frame.map(spreadsheet_safe).to_csv(index=False)


def _standalone_html(fig) -> str:
    """A plotly figure as one HTML file that opens offline (plotly.js embedded)."""
    return fig.to_html(include_plotlyjs=True, full_html=True)


def downloads_panel(trace: Trace, groups: Groups, words: bool, coverage_fig, stem: str, *, key: str) -> None:
    """Download the chosen run (trace JSON with the CLI's schema, CSV by token or by word, the prediction)
    and its figures as standalone HTML. The files are made only when a button is pressed (deferred data);
    ``coverage_fig`` is a function that builds the coverage figure then."""

    def trace_json() -> str:
        data = trace.to_json()
        if words:
            data["words"] = {"labels": groups.labels, "of_token": groups.of_token}
        return json.dumps(data, ensure_ascii=False)

    def csv() -> str:
        return safe_csv(word_rows(trace, groups) if words else trace_rows(trace))

    def prediction_csv() -> str:
        pred = trace.prediction
        return safe_csv([{"label": label, "probability": p, "full_length_probability": f}
                         for label, p, f in zip(pred.labels, pred.probs, pred.full_probs)])

    with st.expander("Download this run"):
        c1, c2, c3, c4, c5 = st.columns(5)
        c1.download_button("Trace (JSON)", data=trace_json, file_name=f"{stem}.json", mime="application/json",
                           on_click="ignore", key=f"{key}-json",
                           help="The JSON of `python -m pyramid trace`, with the prediction (plus the word groups in "
                                "word view).")
        c2.download_button("Trace (CSV)", data=csv, file_name=f"{stem}{'_words' if words else ''}.csv", mime="text/csv",
                           on_click="ignore", key=f"{key}-csv",
                           help="One row per word (word view) or token alive at each layer, and whether it is kept.")
        c3.download_button("Coverage chart (HTML)", data=lambda: _standalone_html(coverage_fig()),
                           file_name=f"{stem}_coverage.html", mime="text/html", on_click="ignore", key=f"{key}-cov")
        if trace.prediction is not None:
            c5.download_button("Prediction (CSV)", data=prediction_csv, file_name=f"{stem}_prediction.csv",
                               mime="text/csv", on_click="ignore", key=f"{key}-pred",
                               help="One row per label: its probability with the selector and at full length.")
        c4.download_button("Token pyramid (HTML)",
                           data=lambda: "<!doctype html><meta charset='utf-8'>" + figures.pyramid_html(trace, groups),
                           file_name=f"{stem}_pyramid.html", mime="text/html", on_click="ignore", key=f"{key}-pyr")
        st.caption("HTML files open offline in any browser (plotly.js is embedded). The embedding chart has its own "
                   "download under it.")


def matched_cell(value, interval, vs_full) -> str:
    """A matched-speedup cell: ``86.8 [84.6, 89.0]``, with ``▼`` when it is distinguishably below its regime's
    full-length model on the same examples (the paired interval of the difference excludes 0)."""
    if value is None:
        return ""
    if interval is None:
        return f"{100 * value:.1f}"
    mark = " ▼" if vs_full is not None and vs_full.excludes(0.0) and vs_full.value < 0 else ""
    return f"{100 * value:.1f} [{100 * interval.low:.1f}, {100 * interval.high:.1f}]{mark}"


def pairwise_panel(rows: list[dict], regimes: list[str], *, key: str) -> None:
    """Paired differences between selectors at one matched speedup, and which are distinguishable."""
    if not any(r.get("correct") for r in rows) or not regimes:
        return
    with st.expander("Which differences between selectors are real? (paired comparisons at matched speedup)"):
        c1, c2 = st.columns(2)
        regime = c1.selectbox("Regime", regimes, format_func=lambda g: figures.REGIME_NAMES.get(g, g),
                              key=f"{key}_pair_regime")
        learned = {name for name, cls in SELECTORS.items() if not cls.uses_retention}
        own = sorted({r["flops_speedup"] for r in rows if r.get("regime") == regime and r["selector"] in learned})
        options = list(MATCHED_SPEEDUPS) + [x for x in own if x not in MATCHED_SPEEDUPS]
        speedup = c2.selectbox("FLOPs speedup", options, format_func=lambda x: f"{x:.2f}x", key=f"{key}_pair_speedup",
                               help="The table's speedups, and the operating points of the learned selectors.")
        pairs = pairwise_at_speedup(rows, float(speedup), regime)
        if not pairs:
            st.info("No two selectors of this regime reach that speedup with per-example results.")
            return
        names = list(dict.fromkeys(p["a"] for p in pairs))
        grid = {(p["a"], p["b"]): p["diff"] for p in pairs}
        frame = pd.DataFrame([{"selector (row) minus column": selector_label(a, True),
                               **{selector_label(b, True): ("" if (a, b) not in grid else
                                  f"{100 * grid[a, b].value:+.1f} [{100 * grid[a, b].low:+.1f}, "
                                  f"{100 * grid[a, b].high:+.1f}]{' *' if grid[a, b].excludes(0.0) else ''}")
                                  for b in names}} for a in names])
        st.dataframe(frame, hide_index=True, width="stretch", key=f"{key}-pairs")
        st.caption("Accuracy points of the row's selector minus the column's, both at this FLOPs speedup (interpolated "
                   "on their curves; a learned selector only at its own speedup), with the 95% interval of a paired "
                   "bootstrap over the same examples; *: distinguishable (the interval excludes 0). Not corrected for "
                   "the many comparisons of a table, and blind to training noise: seeds are a separate spread "
                   "(README).")


def survival_panel(sv, runs_regime: str, unavailable: dict[str, str], window_size: int, *, key: str,
                   on_open=None) -> None:
    """Every method on one text (:class:`pyramid.analysis.survival.Survival`): the figure (for a long text an overview of
    every word and a readable window), the words every run carries to the end and those only the merging runs
    carry, the selectors that cannot run here with the reason, a menu that opens a row as the main run, and the
    figure as standalone HTML.

    Args:
        sv: the survival of every run. runs_regime: the regime's display name. unavailable: selector -> reason.
        window_size: words the readable window shows. on_open: callback ``(selector)`` of the open button (the
            menu's value when the button is pressed).
    """
    title = f"Every selector on this text ({runs_regime}): the last layer each word reaches"
    n = len(sv.words)
    fig = figures.survival_figure(sv, title)
    st.plotly_chart(fig, key=f"{key}-all", width="stretch")
    if n > window_size:
        start = st.slider("Readable window from word", 1, n - window_size + 1, 1, step=10, key=f"{key}-start",
                          help=f"The chart below shows {window_size} words at a time with their text; the chart above "
                               "shows the whole text (drag on it to zoom).")
        st.plotly_chart(figures.survival_figure(sv, f"Words {start}-{start + window_size - 1}",
                                                (start - 1, start - 1 + window_size)),
                        key=f"{key}-window", width="stretch")

    def label(ws):
        return ", ".join(_code(sv.words[w]) for w in ws)

    every = [w for w in sv.kept_by_all() if sv.words[w] not in ("[CLS]", "[SEP]", "<s>", "</s>")]
    merging = [i for i, name in enumerate(sv.selectors) if SELECTORS[name].routing == "merge"]
    only_merging = sv.kept_only_by(merging) if merging else []
    lines = [f"**Every run carries to the last layer:** {label(every) if every else 'no word but the special tokens'}."]
    if merging:
        lines.append(f"**Only the merging runs ({', '.join(sv.runs[i] for i in merging)}) carry:** "
                     f"{label(only_merging) if only_merging else 'no word'}.")
    if sv.top:
        lines.append(f"**Most salient at full length** (gradient x input, ★): {label(sv.top)}.")
    st.markdown("  \n".join(lines))
    st.caption("Colour: the last layer each word enters without a break from the start (its deepest piece); purple "
               "diamonds: merged into another word (hover: after which layer, into which word); green circles: parked "
               "and rejoined at the last layer (Token Dropping). The saliency strip is the full-length classifier's "
               "gradient x input summed over each word's pieces, scaled to the text's most salient word.")
    if unavailable:
        with st.expander(f"Not on this chart ({len(unavailable)}): cannot run on this model"):
            for name, why in unavailable.items():
                st.markdown(f"**{selector_label(name, True)}**: {why}")
    c1, c2, c3 = st.columns([3, 1, 2])
    choice = c1.selectbox("Open a row as the main run", sv.selectors, format_func=selector_label, key=f"{key}-open",
                          help="Makes this selector the Explorer's chosen run (same text and schedule) and shows its "
                               "pyramid.")
    if on_open is not None:
        c2.button("Open", key=f"{key}-go", on_click=lambda: on_open(st.session_state.get(f"{key}-open", choice)))
    c3.download_button("This chart (HTML)", data=lambda: _standalone_html(fig), file_name="pyramid-lens_every-method.html",
                       mime="text/html", on_click="ignore", key=f"{key}-dl")


def _code(text: str) -> str:
    """A word as inline code in markdown (backticks inside it replaced)."""
    return "`" + str(text).replace("`", "'") + "`"
