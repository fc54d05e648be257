"""Figures and HTML built from computed traces. No Streamlit here: panels call these and draw.

Every user-derived string (tokens, texts) that goes into HTML passes through ``html.escape``;
plotly escapes text it renders as SVG/HTML itself, but hover templates are built with escaped
tokens too.
"""

from __future__ import annotations

import html
from typing import Sequence

import numpy as np
import plotly.graph_objects as go

from pyramid.projection import Projection
from pyramid.selectors import SELECTORS, selector_label
from pyramid.trace import Trace

KEPT_COLOR = "#1f77b4"
DROPPED_COLOR = "#ff7f0e"
LABEL_LIMIT = 60
"""Embedding plots with more points than this show token text on hover only."""


def color_of(selector: str) -> str:
    """Plot colour of a selector (the registry's palette; grey for an unknown name)."""
    cls = SELECTORS.get(selector)
    return cls.color if cls is not None else "#444444"


def short_name(selector: str) -> str:
    """A selector's short display name (escaped for HTML)."""
    return html.escape(selector_label(selector, short=True))


def display_token(token: str) -> str:
    """A token as shown to users (escaped for HTML)."""
    return html.escape(token, quote=True)


# --------------------------------------------------------------------------------------------
# Token pyramid (HTML)
# --------------------------------------------------------------------------------------------

PYRAMID_CSS = """
<style>
.pl-pyr {overflow-x:auto; padding-bottom:6px; font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 13px;}
.pl-row {white-space:nowrap; margin:2px 0; display:flex; align-items:center;}
.pl-lab {display:inline-block; min-width:74px; color:#555; font-family: sans-serif; font-size:12px; flex:none;}
.pl-t {display:inline-block; padding:1px 3px; margin:0 1px; border-radius:3px; border:1px solid transparent; flex:none;}
.pl-k {background:#cfe3f7; color:#0b2e4f; border-color:#9cc3ea;}
.pl-x {background:#fff; color:#b45309; border-color:#f59e0b; text-decoration: line-through;}
.pl-g {color:#c4c4c4;}
.pl-r {background:#dcfce7; color:#14532d; border-color:#86efac;}
.pl-legend {font-family:sans-serif; font-size:12px; color:#444; margin:4px 0 8px 0;}
</style>
"""


def pyramid_html(trace: Trace, caption: str | None = None) -> str:
    """The token pyramid: one row per layer, every token in reading order.

    Row ``j`` styles each token: kept after layer j (blue), dropped after layer j (orange, struck
    through), gone before layer j (grey), or back again at this layer after a rejoin (green). A
    selection on the embedding output (AdapLeR's CP_0) gets its own first row, ``embed``.
    Hovering a token (``title``) tells its nearest kept token and the distance to it. All token
    text is HTML-escaped.
    """
    tokens = [display_token(t) for t in trace.tokens]
    rows = []
    prev_alive: set[int] = set(range(trace.n_tokens))
    last_kept: dict[int, int] = {}
    if trace.embedding_kept is not None:
        # A selection on the embedding output, before layer 1 (AdapLeR's CP_0).
        kept0 = set(trace.embedding_kept)
        cells = []
        for i, tok in enumerate(tokens):
            if i in kept0:
                cells.append(f'<span class="pl-t pl-k" title="{tok} (#{i}): kept before layer 1">{tok}</span>')
            else:
                cells.append(f'<span class="pl-t pl-x" title="{tok} (#{i}): dropped before layer 1 '
                             f'(on the embedding output)">{tok}</span>')
        rows.append(f'<div class="pl-row"><span class="pl-lab">embed · {trace.n_tokens}</span>{"".join(cells)}</div>')
        prev_alive = kept0
    for lt in trace.layers:
        alive = set(lt.alive)
        kept = set(lt.kept)
        near = {i: (n, d) for i, n, d in zip(lt.alive, lt.nearest, lt.distance)}
        cells = []
        for i, tok in enumerate(tokens):
            if i in alive:
                n, d = near[i]
                back = i not in prev_alive
                if i in kept:
                    cls = "pl-r" if back else "pl-k"
                    state = "rejoined and kept" if back else "kept"
                    tip = f"{tok} (#{i}), layer {lt.layer}: {state}; distance to nearest kept token 0 (itself)"
                else:
                    cls = "pl-x"
                    tip = (f"{tok} (#{i}), layer {lt.layer}: dropped after this layer; nearest kept token "
                           f"{tokens[n]} (#{n}) at distance {d:.3f}")
            else:
                cls = "pl-g"
                gone = last_kept.get(i, 0)
                tip = f"{tok} (#{i}): dropped after layer {gone}" if gone else f"{tok} (#{i}): not in this layer"
            cells.append(f'<span class="pl-t {cls}" title="{tip}">{tok}</span>')
        for i in alive:
            last_kept[i] = lt.layer
        prev_alive = kept
        label = f"layer {lt.layer} · {len(lt.alive)}"
        rows.append(f'<div class="pl-row"><span class="pl-lab">{label}</span>{"".join(cells)}</div>')
    legend = ('<div class="pl-legend"><span class="pl-t pl-k">kept</span> '
              '<span class="pl-t pl-x">dropped after this layer</span> '
              '<span class="pl-t pl-g">gone</span> '
              '<span class="pl-t pl-r">rejoined</span> &nbsp; row label: layer · tokens entering it. '
              'Hover a token for its nearest kept token.</div>')
    cap = f'<div class="pl-legend">{html.escape(caption)}</div>' if caption else ""
    return PYRAMID_CSS + cap + legend + '<div class="pl-pyr">' + "".join(rows) + "</div>"


# --------------------------------------------------------------------------------------------
# Coverage
# --------------------------------------------------------------------------------------------


def coverage_figure(traces: dict[str, Trace], chosen: str) -> go.Figure:
    """Coverage radius per layer, one line per selector; the chosen selector drawn thicker.

    Layers where nothing is dropped (the last one, and those before the start layer) have radius 0.
    """
    fig = go.Figure()
    for name, tr in traces.items():
        layers = [lt.layer for lt in tr.layers]
        radii = [lt.coverage_radius for lt in tr.layers]
        kept = [len(lt.kept) for lt in tr.layers]
        fig.add_trace(go.Scatter(
            x=layers, y=radii, mode="lines+markers", name=short_name(name),
            line={"color": color_of(name), "width": 4 if name == chosen else 1.5,
                  "dash": "solid" if name == chosen else "dot"},
            customdata=np.array(kept)[:, None],
            hovertemplate=f"{short_name(name)}<br>layer %{{x}}<br>radius %{{y:.3f}}<br>kept %{{customdata[0]}}<extra></extra>",
        ))
    fig.update_layout(
        title="Core-set coverage radius per layer (lower = kept tokens cover the dropped ones better)",
        xaxis_title="layer (selection after its output)", yaxis_title="coverage radius (Euclidean)",
        height=380, margin={"l": 40, "r": 10, "t": 50, "b": 40}, legend_title_text="selector",
    )
    fig.update_xaxes(dtick=1)
    return fig


def coverage_rows(trace: Trace, layer: int) -> list[dict]:
    """Per-token coverage at one layer: each alive token, kept or not, which kept token covers it
    and at what distance."""
    lt = trace.layers[layer - 1]
    kept = set(lt.kept)
    rows = []
    for i, n, d in zip(lt.alive, lt.nearest, lt.distance):
        rows.append({
            "#": i, "token": trace.tokens[i], "kept": i in kept,
            "covered by #": n, "covered by": trace.tokens[n], "distance": round(float(d), 4),
        })
    return rows


# --------------------------------------------------------------------------------------------
# Embeddings
# --------------------------------------------------------------------------------------------


def embedding_figure(trace: Trace, projection: Projection, layer: int) -> go.Figure:
    """Tokens alive at ``layer`` in the shared 2-D projection; kept vs dropped, and a segment from
    each dropped token to the kept token that covers it. Layer 0 is the embedding output."""
    idx, xy = projection.at(layer)
    fig = go.Figure()
    # faint context: every point of every layer, so the axes stay the same
    allxy = np.concatenate(projection.coords, axis=0)
    fig.add_trace(go.Scatter(x=allxy[:, 0], y=allxy[:, 1], mode="markers", name="other layers",
                             marker={"color": "#e5e7eb", "size": 4}, hoverinfo="skip"))
    tokens = [display_token(trace.tokens[i]) for i in idx]
    if layer == 0:
        kept = set(idx)
        nearest = {i: (i, 0.0) for i in idx}
    else:
        lt = trace.layers[layer - 1]
        kept = set(lt.kept)
        nearest = {i: (n, d) for i, n, d in zip(lt.alive, lt.nearest, lt.distance)}
    pos = {i: xy[k] for k, i in enumerate(idx)}
    seg_x, seg_y = [], []
    for i in idx:
        if i not in kept:
            n, _ = nearest[i]
            seg_x += [pos[i][0], pos[n][0], None]
            seg_y += [pos[i][1], pos[n][1], None]
    if seg_x:
        fig.add_trace(go.Scatter(x=seg_x, y=seg_y, mode="lines", name="covered by",
                                 line={"color": DROPPED_COLOR, "width": 1.5}, hoverinfo="skip"))
    for is_kept, name, color, symbol in ((True, "kept", KEPT_COLOR, "circle"), (False, "dropped", DROPPED_COLOR, "x")):
        sel = [k for k, i in enumerate(idx) if (i in kept) == is_kept]
        if not sel:
            continue
        text = [tokens[k] for k in sel]
        custom = [[idx[k], display_token(trace.tokens[nearest[idx[k]][0]]), nearest[idx[k]][1]] for k in sel]
        fig.add_trace(go.Scatter(
            x=xy[sel, 0], y=xy[sel, 1], mode="markers+text" if len(idx) <= LABEL_LIMIT else "markers", name=name, text=text, textposition="top center",
            textfont={"size": 10}, marker={"color": color, "size": 9, "symbol": symbol},
            customdata=custom,
            hovertemplate="%{text} (#%{customdata[0]})<br>nearest kept: %{customdata[1]} at %{customdata[2]:.3f}<extra>" + name + "</extra>",
        ))
    title = "embedding output" if layer == 0 else f"output of layer {layer}"
    fig.update_layout(
        title=f"Token states, {title} ({projection.method.upper()} fitted across all layers)",
        height=520, margin={"l": 10, "r": 10, "t": 50, "b": 10},
        xaxis={"showticklabels": False, "title": None}, yaxis={"showticklabels": False, "title": None},
    )
    return fig


# --------------------------------------------------------------------------------------------
# Comparison
# --------------------------------------------------------------------------------------------


def comparison_figure(rows: Sequence[dict], name_a: str, name_b: str) -> go.Figure:
    """Jaccard overlap of two selectors' kept sets per layer, with both coverage radii."""
    from plotly.subplots import make_subplots

    layers = [r["layer"] for r in rows]
    fig = make_subplots(rows=1, cols=2, subplot_titles=("Overlap of kept sets (Jaccard)", "Coverage radius"))
    fig.add_trace(go.Bar(x=layers, y=[r["jaccard"] for r in rows], name="Jaccard", marker_color="#2ca02c",
                         hovertemplate="layer %{x}<br>Jaccard %{y:.2f}<extra></extra>"), row=1, col=1)
    for key, name in (("radius_a", name_a), ("radius_b", name_b)):
        fig.add_trace(go.Scatter(x=layers, y=[r[key] for r in rows], mode="lines+markers", name=short_name(name),
                                 line={"color": color_of(name)}), row=1, col=2)
    fig.update_yaxes(range=[0, 1.05], row=1, col=1)
    fig.update_xaxes(dtick=1, title_text="layer")
    fig.update_layout(height=340, margin={"l": 40, "r": 10, "t": 40, "b": 40})
    return fig


# --------------------------------------------------------------------------------------------
# Predictions
# --------------------------------------------------------------------------------------------

def prediction_rows(predictions: dict[str, dict], chosen: str, labels: dict[str, str]) -> list[dict]:
    """Table rows: one for the full-length model, one per selector; per head its label and P(last label).

    Args:
        predictions: head name -> selector name -> ``Prediction``.
    """
    heads = list(predictions)
    selectors: list[str] = []
    for per_head in predictions.values():  # union, in order (a learned selector may fit one head only)
        selectors += [n for n in per_head if n not in selectors]
    rows = []
    first = next(iter(predictions[heads[0]].values()))
    positive = first.labels[-1]
    full = {"run": "full length (no selection)"}
    for h in heads:
        p = next(iter(predictions[h].values()))
        full[f"{h}: label"] = p.full_label
        full[f"P({positive}) {h}"] = p.full_probs[-1]
    rows.append(full)
    for name in selectors:
        row = {"run": ("▶ " if name == chosen else "") + labels.get(name, name)}
        for h in heads:
            p = predictions[h].get(name)
            row[f"{h}: label"] = p.label if p is not None else "n/a"
            row[f"P({positive}) {h}"] = p.probs[-1] if p is not None else None
        rows.append(row)
    return rows


# --------------------------------------------------------------------------------------------
# Benchmarks
# --------------------------------------------------------------------------------------------

def accuracy_figure(rows: Sequence[dict], x: str, full_accuracy: float | None, title: str) -> go.Figure:
    """Accuracy (percent) against ``x`` (``retention`` or ``flops_speedup``), one line per selector.

    Args:
        rows: evaluation rows (:data:`pyramid.evaluation.ROW_KEYS`).
        x: the x column.
        full_accuracy: accuracy of the full-length model, drawn as a dashed reference line.
    """
    fig = go.Figure()
    selectors = list(dict.fromkeys(r["selector"] for r in rows))
    for name in selectors:
        pts = sorted((r for r in rows if r["selector"] == name), key=lambda r: r[x])
        fig.add_trace(go.Scatter(
            x=[r[x] for r in pts], y=[100 * r["accuracy"] for r in pts], mode="lines+markers",
            name=short_name(name), line=dict(color=color_of(name)),
            customdata=[[r["retention"], r["flops_speedup"], 100 * r["agreement"]] for r in pts],
            hovertemplate=(f"{short_name(name)}<br>retention %{{customdata[0]:.2f}}<br>FLOPs speedup "
                           "%{customdata[1]:.2f}x<br>accuracy %{y:.1f}%<br>agreement %{customdata[2]:.1f}%<extra></extra>"),
        ))
    if full_accuracy is not None:
        fig.add_hline(y=100 * full_accuracy, line_dash="dash", line_color="#444",
                      annotation_text=f"full length {100 * full_accuracy:.1f}%", annotation_position="bottom right")
        fig.add_hline(y=100 * full_accuracy - 1.5, line_dash="dot", line_color="#999",
                      annotation_text="-1.5 points", annotation_position="bottom left")
    fig.update_layout(
        title=title, height=380, margin=dict(l=10, r=10, t=50, b=10), legend_title_text="selector",
        xaxis_title="final retention ratio ρ" if x == "retention" else "FLOPs speedup (x)",
        yaxis_title="accuracy (%)",
    )
    if x == "retention":
        fig.update_xaxes(autorange="reversed")
    return fig


# --------------------------------------------------------------------------------------------
# Saliency
# --------------------------------------------------------------------------------------------

def saliency_heatmap(tokens: Sequence[str], rows: dict, title: str) -> go.Figure:
    """Text as a heatmap: one row per method, one column per token, each row summing to 1.

    Args:
        tokens: ``[N]`` word pieces (escaped here).
        rows: method name -> ``(N,)`` normalised importance (tensor or sequence).
    """
    names = list(rows)
    z = np.array([np.asarray(rows[n], dtype=float) for n in names])  # (M, N)
    labels = [f"{i}:{display_token(t)}" for i, t in enumerate(tokens)]
    fig = go.Figure(go.Heatmap(
        z=z, x=labels, y=[html.escape(n) for n in names], colorscale="Blues", zmin=0.0,
        colorbar=dict(title="share"),
        hovertemplate="%{y}<br>token %{x}<br>share %{z:.3f}<extra></extra>",
    ))
    fig.update_layout(title=title, height=120 + 26 * len(names), margin=dict(l=10, r=10, t=40, b=10),
                      width=max(700, 22 * len(tokens) + 220))
    fig.update_yaxes(autorange="reversed")
    fig.update_xaxes(tickangle=-60, tickfont=dict(size=10))
    return fig


def matrix_figure(names: Sequence[str], matrix, title: str, zmin: float, zmax: float) -> go.Figure:
    """A square method-by-method matrix (Spearman correlation or top-k overlap), values written in."""
    m = np.asarray(matrix, dtype=float)
    labels = [html.escape(n) for n in names]
    fig = go.Figure(go.Heatmap(z=m, x=labels, y=labels, zmin=zmin, zmax=zmax, colorscale="RdBu",
                               text=np.round(m, 2), texttemplate="%{text}", textfont=dict(size=9),
                               hovertemplate="%{y} vs %{x}: %{z:.2f}<extra></extra>"))
    fig.update_layout(title=title, height=460, margin=dict(l=10, r=10, t=40, b=10))
    fig.update_yaxes(autorange="reversed")
    return fig
