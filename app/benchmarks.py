"""The Benchmarks page: accuracy against FLOPs speedup in both regimes, and measured speed.

Reads the result files shipped in ``assets/results`` (see :mod:`pyramid.analysis.results`); each shows the
command that made it, so that anyone can recompute it. Opens on the README's headline: SST-2 dev.
"""

from __future__ import annotations

import html

import pandas as pd
import streamlit as st

from pyramid.analysis.results import (RESULTS_DIR, dataset_results, drop_vs_merge, load_bench, load_eval_results,
                                     load_seed_differences, load_seed_spread, matched_table)
from pyramid.core.selectors import SELECTORS, selector_label

from pyramid.present import figures

from . import panels

DATASET_NAMES = {"sst2-dev": "SST-2 dev (sentences)", "imdb-dev": "IMDB reviews (long, truncated to 512 tokens)",
                 "bbc-dev": "BBC News dev (long articles, five topics; minilm-bbc-news, inference-only)",
                 "bbc-dev-ts": "BBC News dev, your classifier in both regimes (a minilm-bbc-news retrained, and its "
                               "Train-Select core-set and attention models from `train --model`)",
                 "sst2-dev-mpnet12": "SST-2 dev, 12-layer MPNet (mpnet12-sst2-lora, both regimes)"}
DATASET_ORDER = ("sst2-dev", "imdb-dev", "bbc-dev", "bbc-dev-ts", "sst2-dev-mpnet12")
SPEED_COLUMNS = {
    "config": "model", "seq_len": "tokens", "batch_size": "batch", "selector": "selector", "retention": "ρ",
    "full_ms": "full model (ms)", "pyramid_ms": "pyramid (ms)", "selection_ms": "of which selection (ms)",
    "selection_share": "selection share of the pyramid", "measured_speedup": "measured speedup (x)",
    "flops_speedup": "FLOPs speedup (x)", "ratio": "measured / FLOPs",
}
MEMORY_COLUMNS = {
    "config": "model", "seq_len": "tokens", "batch_size": "batch", "selector": "selector", "retention": "ρ",
    "full_mb": "full model (MB)", "pyramid_mb": "pyramid (MB)", "memory_ratio": "pyramid / full",
}


@st.cache_data(show_spinner=False, ttl=60)
def _results(folder: str):
    return load_eval_results(folder)


@st.cache_data(show_spinner=False, ttl=60)
def _bench(folder: str):
    return load_bench(folder)


def _meta_caption(meta: dict) -> None:
    if meta.get("command"):
        st.caption(f"Made on {html.escape(str(meta.get('date', '?')))} ({html.escape(str(meta.get('machine', '')))}) by:")
        st.code(meta["command"], language="bash", wrap_lines=True)
    if meta.get("note"):
        st.caption(html.escape(str(meta["note"])))


def _pct(value) -> str:
    return "" if value is None else f"{100 * value:.1f}"


def render() -> None:
    """Draw the Benchmarks page."""
    st.title("Pyramid Lens · benchmarks")
    st.caption(
        "What token reduction costs and saves on real data: accuracy against the analytic FLOPs speedup for every "
        "selector in both regimes (dashed: the full-length sst2-lora model with selection added at inference; "
        "solid: a model fine-tuned with that selector in the loop, Train-Select), and measured encoder time against "
        "the FLOPs prediction. Every figure comes from a result file in `assets/results`, with the command that "
        "recomputes it."
    )
    results, problems = _results(str(RESULTS_DIR))
    for msg in problems:
        st.warning(f"A result file could not be read: {msg}")
    if not results:
        st.info("No evaluation results are installed in assets/results. Make them with `bash scripts/make_results.sh`.")
    else:
        datasets = sorted({r.dataset for r in results}, key=lambda d: (DATASET_ORDER.index(d) if d in DATASET_ORDER else 9, d))
        dataset = st.selectbox("Data set", datasets, format_func=lambda d: DATASET_NAMES.get(d, d), key="bench_dataset")
        files = [r for r in results if r.dataset == dataset]
        view = dataset_results(results, dataset)
        rows, extra = view.rows, view.references
        c1, c2 = st.columns(2)
        show_regimes = c1.multiselect("Regimes", view.regimes, default=view.regimes, key="bench_regimes",
                                      format_func=lambda g: figures.REGIME_NAMES.get(g, g))
        show = c2.multiselect("Selectors", view.selectors, default=view.selectors, format_func=selector_label,
                              key="bench_selectors")
        has_f1 = any(r.get("macro_f1") is not None for r in rows)
        metric = st.radio("Metric", ["accuracy", "macro_f1"] if has_f1 else ["accuracy"], horizontal=True,
                          key="bench_metric", format_func=lambda m: {"accuracy": "accuracy", "macro_f1": "macro-F1"}[m],
                          help="Macro-F1: the unweighted mean of each class's F1, which a majority class cannot inflate.")
        fig = figures.accuracy_figure(
            view.shown(show, show_regimes), view.full_value(metric),
            f"{'Accuracy' if metric == 'accuracy' else 'Macro-F1'} against FLOPs speedup, "
            f"{DATASET_NAMES.get(dataset, dataset)}, n = {view.n}", metric=metric, full_label=view.inference_head)
        figures.add_reference_heads(fig, extra, show)
        st.plotly_chart(fig, key="bench-acc", width="stretch")
        st.caption(
            "Accuracy against the gold labels; error bars: 95% percentile bootstrap intervals over the examples "
            "(docs/methods.md 9; files made before the intervals existed have none). FLOPs speedup: mean over the examples of the full encoder's FLOPs over "
            "the pyramid's, the selector's own cost included (docs/methods.md 0.3). Each fixed-schedule selector is a "
            "curve over the final retention ρ (1.0 at the left); a learned selector sets its own lengths and is one "
            "point (a diamond: open for inference-only, filled for Train-Select); open markers and dashed lines: "
            "inference-only, filled markers and solid lines: Train-Select."
            + (f" Dotted thin lines: {', '.join(f'`{f.head}`' for f in extra)} in the inference-only regime "
               "(Pyramid-BERT's own setting: fine-tuned from the pre-trained model at one fixed ρ)." if extra else "")
        )
        st.markdown("**Matched speedup**: each run's accuracy (%) at the same FLOPs speedup, interpolated on its curve "
                    "(blank: outside the speedups it reaches), with its 95% paired bootstrap interval; ▼: "
                    "distinguishably below the same regime's full-length model on the same examples (the interval "
                    "of the difference excludes 0). A learned selector's own operating point on the right.")
        table = []
        for m in matched_table([r for r in rows if r["selector"] in show]):
            own = m.pop("own point")
            table.append({"selector": selector_label(m["selector"]),
                          "regime": figures.REGIME_NAMES.get(m["regime"], m["regime"]), "model": m["head"],
                          **{k: panels.matched_cell(m[k], m["intervals"].get(k), m["vs full"].get(k))
                             for k in m if k.endswith("x")},
                          "own operating point": "" if own is None else f"{100 * own[0]:.1f}% at {own[1]:.2f}x"})
        st.dataframe(pd.DataFrame(table), hide_index=True, width="stretch", key="bench-matched")
        _seed_spread(dataset)
        _drop_vs_merge([r for r in rows if r.get("regime", "inference") in show_regimes])
        panels.pairwise_panel([r for r in rows if r["selector"] in show], show_regimes, key="bench")
        with st.expander("Every row of the result file"):
            frame = pd.DataFrame(rows)
            frame["accuracy"] = (100 * frame["accuracy"]).round(2)
            frame["agreement"] = (100 * frame["agreement"]).round(2)
            frame["selector"] = [selector_label(s) for s in frame["selector"]]
            frame = frame.rename(columns={
                "regime": "regime", "head": "model", "retention": "ρ (or measured share reaching the last layer)",
                "n": "texts", "accuracy": "accuracy %", "agreement": "same label as its full model %",
                "flops_speedup": "FLOPs speedup (x)", "wall_s": "encoder time (s)"})
            st.dataframe(frame, hide_index=True, width="stretch", key="bench-table")
        for f in files:
            _meta_caption(f.meta)
        if any(SELECTORS[n].routing == "rejoin" for n in view.selectors if n in SELECTORS):  # beside its rows only
            _token_dropping_claim()

    st.subheader("Measured speed")
    bench, meta = _bench(str(RESULTS_DIR))
    if not bench or not bench.get("speed"):
        st.info("No speed benchmark is installed. Make one with "
                "`python -m pyramid bench --memory --out assets/results/bench.json`.")
        return
    speed = pd.DataFrame(bench["speed"])
    speed["selector"] = [selector_label(s, True) for s in speed["selector"]]
    st.dataframe(speed.rename(columns=SPEED_COLUMNS), hide_index=True, width="stretch", key="bench-speed")
    st.caption(
        "Median encoder wall time of the full model and of the pyramid on the same batch, in the same run (times in "
        "milliseconds); measured speedup = full / pyramid; measured / FLOPs = how much of the predicted saving the "
        "machine delivers. `bert-base` is a 12-layer, 768-wide BERT with random weights (timing does not depend on "
        "the weights)."
    )
    if bench.get("memory"):
        st.markdown("**Peak memory of one training step** (forward and backward)")
        memory = pd.DataFrame(bench["memory"])
        memory["selector"] = [selector_label(s, True) for s in memory["selector"]]
        st.dataframe(memory.rename(columns=MEMORY_COLUMNS), hide_index=True, width="stretch", key="bench-memory")
    _meta_caption(meta)


def _seed_spread(dataset: str) -> None:
    """How much the same training recipe moves between seeds (``seeds__DATASET.json``), where it was measured."""
    rows, meta = load_seed_spread(dataset, RESULTS_DIR)
    if not rows:
        return
    st.markdown("**Seed spread**: the same training recipe with other seeds (each model's own accuracy on this "
                "set, %, at full length and at ρ 0.5, 0.3, 0.1): mean ± standard deviation over the seeds. A "
                "difference between two selectors smaller than this spread may be the seed, not the selector.")
    table = [{"model": r["recipe"], "figure": r["figure"].replace("_", " "),
              "seeds": ", ".join(str(s) for s in r["seeds"]),
              "accuracy per seed %": " / ".join(f"{v:.2f}" for v in r["values"]),
              "mean ± sd %": f"{r['mean']:.2f}" + (f" ± {r['std']:.2f}" if r["std"] is not None else " (one seed)")}
             for r in rows]
    st.dataframe(pd.DataFrame(table), hide_index=True, width="stretch", key="bench-seeds")
    diffs = load_seed_differences(dataset, RESULTS_DIR)
    if diffs:
        st.markdown("**Selector against selector over seeds**: the difference of the two recipes' mean accuracies at "
                    "the same ρ, in points, with a 95% Welch interval over the seeds and a 95% paired interval over "
                    "the seeds both have (seeds with one number share their data order and length draws; *: it "
                    "excludes 0), and in how many seeds the first is ahead. An ordering is called real when both "
                    "intervals exclude 0 and it holds in every seed (✔). Every seed is scored on the same "
                    "sentences, so these intervals count the training's variation; the paired bootstrap intervals "
                    "above count the sentences'.")
        st.dataframe(pd.DataFrame([{
            "selector": selector_label(d["selector_a"], True), "minus": selector_label(d["selector_b"], True),
            "models": f"{d['a']} − {d['b']}", "ρ": d["retention"], "seeds": f"{len(d['seeds_a'])} / {len(d['seeds_b'])}",
            "difference (points)": f"{d['diff']:+.2f} " + (
                "[n/a: every seed scored the same]" if d["low"] is None or d["high"] is None else
                f"[{d['low']:+.2f}, {d['high']:+.2f}]" + (" *" if d["low"] > 0 or d["high"] < 0 else "")),
            "paired": "n/a" if d["paired_low"] is None else (
                f"[{d['paired_low']:+.2f}, {d['paired_high']:+.2f}]"
                + (" *" if d["paired_low"] > 0 or d["paired_high"] < 0 else "")),
            "ahead in": f"{d['a_ahead']} of {d['paired_seeds']} seeds",
            "real": "✔" if _real(d) else ""} for d in diffs]),
            hide_index=True, width="stretch", key="bench-seed-diffs")
    _meta_caption(meta)


def _real(d: dict) -> bool:
    """A seed ordering that survives both analyses: Welch and paired intervals exclude 0 on the same side, and the
    first is ahead in every paired seed (or behind in every one)."""
    if d["low"] is None or d["paired_low"] is None:
        return False
    up = d["low"] > 0 and d["paired_low"] > 0 and d["a_ahead"] == d["paired_seeds"]
    down = d["high"] < 0 and d["paired_high"] < 0 and d["a_ahead"] == 0
    return up or down


def _drop_vs_merge(rows: list[dict]) -> None:
    """Merging minus dropping at the matched speedups, with paired intervals (docs/methods.md 10)."""
    pairs = drop_vs_merge(rows)
    if not pairs:
        return
    st.markdown("**Merge or drop?** Each merging selector's accuracy minus each dropping selector's, in points, at "
                "the same FLOPs speedup on the same examples (95% paired bootstrap interval; *: distinguishable).")
    table = []
    for p in pairs:
        cells = {}
        for k, v in p.items():
            if k.endswith("x"):
                cells[k] = "" if v is None else (f"{100 * v.value:+.1f} [{100 * v.low:+.1f}, {100 * v.high:+.1f}]"
                                                 + (" *" if v.excludes(0.0) else ""))
        table.append({"regime": figures.REGIME_NAMES.get(p["regime"], p["regime"]),
                      "merge": selector_label(p["merge"], True), "minus drop": selector_label(p["drop"], True), **cells})
    st.dataframe(pd.DataFrame(table), hide_index=True, width="stretch", key="bench-merge")


def _token_dropping_claim() -> None:
    """Token Dropping's own claim (pre-training compute), next to its fine-tuning figures."""
    cls = next((c for c in SELECTORS.values() if c.routing == "rejoin"), None)
    if cls is None:
        return
    try:
        selector = cls()
    except ValueError:
        return
    metrics = getattr(selector.config, "metrics", {}) or {}
    base = metrics.get("pretraining_encoder_flops_ratio_bert_base_512")
    ours = metrics.get("pretraining_encoder_flops_ratio_this_model_512")
    if base is None:
        return
    st.caption(f"{cls.short} is a pre-training method; its paper's claim is pre-training compute: with its routing "
               f"(half the tokens through the middle layers) a 512-token MLM step's encoder costs {base:.2f} of the full "
               f"model's FLOPs on BERT-base (the paper's 25% saving) and {ours:.2f} on this 6-layer model. The curves "
               "above use it for classification instead.")
