"""A trace's figure in a notebook: :func:`pyramid.show` (the token pyramid, its overview as a strip or a chart,
coverage radii, or every run's survival on one text)."""

from __future__ import annotations

from typing import Mapping, Sequence

from ..trace import Trace


def show(trace: Trace | Mapping[str, Trace] | Sequence[Trace], view: str = "pyramid", *, words: bool = False,
         saliency: Sequence[float] | None = None):
    """A trace's figure for a notebook: ``"pyramid"`` (the token pyramid as HTML, displayed inline by
    Jupyter), ``"strip"`` (the heat strip of every token at every layer as HTML, as the app draws it:
    :func:`pyramid.present.figures.pyramid_strip_html`), ``"overview"`` (the same strip as a plotly chart, to
    zoom) or ``"coverage"`` (coverage radius per layer); plotly figures display themselves. ``"survival"``
    takes several traces of one text (a dict of name -> trace, or a list, named by selector) and draws every
    run's last layer reached per word
    (:mod:`pyramid.analysis.survival`), with ``saliency`` (``[N]`` per token, e.g. gradient x input of the full-length
    classifier) as a top strip when given.

    Raises:
        ValueError: an unknown view, or traces of different texts for ``"survival"``.
    """
    from . import figures
    from ..words import trace_groups

    if view == "survival":
        from ..analysis.survival import survival

        runs = dict(trace) if isinstance(trace, Mapping) else (
            {figures.run_name(t.selector, t.regime): t for t in trace} if not isinstance(trace, Trace) else
            {figures.run_name(trace.selector, trace.regime): trace})
        if not runs:
            raise ValueError("survival needs at least one trace")
        sv = survival(runs, trace_groups(next(iter(runs.values())), words), saliency=saliency)
        return figures.survival_figure(sv, "Every run on this text: the last layer each word reaches")

    groups = trace_groups(trace, words)
    caption = f"{figures.run_name(trace.selector, trace.regime)}"
    if trace.prediction is not None:
        caption += f" · predicted {trace.prediction.label} (full length: {trace.prediction.full_label})"
    if view == "pyramid":
        return _Html("<!doctype html><meta charset='utf-8'>" + figures.pyramid_html(trace, groups, caption))
    if view == "strip":
        return _Html("<!doctype html><meta charset='utf-8'>" + figures.pyramid_strip_html(trace, groups, caption))
    if view == "overview":
        return figures.pyramid_overview(trace, groups, caption)
    if view == "coverage":
        return figures.coverage_figure({caption: trace}, caption)
    raise ValueError(f"unknown view '{view}'; choose pyramid, strip, overview, coverage or survival")


class _Html(str):
    """An HTML string that Jupyter displays as HTML (``_repr_html_``) and that prints as itself."""

    def _repr_html_(self) -> str:
        return str(self)
