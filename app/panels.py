"""Explorer panels: each receives computed data (traces, projections) and draws it."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from pyramid.selectors import selector_label
from pyramid.trace import Trace, compare_traces, trace_rows

from . import figures


def pyramid_panel(trace: Trace, *, key: str, caption: str | None = None) -> None:
    """Kept tokens per layer: the token pyramid (HTML, every token escaped)."""
    st.html(figures.pyramid_html(trace, caption))


def coverage_panel(traces: dict[str, Trace], chosen: str, *, key: str) -> None:
    """Coverage radius per layer for every selector, and per-token coverage at one layer."""
    st.plotly_chart(figures.coverage_figure(traces, chosen), key=f"{key}-radii", width="stretch")
    st.caption(
        "The coverage radius of a layer is the largest distance from a dropped token to its nearest "
        "kept token (docs/methods.md 1.2). Greedy k-center (core-set) keeps it within 2x of the best "
        "possible for the same number of tokens; the other selectors ignore geometry. Layers that "
        "drop nothing have radius 0."
    )
    trace = traces[chosen]
    selecting = [lt.layer for lt in trace.layers if len(lt.kept) < len(lt.alive)] or [1]
    layer = st.select_slider("Layer", options=[lt.layer for lt in trace.layers], value=selecting[0],
                             key=f"{key}-layer", help="Which layer's selection to list token by token.")
    rows = figures.coverage_rows(trace, layer)
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", height=320, key=f"{key}-table")
    st.caption(f"Layer {layer}, {trace.selector}: each token alive at this layer, whether it is kept, "
               "and the kept token that covers it (itself if kept) with the Euclidean distance.")


@st.fragment
def embedding_panel(trace: Trace, projection, *, key: str) -> None:
    """Shared-axes 2-D projection of token states, one layer at a time (reruns only itself)."""
    layers = projection.layers
    default = min(layers[-1], max(1, trace.schedule.start_layer if trace.schedule.is_geometric else 1))
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
        f"One {projection.method.upper()} projection fitted on every token at every layer, so the axes "
        "are the same for all layers. Blue circles are kept after this layer, orange crosses are dropped; "
        "each dropped token has a segment to the kept token that covers it. Grey dots are the other "
        "layers' points. Distances in 2-D only roughly reflect distances in the hidden space."
    )


def compare_panel(traces: dict[str, Trace], a: str, b: str, *, key: str) -> None:
    """Two selectors side by side: kept sets per layer, Jaccard overlap and coverage radii."""
    rows = compare_traces(traces[a], traces[b])
    st.plotly_chart(figures.comparison_figure(rows, a, b), key=f"{key}-fig", width="stretch")
    left, right = st.columns(2)
    with left:
        st.markdown(f"**{selector_label(a)}**")
        pyramid_panel(traces[a], key=f"{key}-a")
    with right:
        st.markdown(f"**{selector_label(b)}**")
        pyramid_panel(traces[b], key=f"{key}-b")
    table = pd.DataFrame([{
        "layer": r["layer"], "Jaccard": round(r["jaccard"], 3), "kept by both": len(r["both"]),
        f"only {a}": len(r["only_a"]), f"only {b}": len(r["only_b"]),
        f"radius {a}": round(r["radius_a"], 3), f"radius {b}": round(r["radius_b"], 3),
    } for r in rows])
    st.dataframe(table, hide_index=True, width="stretch", key=f"{key}-table")


def prediction_panel(predictions: dict[str, dict], chosen: str, labels: dict[str, str], *, key: str) -> None:
    """Sentiment predictions: full length and each selector's pyramid, for each shipped head.

    Args:
        predictions: head name -> selector name -> :class:`pyramid.classifier.Prediction`.
        chosen: the selector chosen in the form (marked in the table).
        labels: selector name -> display label.
    """
    rows = figures.prediction_rows(predictions, chosen, labels)
    positive = next(iter(next(iter(predictions.values())).values())).labels[-1]
    config = {c: st.column_config.ProgressColumn(c, min_value=0.0, max_value=1.0, format="%.3f")
              for c in rows[0] if c.startswith("P(")}
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", key=f"{key}-table", column_config=config)
    st.caption(
        f"P({positive}) of each sentiment head: at full length, and with each selector's pyramid on the same "
        "text and schedule. **sst2-lora** was fine-tuned at full length (selection at inference only); "
        "**sst2-lora-pyramid** was fine-tuned with core-set selection in the loop (docs/methods.md 1.5). "
        "A head runs its own merged weights, so its kept tokens can differ slightly from the pyramid shown above."
    )


def _standalone_html(fig) -> str:
    """A plotly figure as one HTML file that opens offline (plotly.js embedded)."""
    return fig.to_html(include_plotlyjs=True, full_html=True)


def downloads_panel(traces: dict[str, Trace], chosen: str, other: str, stem: str, *, key: str) -> None:
    """Download the chosen trace (JSON with the CLI's schema, CSV) and the figures as standalone HTML.

    The files are made only when a button is pressed (deferred data), so they cost nothing otherwise.
    """
    import json

    trace = traces[chosen]
    with st.expander("Download this run"):
        c1, c2, c3, c4 = st.columns(4)
        c1.download_button("Trace (JSON)", data=lambda: json.dumps(trace.to_json(), ensure_ascii=False),
                           file_name=f"{stem}.json", mime="application/json", on_click="ignore", key=f"{key}-json",
                           help="The same JSON as `python -m pyramid trace` (without the prediction).")
        c2.download_button("Trace (CSV)", data=lambda: pd.DataFrame(trace_rows(trace)).to_csv(index=False),
                           file_name=f"{stem}.csv", mime="text/csv", on_click="ignore", key=f"{key}-csv",
                           help="One row per token alive at each layer: kept or not, nearest kept token, distance, score.")
        c3.download_button("Coverage chart (HTML)", data=lambda: _standalone_html(figures.coverage_figure(traces, chosen)),
                           file_name=f"{stem}_coverage.html", mime="text/html", on_click="ignore", key=f"{key}-cov")
        c4.download_button("Token pyramid (HTML)",
                           data=lambda: "<!doctype html><meta charset='utf-8'>" + figures.pyramid_html(trace),
                           file_name=f"{stem}_pyramid.html", mime="text/html", on_click="ignore", key=f"{key}-pyr")
        rows = compare_traces(traces[chosen], traces[other])
        st.download_button("Comparison chart (HTML)",
                           data=lambda: _standalone_html(figures.comparison_figure(rows, chosen, other)),
                           file_name=f"{stem}_vs_{other}.html", mime="text/html", on_click="ignore", key=f"{key}-cmp")
        st.caption("HTML files open offline in any browser (plotly.js is embedded). The embedding chart has its "
                   "own download under it.")

