"""The Benchmarks page: accuracy against retention and FLOPs speedup, and measured speed.

Reads the result files shipped in ``assets/results`` (see :mod:`pyramid.results`); each shows the
command that made it, so that anyone can recompute it.
"""

from __future__ import annotations

import html

import pandas as pd
import streamlit as st

from pyramid.results import RESULTS_DIR, load_bench, load_eval_results

from . import figures

DATASET_NAMES = {"sst2-dev": "SST-2 dev (872 sentences)", "imdb-dev": "IMDB reviews (600, long)"}
HEAD_NAMES = {
    "sst2-lora": "sst2-lora: fine-tuned at full length, selection at inference only",
    "sst2-lora-pyramid": "sst2-lora-pyramid: fine-tuned with core-set selection in the loop",
}


@st.cache_data(show_spinner=False, ttl=60)
def _results(folder: str):
    return load_eval_results(folder)


@st.cache_data(show_spinner=False, ttl=60)
def _bench(folder: str):
    return load_bench(folder)


def _matched_rows(rows: list[dict]) -> list[dict]:
    """One row per learned selector: its accuracy and speedup, and each fixed-schedule selector's at that speedup."""
    from pyramid.results import accuracy_at_speedup
    from pyramid.selectors import SELECTORS

    names = list(dict.fromkeys(r["selector"] for r in rows))
    fixed = [n for n in names if n in SELECTORS and SELECTORS[n].fixed_length]
    out = []
    for name in names:
        if name not in SELECTORS or SELECTORS[name].uses_retention:
            continue
        r = next(x for x in rows if x["selector"] == name)
        row = {"selector": SELECTORS[name].label, "accuracy %": round(100 * r["accuracy"], 2),
               "FLOPs speedup": round(r["flops_speedup"], 3), "tokens reaching the last layer %": round(100 * r["retention"], 1)}
        for other in fixed:
            acc = accuracy_at_speedup(rows, other, r["flops_speedup"])
            row[f"{SELECTORS[other].short} at that speedup %"] = round(100 * acc, 2) if acc is not None else None
        out.append(row)
    return out


def _meta_caption(meta: dict) -> None:
    if meta.get("command"):
        st.caption(f"Made on {html.escape(str(meta.get('date', '?')))} ({html.escape(str(meta.get('machine', '')))}) by:")
        st.code(meta["command"], language="bash")


def render() -> None:
    """Draw the Benchmarks page."""
    st.title("Pyramid Lens · benchmarks")
    st.caption(
        "What token reduction costs and saves on real data: accuracy of the sentiment heads against the "
        "final retention ratio and the analytic FLOPs speedup, one line per selector, and measured encoder "
        "time against the FLOPs prediction. Every figure comes from a result file in `assets/results`, with "
        "the command that recomputes it."
    )
    results, problems = _results(str(RESULTS_DIR))
    for msg in problems:
        st.warning(f"A result file could not be read: {msg}")
    if not results:
        st.info("No evaluation results are installed in assets/results. Make them with "
                "`python -m pyramid evaluate --data ../shared/data/sst2/dev.tsv --out assets/results/eval__sst2-dev__sst2-lora.csv`.")
    else:
        datasets = list(dict.fromkeys(r.dataset for r in results))
        c1, c2 = st.columns(2)
        dataset = c1.selectbox("Data set", datasets, format_func=lambda d: DATASET_NAMES.get(d, d), key="bench_dataset")
        heads = [r.head for r in results if r.dataset == dataset]
        head = c2.selectbox("Sentiment head", heads, format_func=lambda h: HEAD_NAMES.get(h, h), key="bench_head")
        res = next(r for r in results if r.dataset == dataset and r.head == head)
        full = res.full_accuracy
        left, right = st.columns(2)
        left.plotly_chart(figures.accuracy_figure(res.rows, "retention", full, "Accuracy vs retention"),
                          key="bench-acc-ret", width="stretch")
        right.plotly_chart(figures.accuracy_figure(res.rows, "flops_speedup", full, "Accuracy vs FLOPs speedup"),
                           key="bench-acc-flops", width="stretch")
        st.caption(
            "Accuracy against the gold labels. FLOPs speedup: mean over the examples of the full encoder's "
            "FLOPs over the pyramid's, the selector's own cost included (docs/methods.md 1.3). The dotted line is "
            "1.5 points below full length, Pyramid-BERT's headline accuracy loss."
        )
        table = pd.DataFrame(res.rows)
        table["accuracy"] = (100 * table["accuracy"]).round(2)
        table["agreement"] = (100 * table["agreement"]).round(2)
        table = table.rename(columns={"accuracy": "accuracy %", "agreement": "agreement with full %",
                                      "flops_speedup": "FLOPs speedup", "wall_s": "encoder time (s)"})
        st.dataframe(table, hide_index=True, width="stretch", key="bench-table")
        matched = _matched_rows(res.rows)
        if matched:
            st.markdown("**Learned selectors at matched speedup**: each sets its own lengths, so it has one operating "
                        "point; the fixed-schedule selectors' accuracy at the same FLOPs speedup is interpolated "
                        "from their curves.")
            st.dataframe(pd.DataFrame(matched), hide_index=True, width="stretch", key="bench-matched")
        _meta_caption(res.meta)

    st.subheader("Measured speed")
    bench, meta = _bench(str(RESULTS_DIR))
    if not bench or not bench.get("speed"):
        st.info("No speed benchmark is installed. Make one with "
                "`python -m pyramid bench --memory --out assets/results/bench.json`.")
        return
    speed = pd.DataFrame(bench["speed"])
    st.dataframe(speed, hide_index=True, width="stretch", key="bench-speed")
    st.caption(
        "Median encoder wall time of the full model and of the pyramid on the same batch, in the same run; "
        "measured speedup = full / pyramid; ratio = measured / FLOPs-predicted speedup. `bert-base` is a "
        "12-layer, 768-wide BERT with random weights (timing does not depend on the weights)."
    )
    if bench.get("memory"):
        st.markdown("**Peak memory of one training step** (forward and backward)")
        st.dataframe(pd.DataFrame(bench["memory"]), hide_index=True, width="stretch", key="bench-memory")
    _meta_caption(meta)
