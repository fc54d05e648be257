"""Figures and HTML built from computed traces and results. No Streamlit here: panels call these and draw.

Every user-derived string (tokens, words, texts) that goes into HTML passes through ``html.escape``;
plotly escapes text it renders, and hover templates are built with escaped tokens too. Every chart has
axis titles with units; selectors appear under their short names and in their own colours (from the
registry, :mod:`pyramid.core.selectors`).
"""

from __future__ import annotations

import html
import textwrap
from typing import Sequence

import numpy as np
import plotly.graph_objects as go

from .projection import Projection
from ..core.selectors import SELECTORS, selector_label
from ..trace import Trace
from ..words import Groups

KEPT_COLOR = "#1f77b4"
DROPPED_COLOR = "#ff7f0e"
GONE_COLOR = "#e5e7eb"
REJOINED_COLOR = "#16a34a"
MERGED_COLOR = "#7c3aed"
LABEL_LIMIT = 60
"""Charts with more items than this show token text on hover only."""
REGIME_NAMES = {"inference": "inference-only", "train-select": "Train-Select"}
REGIME_DASH = {"inference": "dash", "train-select": "solid"}


def color_of(selector: str) -> str:
    """Plot colour of a selector (the registry's palette; grey for an unknown name)."""
    cls = SELECTORS.get(selector)
    return cls.color if cls is not None else "#444444"


def short_name(selector: str) -> str:
    """A selector's short display name (escaped for HTML)."""
    return html.escape(selector_label(selector, short=True))


def run_name(selector: str, regime: str) -> str:
    """``Core-set (Train-Select)``: a selector in a regime, for legends and headings."""
    return f"{selector_label(selector, short=True)} ({REGIME_NAMES.get(regime, regime)})"


def display_token(token: str) -> str:
    """A token as shown to users (escaped for HTML)."""
    return html.escape(token, quote=True)


# --------------------------------------------------------------------------------------------
# Which tokens each layer keeps
# --------------------------------------------------------------------------------------------

STATE_GONE, STATE_KEPT, STATE_DROPPED, STATE_REJOINED, STATE_MERGED = 0, 1, 2, 3, 4
STATE_NAMES = {STATE_GONE: "gone", STATE_KEPT: "kept", STATE_DROPPED: "dropped after this layer",
               STATE_REJOINED: "rejoined", STATE_MERGED: "merged after this layer"}


def layer_states(trace: Trace, groups: Groups) -> tuple[list[str], np.ndarray]:
    """The state of every group (token or word) at every row of the pyramid.

    Rows: ``embed`` (only for a selection on the embedding output), then layers 1..L. A group is kept
    when any of its pieces is kept, merged when it is alive, none is kept and a piece merged into another
    token (merging routings), dropped when it is alive and none is kept, rejoined when it is back after
    being dropped (Token Dropping), gone otherwise.

    Returns:
        ``(row labels [R], states (R, W) int)``.
    """
    rows: list[tuple[str, set[int], set[int], set[int]]] = []
    if trace.embedding_kept is not None:
        rows.append(("embeddings", set(range(trace.n_tokens)), set(trace.embedding_kept), set()))
    rows += [(f"layer {lt.layer}", set(lt.alive), set(lt.kept), set(lt.merged)) for lt in trace.layers]
    return states_of_rows(rows, trace.n_tokens, groups)


def states_of_rows(rows: Sequence[tuple[str, set, set, set]], n_tokens: int, groups: Groups) -> tuple[list[str], np.ndarray]:
    """:func:`layer_states` from per-row token sets ``(label, alive, kept, merged)`` (the rule is the same)."""
    states = np.zeros((len(rows), len(groups)), dtype=int)
    prev_kept = set(range(n_tokens))
    for r, (_, alive, kept, merged) in enumerate(rows):
        for g, members in enumerate(groups.members):
            if not any(i in alive for i in members):
                continue
            if any(i in kept for i in members):
                back = not any(i in prev_kept for i in members)
                states[r, g] = STATE_REJOINED if back else STATE_KEPT
            else:
                states[r, g] = STATE_MERGED if any(i in merged for i in members) else STATE_DROPPED
        prev_kept = kept
    return [row[0] for row in rows], states


STATE_COLORS = {STATE_GONE: GONE_COLOR, STATE_KEPT: KEPT_COLOR, STATE_DROPPED: DROPPED_COLOR,
                STATE_REJOINED: REJOINED_COLOR, STATE_MERGED: MERGED_COLOR}


def _legend_states(states: np.ndarray) -> list[int]:
    """The states a strip's legend lists, in legend order: kept and gone always, the others when the run has them."""
    shown = {int(v) for v in np.unique(states)}
    return [s for s in (STATE_KEPT, STATE_DROPPED, STATE_MERGED, STATE_REJOINED, STATE_GONE)
            if s in shown or s in (STATE_KEPT, STATE_GONE)]


def _runs(values: Sequence) -> list[tuple[int, int]]:
    """``(first, last)`` index of each run of equal consecutive values."""
    out, start = [], 0
    for i in range(1, len(values) + 1):
        if i == len(values) or values[i] != values[start]:
            out.append((start, i - 1))
            start = i
    return out


def pyramid_overview(trace: Trace, groups: Groups, title: str) -> go.Figure:
    """Tokens (or words) x layers as a heat strip: one column per token, one row per layer, coloured by
    state; hover tells the token; drag to zoom into a stretch of the text. Fits any panel width."""
    labels, states = layer_states(trace, groups)
    n = len(groups)
    scale = []
    for k, c in sorted(STATE_COLORS.items()):  # a discrete colour scale over 0..4
        scale += [[k / 5, c], [(k + 1) / 5, c]]
    words = [display_token(t) for t in groups.labels]
    hover = [[f"#{g} {words[g]}<br>{labels[r]}: {STATE_NAMES[int(states[r, g])]}" for g in range(n)]
             for r in range(len(labels))]
    fig = go.Figure(go.Heatmap(
        z=states, x=list(range(n)), y=labels, zmin=-0.5, zmax=4.5, colorscale=scale, showscale=False,
        text=hover, hovertemplate="%{text}<extra></extra>", xgap=1 if n <= 150 else 0, ygap=2))
    unit = "word" if len(groups) != trace.n_tokens else "token"
    fig.update_layout(title=title, height=90 + 30 * len(labels), margin=dict(l=10, r=10, t=40, b=40))
    fig.update_yaxes(autorange="reversed", title=None)
    if n <= LABEL_LIMIT:
        fig.update_xaxes(tickmode="array", tickvals=list(range(n)), ticktext=words, tickangle=-60,
                         tickfont=dict(size=10), title=None)
    else:
        fig.update_xaxes(title=f"{unit} position in the text (hover for the {unit}; drag to zoom)")
    for state in _legend_states(states):  # only the states this run has
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name=STATE_NAMES[state],
                                 marker=dict(color=STATE_COLORS[state], size=10, symbol="square")))
    # legend to the right of the layers, where neither the token labels nor the axis title can reach it
    fig.update_layout(legend=dict(orientation="v", y=1, x=1.01, xanchor="left", yanchor="top"),
                      plot_bgcolor="white", height=130 + 30 * len(labels), margin=dict(l=10, r=10, t=40, b=70))
    return fig


STRIP_ROW_PX = 18
"""Height of one layer's row in :func:`pyramid_strip_html`, in CSS pixels."""


def _life_of(labels: Sequence[str], column: np.ndarray) -> str:
    """One item's states down the rows, runs of the same state joined: ``layers 1-3 kept; layer 4 dropped after
    this layer; layers 5-6 gone`` (``embeddings`` stays apart)."""
    # the embeddings row never joins a run of layers: key each row by (is a layer, state)
    keys = [(label.startswith("layer "), int(state)) for label, state in zip(labels, column)]
    parts = []
    for first, last in _runs(keys):
        where = labels[first] if first == last else f"layers {labels[first].split()[-1]}-{labels[last].split()[-1]}"
        parts.append(f"{where} {STATE_NAMES[int(column[first])]}")
    return "; ".join(parts)


STRIP_CSS = """
<style>
.pl-strip {font-family: inherit;}
.pl-strip-cols {display:flex; flex:1 1 auto; min-width:0; position:relative;}
.pl-strip-cols::after {content:""; position:absolute; inset:0; pointer-events:none;
  background:repeating-linear-gradient(to bottom, transparent 0, transparent 16px, #fff 16px, #fff 18px);}
.pl-sc {flex:1 1 0; min-width:0; display:flex; flex-direction:column;}
.pl-sc > div {margin-bottom:2px;}
.pl-s0 {background:%s;} .pl-s1 {background:%s;} .pl-s2 {background:%s;} .pl-s3 {background:%s;} .pl-s4 {background:%s;}
</style>
""" % (GONE_COLOR, KEPT_COLOR, DROPPED_COLOR, REJOINED_COLOR, MERGED_COLOR)


def pyramid_strip_html(trace: Trace, groups: Groups, title: str) -> str:
    """The overview heat strip of :func:`pyramid_overview` as plain HTML, drawn by the browser without a
    charting library: one column per token (or word), one row per layer, coloured by state (kept, dropped
    after the layer, merged, rejoined, gone; the colours of :func:`pyramid_overview`). Hovering a column tells
    its token and its state at every layer (its ``title``). Fits any panel width: the columns share it (with a
    1 px gap up to 150 items); at most :data:`LABEL_LIMIT` items are labelled under their columns, longer
    texts get position ticks instead.

    Each column is a stack of blocks, one per run of layers in the same state (``pl-s<state>``, height
    :data:`STRIP_ROW_PX` CSS pixels per layer, white lines between the layers drawn over them), so a 512-token
    strip is ~1,500 elements. Streamlit's ``st.html`` removes SVG, so the strip is made of ``div``s.

    The app draws this strip, not the Plotly chart: it costs the browser a few milliseconds, where the
    Plotly chart cost ~70-150 ms a Run and its 4.7 MB library on a first page (issue 43, README "A Run
    against its own computations"). :func:`pyramid_overview` stays for notebooks and for the app's zoomable
    view. Every token, word and label is HTML-escaped.

    Args:
        trace: the run; its rows are :func:`layer_states`'s (R rows: ``embeddings`` when it selects there, then
            layers 1..L).
        groups: the W items shown (tokens, or words in word view), one column each.
        title: the heading above the strip (escaped here).

    Returns:
        HTML: a title, the strip (R rows x W columns) with its row labels, the item labels or position ticks and a
        legend.
    """
    labels, states = layer_states(trace, groups)
    n, rows = len(groups), len(labels)
    words = [display_token(t) for t in groups.labels]
    cols = []
    for g in range(n):
        blocks = [f'<div class="pl-s{int(states[first, g])}" style="height:{STRIP_ROW_PX * (last - first + 1) - 2}px">'
                  '</div>' for first, last in _runs(states[:, g])]  # one block per run of the same state
        cols.append(f'<div class="pl-sc" title="#{g} {words[g]}: {_life_of(labels, states[:, g])}">{"".join(blocks)}</div>')
    gap = "gap:1px;" if n <= 150 else ""
    row_labels = "".join(f'<div style="height:{STRIP_ROW_PX}px;line-height:{STRIP_ROW_PX - 2}px">{html.escape(lab)}</div>'
                         for lab in labels)
    unit = "word" if n != trace.n_tokens else "token"
    if n <= LABEL_LIMIT:
        below = (f'<div style="display:flex;{gap}height:64px;overflow:hidden">'
                 + "".join(f'<div style="flex:1 1 0;min-width:0;font-size:10px;writing-mode:vertical-rl;'
                           f'transform:rotate(180deg);white-space:nowrap;overflow:hidden;text-align:right">{w}</div>'
                           for w in words) + "</div>")
    else:
        step = next(s for s in (1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000) if n / s <= 12)
        ticks = "".join(f'<span style="position:absolute;left:{100 * (t + 0.5) / n:.3f}%;transform:translateX(-50%)">'
                        f'{t}</span>' for t in range(0, n, step))
        below = (f'<div style="position:relative;height:16px;font-size:11px;color:#555">{ticks}</div>'
                 f'<div style="font-size:12px;color:#555;text-align:center">{unit} position in the text (hover a column '
                 f'for the {unit})</div>')
    legend = " ".join(
        f'<span class="pl-s{s}" style="display:inline-block;width:10px;height:10px;margin:0 4px 0 10px"></span>'
        f'{STATE_NAMES[s]}' for s in _legend_states(states))
    return (STRIP_CSS + '<div class="pl-strip">'
            f'<div style="font-size:15px;margin:4px 0 6px 0">{html.escape(title)}</div>'
            '<div style="display:flex;align-items:flex-start">'
            f'<div style="flex:0 0 90px;font-size:12px;color:#555">{row_labels}</div>'
            f'<div style="flex:1 1 auto;min-width:0"><div class="pl-strip-cols" role="img" '
            f'aria-label="{html.escape(title, quote=True)}" style="{gap}">{"".join(cols)}</div>{below}</div></div>'
            f'<div style="font-size:12px;color:#444;margin:4px 0 0 90px">{legend}</div></div>')


PYRAMID_CSS = """
<style>
.pl-pyr {font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 13px; max-width: 100%;}
.pl-row {display:flex; align-items:flex-start; margin:3px 0; border-bottom:1px solid #f1f5f9; padding-bottom:2px;}
.pl-lab {flex: 0 0 104px; color:#555; font-family: sans-serif; font-size:12px; padding-top:2px;}
.pl-toks {display:flex; flex-wrap:wrap; gap:2px; min-width:0; flex:1 1 auto;}
.pl-t {display:inline-block; padding:0 3px; border-radius:3px; border:1px solid transparent; overflow-wrap:anywhere;
       max-width:100%;}
.pl-k {background:#cfe3f7; color:#0b2e4f; border-color:#9cc3ea;}
.pl-x {background:#fff; color:#b45309; border-color:#f59e0b; text-decoration: line-through;}
.pl-g {color:#c4c4c4;}
.pl-r {background:#dcfce7; color:#14532d; border-color:#86efac;}
.pl-m {background:#ede9fe; color:#5b21b6; border-color:#a78bfa; text-decoration: line-through;}
.pl-t sub {font-size:9px; color:#5b21b6; margin-left:1px;}
.pl-legend {font-family:sans-serif; font-size:12px; color:#444; margin:4px 0 8px 0;}
</style>
"""
STATE_CLASS = {STATE_GONE: "pl-g", STATE_KEPT: "pl-k", STATE_DROPPED: "pl-x", STATE_REJOINED: "pl-r",
               STATE_MERGED: "pl-m"}


def pyramid_html(trace: Trace, groups: Groups, caption: str | None = None, window: tuple[int, int] | None = None) -> str:
    """The token pyramid as HTML: one row per layer, tokens (or words) in reading order, wrapping to
    the panel's width.

    Each item is kept (blue), dropped after this layer (orange, struck through), merged into another
    token (violet, struck through), gone (grey) or back after a rejoin (green). Hovering an item
    (``title``) tells its state, for a dropped token the kept token nearest to it, for a merged one the
    token that absorbed it; a kept token that stands for several tokens shows its size as a subscript.
    ``window = (start, end)`` shows only items ``start..end-1``. All text is HTML-escaped.
    """
    labels, states = layer_states(trace, groups)
    n = len(groups)
    start, end = window if window is not None else (0, n)
    start, end = max(0, start), min(n, end)
    words = [display_token(t) for t in groups.labels]
    nearest: list[dict[int, tuple[int, float]]] = []
    sizes: list[dict[int, float]] = []
    sources: list[dict[int, list[int]]] = []
    offset = 1 if trace.embedding_kept is not None else 0
    if offset:
        nearest.append({})
        sizes.append({})
        sources.append({})
    for lt, src in zip(trace.layers, trace.sources() or [{}] * len(trace.layers)):
        nearest.append({i: (nb, d) for i, nb, d in zip(lt.alive, lt.nearest, lt.distance)})
        sizes.append(dict(zip(lt.alive, lt.size)) if lt.size is not None else {})
        sources.append(src)
    rows = []
    for r, label in enumerate(labels):
        cells = []
        for g in range(start, end):
            st_ = int(states[r, g])
            tip = f"{words[g]} (#{g}), {label}: {STATE_NAMES[st_]}"
            badge = ""
            if st_ in (STATE_DROPPED, STATE_MERGED) and r < len(nearest):
                near = [nearest[r][i] for i in groups.members[g] if i in nearest[r]]
                if near:
                    nb, d = min(near, key=lambda t: t[1])
                    what = "merged into" if st_ == STATE_MERGED else "nearest kept token"
                    tip += f"; {what} {display_token(trace.tokens[nb])} (#{nb}) at distance {d:.3f}"
            elif st_ == STATE_KEPT and r < len(sizes) and sizes[r]:
                size = sum(sizes[r].get(i, 0.0) for i in groups.members[g] if i in sizes[r])
                if size > 1:
                    tip += f"; stands for {size:g} tokens (merged into it so far)"
                    badge = f"<sub>{size:g}</sub>"
                    came = sorted({p for i in groups.members[g] for p in sources[r].get(i, [])})
                    if came:
                        shown_src = " ".join(display_token(trace.tokens[p]) for p in came[:MAX_SOURCES])
                        tip += f": {shown_src}{' …' if len(came) > MAX_SOURCES else ''}"
            cells.append(f'<span class="pl-t {STATE_CLASS[st_]}" title="{tip}">{words[g]}{badge}</span>')
        alive = int((states[r] != STATE_GONE).sum())
        rows.append(f'<div class="pl-row"><span class="pl-lab">{html.escape(label)} · {alive}</span>'
                    f'<div class="pl-toks">{"".join(cells)}</div></div>')
    unit = "words" if n != trace.n_tokens else "tokens"
    merges = trace.routing == "merge"
    legend = ('<div class="pl-legend"><span class="pl-t pl-k">kept</span> '
              + ('<span class="pl-t pl-m">merged into another token</span> <span class="pl-t pl-k">kept'
                 '<sub>3</sub></span> = stands for 3 tokens ' if merges else
                 '<span class="pl-t pl-x">dropped after this layer</span> ')
              + '<span class="pl-t pl-g">gone</span> '
              + ('<span class="pl-t pl-r">rejoined</span> ' if trace.routing == "rejoin" else '')
              + f'&nbsp; row label: layer · {unit} alive there. Hover an item for details.</div>')
    shown = "" if (start, end) == (0, n) else f'<div class="pl-legend">Showing {unit} {start + 1}-{end} of {n}.</div>'
    cap = f'<div class="pl-legend">{html.escape(caption)}</div>' if caption else ""
    return PYRAMID_CSS + cap + legend + shown + '<div class="pl-pyr">' + "".join(rows) + "</div>"


MAX_SOURCES = 24
"""Source tokens a hover lists for a merged group (the rest as an ellipsis)."""

GROUP_COLORS = ["#fde68a", "#bfdbfe", "#bbf7d0", "#fbcfe8", "#ddd6fe", "#fed7aa", "#a5f3fc", "#d9f99d", "#fecaca",
                "#e9d5ff", "#c7d2fe", "#99f6e4"]
"""Background colours of merge groups (cycled; neighbouring groups differ)."""


def groups_html(trace: Trace, groups: Groups, layer: int, window: tuple[int, int] | None = None,
                focus: int | None = None) -> str:
    """The text with every merge group after ``layer`` drawn at once (:meth:`Trace.sources`): the words of one group
    share a background colour, the token that stands for the group is underlined, words that are their own group
    stay plain; hovering a word names its group's token and every word in it. ``window`` ``(start, end)`` shows only
    those words. ``focus``: a token kept after ``layer``; only its group is coloured and its source words underlined
    (the others are drawn plain). All text is HTML-escaped.

    Raises:
        ValueError: the trace did not merge (no sources), or ``layer`` is not one of its layers.
    """
    src = trace.sources()
    if src is None:
        raise ValueError("merge groups exist only for a merging selector (ToMe, core-set pooling)")
    if not 1 <= layer <= len(src):
        raise ValueError(f"layer must be 1..{len(src)}, not {layer}")
    owner_of = {p: t for t, members in src[layer - 1].items() for p in members}  # original position -> its token
    n = len(groups)
    start, end = window if window is not None else (0, n)
    colours: dict[int, str] = {}
    words = [display_token(t) for t in groups.labels]
    cells = []
    for g in range(max(0, start), min(n, end)):
        owners = {owner_of.get(i) for i in groups.members[g]} - {None}
        big = [t for t in owners if len(src[layer - 1][t]) > 1 and (focus is None or t == focus)]
        if not big:
            style = "pl-t pl-k" if owners else "pl-t pl-g"
            cells.append(f'<span class="{style}" title="{words[g]} (#{g}): its own token after layer {layer}">'
                         f'{words[g]}</span>')
            continue
        t = min(big)
        colour = colours.setdefault(t, GROUP_COLORS[len(colours) % len(GROUP_COLORS)])
        members = src[layer - 1][t]
        listed = " ".join(display_token(trace.tokens[p]) for p in members[:MAX_SOURCES])
        head = any(i == t for i in groups.members[g])
        tip = (f"{words[g]} (#{g}): in the group of {display_token(trace.tokens[t])} (#{t}), {len(members)} tokens after "
               f"layer {layer}: {listed}{' …' if len(members) > MAX_SOURCES else ''}")
        deco = ("text-decoration: underline; font-weight: 600;" if head else "") if focus is None else \
            ("text-decoration: underline double;" + (" font-weight: 600;" if head else ""))
        cells.append(f'<span class="pl-t" style="background:{colour}; border-color:#9ca3af; {deco}" title="{tip}">'
                     f'{words[g]}</span>')
    legend = (f'<div class="pl-legend">Merge groups after layer {layer}: words of one colour now travel as one token, '
              'the underlined one stands for the group (its position); plain words are their own token, grey ones were '
              'dropped. Hover a word for its group.</div>')
    return PYRAMID_CSS + legend + '<div class="pl-pyr"><div class="pl-toks">' + "".join(cells) + "</div></div>"


def schedule_caption(trace: Trace, selector: str, regime: str) -> str:
    """What decided the lengths: the schedule, or the selector itself (learned thresholds, Token
    Dropping's routing), so the caption never claims a schedule that did not apply."""
    cls = SELECTORS.get(selector)
    name = run_name(selector, regime)
    if cls is not None and not cls.uses_retention:
        return f"{name}: it sets its own lengths per text (the retention and start layer do not apply)."
    if cls is not None and not cls.uses_start_layer:
        return f"{name}, keep fraction ρ = {trace.schedule.retention:.2f} (its own routing; the start layer does not apply)."
    sch = trace.schedule
    return f"{name}, final retention ρ = {sch.retention:.2f}, start layer {sch.start_layer}."


# --------------------------------------------------------------------------------------------
# Coverage
# --------------------------------------------------------------------------------------------


def coverage_figure(runs: dict[str, Trace], chosen: str | None = None) -> go.Figure:
    """Coverage radius per layer, one line per run (``{display name: trace}``), drawn only at the layers
    where that run dropped something (elsewhere the radius is 0 by definition)."""
    fig = go.Figure()
    for name, tr in runs.items():
        layers, radii, kept, alive = [], [], [], []
        for lt in tr.layers:
            layers.append(lt.layer)
            dropped = len(lt.kept) < len(lt.alive)
            radii.append(lt.coverage_radius if dropped else None)
            kept.append(len(lt.kept))
            alive.append(len(lt.alive))
        sel = tr.selector
        fig.add_trace(go.Scatter(
            x=layers, y=radii, mode="lines+markers", name=html.escape(name), connectgaps=False,
            line={"color": color_of(sel), "width": 4 if name == chosen else 2,
                  "dash": "solid" if name == chosen else "dot"},
            customdata=np.array([kept, alive]).T,
            hovertemplate=(f"{html.escape(name)}<br>layer %{{x}}<br>radius %{{y:.3f}}<br>kept %{{customdata[0]}} of "
                           "%{customdata[1]}<extra></extra>"),
        ))
    fig.update_layout(
        title="Coverage radius: how far the farthest dropped token is from its nearest kept token",
        xaxis_title="layer (tokens are dropped after its output)",
        yaxis_title="coverage radius (Euclidean)",
        height=400, margin={"l": 10, "r": 10, "t": 50, "b": 40}, legend_title_text="run",
    )
    fig.update_xaxes(dtick=1)
    return fig


def coverage_rows(trace: Trace, layer: int, groups: Groups) -> list[dict]:
    """Per-token (or per-word) coverage at one layer: each alive item, whether it is kept, which kept
    token covers it, and the Euclidean distance (for a word: its farthest dropped piece)."""
    lt = trace.layers[layer - 1]
    kept = set(lt.kept)
    by_token = {i: (nb, d) for i, nb, d in zip(lt.alive, lt.nearest, lt.distance)}
    rows = []
    for g in groups.of(lt.alive):
        pieces = [i for i in groups.members[g] if i in by_token]
        worst = max(pieces, key=lambda i: by_token[i][1])
        nb, d = by_token[worst]
        rows.append({
            "#": g, "text": groups.labels[g], "kept": any(i in kept for i in pieces),
            "covered by": trace.tokens[nb], "covered by #": nb, "distance": round(float(d), 4),
        })
    return rows


# --------------------------------------------------------------------------------------------
# Embeddings
# --------------------------------------------------------------------------------------------


def embedding_figure(trace: Trace, projection: Projection, layer: int) -> go.Figure:
    """Tokens alive at ``layer`` in the shared 2-D projection; kept vs dropped, and a segment from
    each dropped token to the kept token that covers it (drawn above the markers). Layer 0 is the
    embedding output."""
    idx, xy = projection.at(layer)
    fig = go.Figure()
    allxy = np.concatenate(projection.coords, axis=0)  # every layer's points: the axes stay the same
    fig.add_trace(go.Scatter(x=allxy[:, 0], y=allxy[:, 1], mode="markers", name="other layers",
                             marker={"color": "#e5e7eb", "size": 3}, hoverinfo="skip"))
    tokens = [display_token(trace.tokens[i]) for i in idx]
    merged: dict[int, int] = {}
    if layer == 0:
        kept = set(idx)
        nearest = {i: (i, 0.0) for i in idx}
    else:
        lt = trace.layers[layer - 1]
        kept = set(lt.kept)
        merged = lt.merged
        nearest = {i: (n, d) for i, n, d in zip(lt.alive, lt.nearest, lt.distance)}
    pos = {i: xy[k] for k, i in enumerate(idx)}
    many = len(idx) > LABEL_LIMIT
    size = 6 if len(idx) > 200 else 9
    groups = (("kept", KEPT_COLOR, "circle", "nearest kept", lambda i: i in kept),
              ("dropped", DROPPED_COLOR, "x", "nearest kept", lambda i: i not in kept and i not in merged),
              ("merged", MERGED_COLOR, "diamond-open", "merged into", lambda i: i in merged))
    for name, color, symbol, relation, member in groups:
        sel = [k for k, i in enumerate(idx) if member(i)]
        if not sel:
            continue
        text = [tokens[k] for k in sel]
        custom = [[idx[k], display_token(trace.tokens[nearest[idx[k]][0]]), nearest[idx[k]][1]] for k in sel]
        fig.add_trace(go.Scatter(
            x=xy[sel, 0], y=xy[sel, 1], mode="markers" if many else "markers+text", name=name, text=text,
            textposition="top center", textfont={"size": 10},
            marker={"color": color, "size": size, "symbol": symbol, "opacity": 0.8 if many else 1.0},
            customdata=custom,
            hovertemplate="%{text} (#%{customdata[0]})<br>" + relation + ": %{customdata[1]} at %{customdata[2]:.3f}"
                          "<extra>" + name + "</extra>",
        ))
    for label, color, member in (("dropped → covering kept token", "rgba(180, 83, 9, 0.55)",
                                  lambda i: i not in kept and i not in merged),
                                 ("merged → the token that absorbed it", "rgba(124, 58, 237, 0.6)",
                                  lambda i: i in merged)):
        seg_x, seg_y = [], []
        for i in idx:
            if member(i):
                n, _ = nearest[i]
                seg_x += [pos[i][0], pos[n][0], None]
                seg_y += [pos[i][1], pos[n][1], None]
        if seg_x:
            fig.add_trace(go.Scatter(x=seg_x, y=seg_y, mode="lines", name=label, line={"color": color, "width": 1},
                                     hoverinfo="skip"))
    title = "embedding output" if layer == 0 else f"output of layer {layer}"
    fig.update_layout(
        title=f"Token states, {title} ({projection.method.upper()} fitted on every layer's states)",
        height=540, margin={"l": 10, "r": 10, "t": 50, "b": 40},
        xaxis_title=f"{projection.method.upper()} 1 (no unit: only nearness is meaningful)",
        yaxis_title=f"{projection.method.upper()} 2",
    )
    return fig


# --------------------------------------------------------------------------------------------
# Comparison
# --------------------------------------------------------------------------------------------


def comparison_figure(rows: Sequence[dict], name_a: str, name_b: str, selector_a: str, selector_b: str) -> go.Figure:
    """Jaccard overlap of two runs' kept sets per layer, with both coverage radii (where they dropped)."""
    from plotly.subplots import make_subplots

    layers = [r["layer"] for r in rows]
    fig = make_subplots(rows=1, cols=2, subplot_titles=("Overlap of the kept tokens (Jaccard, 1 = identical)",
                                                        "Coverage radius (where tokens were dropped)"))
    fig.add_trace(go.Bar(x=layers, y=[r["jaccard"] for r in rows], name="Jaccard", marker_color="#64748b",
                         hovertemplate="layer %{x}<br>Jaccard %{y:.2f}<extra></extra>"), row=1, col=1)
    for key, name, sel, dash in (("radius_a", name_a, selector_a, "solid"), ("radius_b", name_b, selector_b, "dot")):
        fig.add_trace(go.Scatter(x=layers, y=[r[key] if r[key] > 0 else None for r in rows], mode="lines+markers",
                                 name=html.escape(name), line={"color": color_of(sel), "dash": dash}), row=1, col=2)
    fig.update_yaxes(range=[0, 1.05], title_text="Jaccard index", row=1, col=1)
    fig.update_yaxes(title_text="coverage radius (Euclidean)", row=1, col=2)
    fig.update_xaxes(dtick=1, title_text="layer")
    fig.update_layout(height=360, margin={"l": 10, "r": 10, "t": 40, "b": 40})
    return fig


# --------------------------------------------------------------------------------------------
# Benchmarks
# --------------------------------------------------------------------------------------------

def add_reference_heads(fig: go.Figure, references, selectors) -> go.Figure:
    """Add each reference head's curves (single-head result files, inference-only: Pyramid-BERT's own setting) to an
    :func:`accuracy_figure` as thin dotted lines with square markers, for the chosen ``selectors``; returns ``fig``."""
    for f in references:
        pts = sorted((r for r in f.rows if r["selector"] in selectors), key=lambda r: r["flops_speedup"])
        for sel in dict.fromkeys(r["selector"] for r in pts):
            p = [r for r in pts if r["selector"] == sel]
            fig.add_trace(go.Scatter(x=[r["flops_speedup"] if r["retention"] < 1 else 1.0 for r in p],
                                     y=[100 * r["accuracy"] for r in p], mode="lines+markers",
                                     name=html.escape(f"{selector_label(sel, True)} on {f.head}"),
                                     line=dict(color=color_of(sel), dash="dot", width=1),
                                     marker=dict(size=5, symbol="square")))
    return fig


TITLE_WIDTH = 90
"""Characters per line of a chart title (:func:`wrapped_title`); Plotly does not wrap titles itself."""


def wrapped_title(title: str, width: int = TITLE_WIDTH) -> tuple[str, int]:
    """A chart title broken into lines of at most ``width`` characters at spaces (Plotly's ``<br>``), each line
    HTML-escaped (a data set's or a file's name can hold any character): ``(title, number of lines)``."""
    lines = textwrap.wrap(title, width=width, break_long_words=True, break_on_hyphens=False) or [""]
    return "<br>".join(html.escape(line) for line in lines), len(lines)


def accuracy_figure(rows: Sequence[dict], full_accuracy: float | None, title: str, *, metric: str = "accuracy",
                    full_label: str = "sst2-lora") -> go.Figure:
    """Accuracy (or macro-F1), times 100, against FLOPs speedup, one line per (selector, regime): solid
    Train-Select, dashed inference-only (open markers); a learned selector is one point per regime (a diamond).
    Rows with a 95% interval (``ci_low``/``ci_high``, or ``f1_low``/``f1_high`` for macro-F1) get error bars.

    Args:
        rows: evaluation rows (:data:`pyramid.analysis.evaluation.ROW_KEYS`).
        full_accuracy: the inference-only model's full-length value, a reference line.
        metric: ``accuracy`` or ``macro_f1``.
        full_label: what the reference line is called (the model at full length).
    """
    lo_key, hi_key = ("ci_low", "ci_high") if metric == "accuracy" else ("f1_low", "f1_high")
    metric_name = "accuracy" if metric == "accuracy" else "macro-F1"
    fig = go.Figure()
    keys = list(dict.fromkeys((r.get("regime", "inference"), r["selector"]) for r in rows))
    for regime, name in keys:
        pts = sorted((r for r in rows if r["selector"] == name and r.get("regime", "inference") == regime),
                     key=lambda r: (r["flops_speedup"] if r["retention"] < 1.0 else 1.0))
        label = run_name(name, regime)
        values = [100 * r[metric] if r.get(metric) is not None else None for r in pts]
        bars = None
        if pts and all(r.get(lo_key) is not None and r.get(hi_key) is not None for r in pts):
            bars = dict(type="data", symmetric=False, thickness=1, width=3,
                        array=[100 * (r[hi_key] - r[metric]) for r in pts],
                        arrayminus=[100 * (r[metric] - r[lo_key]) for r in pts])
        fig.add_trace(go.Scatter(
            x=[r["flops_speedup"] if r["retention"] < 1.0 else 1.0 for r in pts], y=values, error_y=bars,
            mode="lines+markers", name=html.escape(label),
            line=dict(color=color_of(name), dash=REGIME_DASH.get(regime, "solid")),
            # one point (a learned selector): a diamond, open for inference-only and filled for Train-Select
            marker=dict(size=9 if len(pts) == 1 else 6,
                        symbol=("diamond" if len(pts) == 1 else "circle") + ("-open" if regime == "inference" else "")),
            customdata=[[r["retention"], 100 * r["agreement"],
                         "" if r.get(lo_key) is None else f" [{100 * r[lo_key]:.1f}, {100 * r[hi_key]:.1f}]"]
                        for r in pts],
            hovertemplate=(f"{html.escape(label)}<br>FLOPs speedup %{{x:.2f}}x<br>{metric_name} %{{y:.1f}}"
                           "%{customdata[2]}<br>retention %{customdata[0]:.2f}<br>agreement with its full model "
                           "%{customdata[1]:.1f}%<extra></extra>"),
        ))
    if full_accuracy is not None:
        fig.add_hline(y=100 * full_accuracy, line_dash="dash", line_color="#444",
                      annotation_text=f"{html.escape(full_label)}, full length: {100 * full_accuracy:.1f}",
                      annotation_position="top right")
    title, lines = wrapped_title(title)
    fig.update_layout(title=title, height=440 + 20 * lines, margin=dict(l=10, r=10, t=30 + 20 * lines, b=40),
                      legend_title_text="selector (regime)",
                      xaxis_title="FLOPs speedup over the full model (x; selector cost included)",
                      yaxis_title="accuracy (%)" if metric == "accuracy" else "macro-F1 (x 100)")
    return fig


# --------------------------------------------------------------------------------------------
# Saliency
# --------------------------------------------------------------------------------------------

def saliency_heatmap(labels: Sequence[str], rows: dict, title: str, window: tuple[int, int] | None = None,
                     raw: dict | None = None) -> go.Figure:
    """Text as a heatmap: one row per method, one column per word (or token), each row on its own scale
    (:func:`pyramid.analysis.attribution.scale_to_row_max`: 1.0 = that method's most important word; None cells, the special
    tokens, are left blank). ``window`` ``(start, end)`` draws only those columns; up to :data:`LABEL_LIMIT` of them
    show their words on the axis (hover shows them beyond). ``raw``: method -> the unscaled values, for hover."""
    names = list(rows)
    lo, hi = window if window is not None else (0, len(labels))
    cols = list(range(lo, min(hi, len(labels))))
    z = [[None if rows[m][j] is None else float(rows[m][j]) for j in cols] for m in names]  # None: a blank cell
    text = [display_token(t) for t in labels]

    def cell(i: int, m: str, j: int) -> str:
        value = rows[m][j]
        if value is None:
            return f"{html.escape(m)}<br>#{j} {text[j]}<br>special token (not scaled)"
        extra = f"<br>share of the row {raw[m][j]:.3f}" if raw is not None else ""
        return f"{html.escape(m)}<br>#{j} {text[j]}<br>{value:.2f} of this row's largest{extra}"

    hover = [[cell(i, m, j) for j in cols] for i, m in enumerate(names)]
    fig = go.Figure(go.Heatmap(z=z, x=cols, y=[html.escape(m) for m in names], colorscale="Blues", zmin=0.0, zmax=1.0,
                               colorbar=dict(title="of the row's<br>largest"), text=hover,
                               hovertemplate="%{text}<extra></extra>", xgap=1 if len(cols) <= 150 else 0, ygap=1))
    fig.update_layout(title=title, height=150 + 24 * len(names), margin=dict(l=10, r=10, t=40, b=40),
                      plot_bgcolor="#f3f4f6")
    fig.update_yaxes(autorange="reversed", title=None)
    if len(cols) <= LABEL_LIMIT:
        fig.update_xaxes(tickmode="array", tickvals=cols, ticktext=[text[j] for j in cols], tickangle=-60,
                         tickfont=dict(size=11), title=None)
    else:
        fig.update_xaxes(title="position in the text (hover for the word; drag to zoom)")
    return fig


MATRIX_TEXT_LIMIT = 10
"""Matrices with more rows than this show their numbers on hover only."""


def matrix_figure(names: Sequence[str], matrix, title: str, zmin: float, zmax: float, value_name: str) -> go.Figure:
    """A square method-by-method matrix (Spearman correlation or top-k overlap); the numbers are written
    in the cells only when they fit (at most :data:`MATRIX_TEXT_LIMIT` methods)."""
    m = np.asarray(matrix, dtype=float)
    labels = [html.escape(n) for n in names]
    kwargs = {}
    if len(names) <= MATRIX_TEXT_LIMIT:
        kwargs = dict(text=np.round(m, 2), texttemplate="%{text:.2f}", textfont=dict(size=11))
    fig = go.Figure(go.Heatmap(z=m, x=labels, y=labels, zmin=zmin, zmax=zmax, colorscale="RdBu",
                               colorbar=dict(title=dict(text=value_name, side="right")),
                               hovertemplate="%{y} vs %{x}: %{z:.2f}<extra></extra>", **kwargs))
    fig.update_layout(title=title, height=200 + 28 * len(names), margin=dict(l=10, r=10, t=40, b=10))
    fig.update_yaxes(autorange="reversed")
    fig.update_xaxes(tickangle=-90)
    return fig


# --------------------------------------------------------------------------------------------
# Every method on one text
# --------------------------------------------------------------------------------------------

def _depth_colors(num_layers: int) -> list[str]:
    """``L + 1`` colours from light (dropped before layer 1) to dark blue (reaches the last layer)."""
    from plotly.colors import sample_colorscale

    return sample_colorscale("Blues", [0.12 + 0.88 * d / max(1, num_layers) for d in range(num_layers + 1)])


def survival_figure(sv, title: str, window: tuple[int, int] | None = None) -> go.Figure:
    """Every run's depth for every word (:class:`pyramid.analysis.survival.Survival`): one row per run, one column per word,
    coloured by the last layer the word enters; purple diamonds mark words merged into another (hover: after
    which layer, into which word), green circles words that rejoin at the last layer (Token Dropping); a top strip
    gives the full-length classifier's saliency per word, with the most salient words starred. ``window``
    ``(start, end)`` draws only those words (with their text on the axis)."""
    from plotly.subplots import make_subplots

    lo, hi = window if window is not None else (0, len(sv.words))
    cols = list(range(lo, min(hi, len(sv.words))))
    L = sv.num_layers
    words = [display_token(w) for w in sv.words]
    runs = [html.escape(r) for r in sv.runs]
    strip = sv.saliency is not None
    fig = make_subplots(rows=2 if strip else 1, cols=1, shared_xaxes=True, vertical_spacing=0.02,
                        row_heights=[1, max(1, len(runs))] if strip else None)
    row = 2 if strip else 1
    if strip:
        top = set(sv.top)
        fig.add_trace(go.Heatmap(
            z=[[sv.saliency[w] for w in cols]], x=cols, y=["saliency"], colorscale="Oranges", zmin=0, zmax=1,
            showscale=False, xgap=1 if len(cols) <= 150 else 0,
            text=[[f"#{w} {words[w]}<br>saliency {sv.saliency[w]:.2f} of the text's largest"
                   f"{' (top ' + str(len(sv.top)) + ')' if w in top else ''}" for w in cols]],
            hovertemplate="%{text}<extra></extra>"), row=1, col=1)
        starred = [w for w in cols if w in top]
        fig.add_trace(go.Scatter(x=starred, y=["saliency"] * len(starred), mode="text", text=["★"] * len(starred),
                                 textfont=dict(size=14, color="#7c2d12"), hoverinfo="skip", showlegend=False),
                      row=1, col=1)
    colors = _depth_colors(L)
    scale = []
    for d, c in enumerate(colors):  # discrete over 0..L
        scale += [[d / (L + 1), c], [(d + 1) / (L + 1), c]]

    def hover(s: int, w: int) -> str:
        d = int(sv.depth[s, w])
        text = (f"{runs[s]}<br>#{w} {words[w]}<br>"
                + ("dropped before layer 1" if d == 0 else f"reaches layer {d} of {L}" if d < L else "reaches the last layer"))
        if sv.merged_after[s, w]:
            into = sv.merged_into[s][w]
            text += f"<br>merged after layer {int(sv.merged_after[s, w])} into '{words[into] if into is not None else '?'}'"
        if sv.rejoined_at[s, w]:
            text += f"<br>parked, rejoins at layer {int(sv.rejoined_at[s, w])}"
        return text

    fig.add_trace(go.Heatmap(
        z=sv.depth[:, cols], x=cols, y=runs, zmin=-0.5, zmax=L + 0.5, colorscale=scale,
        colorbar=dict(title="last layer<br>reached", tickvals=list(range(L + 1)), len=0.55, y=0.0, yanchor="bottom"),
        xgap=1 if len(cols) <= 150 else 0, ygap=2, text=[[hover(s, w) for w in cols] for s in range(len(runs))],
        hovertemplate="%{text}<extra></extra>"), row=row, col=1)
    for mark, matrix, name, color, symbol in (
            ("merged", sv.merged_after, "merged into another word", MERGED_COLOR, "diamond"),
            ("rejoined", sv.rejoined_at, "rejoins at the last layer", REJOINED_COLOR, "circle")):
        pts = [(w, runs[s]) for s in range(len(runs)) for w in cols if matrix[s, w]]
        if pts:
            fig.add_trace(go.Scatter(x=[p[0] for p in pts], y=[p[1] for p in pts], mode="markers", name=name,
                                     marker=dict(color=color, size=6 if len(cols) <= 150 else 4, symbol=symbol),
                                     hoverinfo="skip"), row=row, col=1)
    fig.update_yaxes(autorange="reversed", title=None)
    axis = dict(row=row, col=1)
    if len(cols) <= LABEL_LIMIT:
        fig.update_xaxes(tickmode="array", tickvals=cols, ticktext=[words[w] for w in cols], tickangle=-60,
                         tickfont=dict(size=10), title=None, **axis)
    else:
        fig.update_xaxes(title="position in the text (hover for the word; drag to zoom)", **axis)
    fig.update_layout(title=title, height=(150 if len(cols) <= LABEL_LIMIT else 110) + 26 * len(runs) + (40 if strip else 0),
                      margin=dict(l=10, r=10, t=40, b=40), plot_bgcolor="white",
                      legend=dict(orientation="v", y=1, x=1.01, xanchor="left", yanchor="top", font=dict(size=11)))
    return fig


def scrub_figure(frames: dict, n_tokens: int, groups: Groups, title: str, current: float) -> go.Figure:
    """The pyramid's heat strip at every retention, with a ρ slider that redraws in the browser (Plotly frames, no
    server round trip): ``frames`` maps each retention to the rows of :func:`pyramid.trace.pyramid_rows` (or
    :meth:`pyramid.api.Model.scrub`); ``current`` is the frame shown first (the nearest retention)."""
    colors = [GONE_COLOR, KEPT_COLOR, DROPPED_COLOR, REJOINED_COLOR, MERGED_COLOR]
    scale = []
    for k, c in enumerate(colors):
        scale += [[k / 5, c], [(k + 1) / 5, c]]
    words = [display_token(t) for t in groups.labels]
    n = len(groups)
    rhos = sorted(frames)
    start = min(rhos, key=lambda r: abs(r - current))

    def heat(rho: float) -> go.Heatmap:
        labels, states = states_of_rows(frames[rho], n_tokens, groups)
        hover = [[f"#{g} {words[g]}<br>{labels[r]}: {STATE_NAMES[int(states[r, g])]}" for g in range(n)]
                 for r in range(len(labels))]
        return go.Heatmap(z=states, x=list(range(n)), y=labels, zmin=-0.5, zmax=4.5, colorscale=scale, showscale=False,
                          text=hover, hovertemplate="%{text}<extra></extra>", xgap=1 if n <= 150 else 0, ygap=2)

    def heading(rho: float) -> str:
        last = frames[rho][-1]
        return f"{title} · ρ = {rho:.2f}: {len(last[1])} of {n_tokens} tokens enter the last layer"

    fig = go.Figure(data=[heat(start)], frames=[go.Frame(data=[heat(r)], name=f"{r:.2f}",
                                                         layout=go.Layout(title_text=heading(r))) for r in rhos])
    steps = [dict(method="animate", label=f"{r:.2f}", args=[[f"{r:.2f}"], dict(mode="immediate", frame=dict(
        duration=0, redraw=True), transition=dict(duration=0))]) for r in rhos]
    rows = len(frames[start])
    fig.update_layout(title=heading(start), height=200 + 30 * rows, margin=dict(l=10, r=10, t=40, b=20),
                      plot_bgcolor="white",
                      sliders=[dict(active=rhos.index(start), steps=steps, currentvalue=dict(prefix="ρ = "),
                                    pad=dict(t=50), x=0, len=1.0)])
    fig.update_yaxes(autorange="reversed", title=None)
    if n <= LABEL_LIMIT:
        fig.update_xaxes(tickmode="array", tickvals=list(range(n)), ticktext=words, tickangle=-60, tickfont=dict(size=10))
    else:
        fig.update_xaxes(title="position in the text (hover for the word)")
    return fig
