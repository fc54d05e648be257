"""The Evaluate page: a labelled file of the user's (or a data set on the server) through every chosen selector
and retention, on the chosen model, with intervals and paired comparisons.

Flow: the model (sidebar) -> the file (upload, or one of the server's data sets) -> its columns and how its
labels map onto the model's -> selectors, regimes, retentions -> Run: a :class:`app.sweep.SweepJob` in a
background thread (one per session), its progress drawn by a fragment that reruns every second, with a
Cancel button -> the accuracy and macro-F1 against FLOPs speedup chart with 95% intervals, the table, the
paired comparisons, and CSV/JSON downloads (CSV cells safe to open in a spreadsheet).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd
import streamlit as st

from pyramid.classifier import HeadLoadError
from pyramid.plan import plan_evaluation
from pyramid.data import DataError, LABEL_COLUMNS, TEXT_COLUMNS, Table, labelled_from_table, parse_table
from pyramid.core.selectors import SELECTORS, selector_label

from pyramid.present import figures

from . import panels
from .model_menu import load_chosen_model
from .resources import on_torch, selectors_for
from .settings import Settings, data_files, load_settings
from .sweep import SessionToken, SweepJob, SweepPlan, bind_to_session

RETENTIONS = (1.0, 0.7, 0.5, 0.3, 0.2, 0.1, 0.05)
DEFAULT_RETENTIONS = (0.5, 0.3, 0.1)
BATCH_SIZE = 16
UPLOAD, SERVER = "Upload a file", "A data set on this server"
KEEP_COLUMNS = ("regime", "head", "selector", "retention", "n", "accuracy", "ci_low", "ci_high", "macro_f1", "f1_low",
                "f1_high", "agreement", "diff_full", "diff_low", "diff_high", "flops_speedup", "wall_s")
"""Columns of the downloads (the per-example bits stay on the server)."""


@st.cache_data(show_spinner=False, max_entries=16)
def _table(raw: bytes, name: str, digest: str, max_bytes: int, max_rows: int) -> Table:
    """The parsed file (cached by content; raises ``DataError``)."""
    return parse_table(raw, name, max_bytes=max_bytes, max_rows=max_rows)


def _read_server_file(settings: Settings, rel: str) -> tuple[bytes, str]:
    path = (settings.data_root / rel).resolve()
    if settings.data_root is None or Path(settings.data_root).resolve() not in path.parents:
        raise DataError("That file is not under the server's data folder.")
    max_bytes = int(settings.max_upload_mb * 1e6)
    if path.stat().st_size > max_bytes:
        raise DataError(f"{rel} is {path.stat().st_size / 1e6:.1f} MB; this server takes files up to "
                        f"{settings.max_upload_mb:g} MB (PYRAMID_LENS_MAX_UPLOAD_MB).")
    return path.read_bytes(), rel


def _source(settings: Settings) -> tuple[bytes, str] | None:
    """The file's bytes and name, from an upload or the server's data sets (None until there is one)."""
    files = data_files(settings.data_root)
    options = [UPLOAD] + ([SERVER] if files else [])
    source = st.radio("Data", options, horizontal=True, key="ev_source")
    if source == SERVER:
        rel = st.selectbox("Data set", files, key="ev_server_file",
                           help=f"CSV and TSV files under the server's data folder `{settings.data_root}` "
                                "(PYRAMID_LENS_DATA_ROOT).")
        try:
            return _read_server_file(settings, rel)
        except (DataError, OSError) as exc:
            st.error(str(exc))
            return None
    upload = st.file_uploader(
        "A CSV or TSV file with a header row, a text column and a label column", type=["csv", "tsv", "tab", "txt"],
        key="ev_upload", help=f"UTF-8 text, at most {settings.max_upload_mb:g} MB; the first "
                              f"{settings.max_eval_rows:,} rows are evaluated. Labels may be the model's label names "
                              "(any case) or their ids.")
    if upload is None:
        return None
    return upload.getvalue(), upload.name


def render() -> None:
    """Draw the Evaluate page."""
    settings = load_settings()
    st.title("Pyramid Lens · evaluate")
    st.caption("Your data, honest numbers: run a labelled file through the selectors and retentions you choose, on the "
               "model chosen in the sidebar, and read each one's accuracy and macro-F1 with a 95% interval, whether it "
               "differs from the full-length model, and which selectors differ from each other (docs/methods.md 9).")
    model = load_chosen_model(settings)
    if model is None:
        return
    head = model.inference_head
    if head is None:
        st.info(f"'{model.name}' is a plain encoder with no classifier trained on it, so there is nothing to evaluate. "
                "Choose the default model, or put a fine-tuned classifier checkpoint in the model cache.")
        return
    try:
        labels = on_torch(model.classifier, head).labels
    except HeadLoadError as exc:
        st.error(f"Could not load the classifier of '{model.name}': {exc}")
        return
    ss = st.session_state
    job: SweepJob | None = ss.get("ev_job")
    if job is not None and job.running:
        _progress(job)
        return

    got = _source(settings)
    if got is None:
        _results(job, labels)
        return
    raw, name = got
    try:
        table = _table(raw, name, hashlib.sha256(raw).hexdigest(), int(settings.max_upload_mb * 1e6),
                       settings.max_eval_rows)
    except DataError as exc:
        st.error(str(exc))
        return
    note = (f" (the first {len(table.rows):,} of {table.total_rows:,} rows are used: PYRAMID_LENS_MAX_EVAL_ROWS)"
            if table.truncated else "")
    st.caption(f"`{name}`: {len(table.rows):,} rows{note}, columns {', '.join(f'`{c}`' for c in table.header)}.")
    with st.form("ev-form"):
        c1, c2 = st.columns(2)
        guess_t, guess_l = table.guess(TEXT_COLUMNS), table.guess(LABEL_COLUMNS)
        text_col = c1.selectbox("Text column", table.header, key="ev_text_col",
                                index=table.header.index(guess_t) if guess_t else 0)
        label_col = c2.selectbox("Label column", table.header, key="ev_label_col",
                                 index=table.header.index(guess_l) if guess_l else min(1, len(table.header) - 1))
        regimes_here = ["inference"] + (["train-select"] if selectors_for(model, model.name, "train-select") else [])
        c3, c4, c5 = st.columns([3, 2, 2])
        names = selectors_for(model, model.name, "inference")
        plain = [n for n in names if SELECTORS[n].fixed_length and SELECTORS[n].routing == "drop"]
        chosen = c3.multiselect("Selectors", names, default=plain,
                                format_func=selector_label, key="ev_selectors")
        own_ts = selectors_for(model, model.name, "train-select") if model.has_own_head else []
        regimes = c4.multiselect("Regimes", regimes_here, default=regimes_here if own_ts else ["inference"],
                                 key="ev_regimes", format_func=lambda g: figures.REGIME_NAMES.get(g, g),
                                 help="Train-Select runs each selector on the model fine-tuned with it in the loop: "
                                      "the project's heads on the default model; for your own checkpoint, the "
                                      "`CHECKPOINT-ts-SELECTOR` models that `python -m pyramid train --model "
                                      "CHECKPOINT --selector SELECTOR` writes beside it in the model cache"
                                      + (f" (here: {', '.join(selector_label(s, short=True) for s in own_ts)})"
                                         if own_ts else "") + ".")
        retentions = c5.multiselect("Final retention ρ", list(RETENTIONS), default=list(DEFAULT_RETENTIONS),
                                    key="ev_retentions", help="Full length (ρ = 1) is always evaluated: every row is "
                                                              "compared with it.")
        submitted = st.form_submit_button("Run the sweep", type="primary")
    try:
        data = labelled_from_table(table, text_col, label_col, labels)
    except DataError as exc:
        st.error(str(exc))
        _results(job, labels)
        return
    counts = pd.Series([labels[i] for i in data.labels]).value_counts()
    st.caption(f"{len(data):,} labelled texts; labels mapped onto the model's: "
               + ", ".join(f"{k} {v:,}" for k, v in counts.items()) + ".")
    if submitted:
        if not chosen or not regimes:
            st.warning("Choose at least one selector and one regime.")
        else:
            runs = [(r.regime, r.head, r.selectors) for r in plan_evaluation(model, chosen, regimes).runs]
            if not runs:
                st.warning("None of the chosen selectors runs on this model in the chosen regimes.")
            else:
                plan = SweepPlan(runs, sorted({1.0, *map(float, retentions)}, reverse=True), BATCH_SIZE,
                                 min(settings.max_tokens, model.max_length))
                job = SweepJob(model, data, plan, on_torch)
                ss["ev_token"] = token = SessionToken()
                bind_to_session(job, token)
                ss["ev_job"] = job.start()
                ss["ev_job_name"] = name
                st.rerun()
    _results(job, labels)


@st.fragment(run_every=1.0)
def _progress(job: SweepJob) -> None:
    """The running sweep: a progress bar, its pace and a Cancel button (redrawn every second)."""
    if not job.running:
        st.rerun()  # the whole page, now with the results
    frac = job.done / job.total if job.total else 0.0
    st.progress(frac, text=f"{job.done:,} of {job.total:,} example passes, {job.what}; {job.rate:.1f} examples/s, "
                           f"{job.seconds:.0f} s")
    if st.button("Cancel", key="ev_cancel"):
        job.cancel()
        st.info("Cancelling after the batch in progress…")
    st.caption("The sweep runs on the server in the background (one per session); other users' runs are answered "
               "between its batches.")


def _results(job: SweepJob | None, labels: list[str]) -> None:
    """The finished sweep: chart with intervals, table, paired comparisons, downloads."""
    if job is None:
        return
    if job.error:
        st.error(f"The sweep failed: {job.error}")
        return
    if job.cancelled:
        st.warning(f"The sweep was cancelled after {job.done:,} of {job.total:,} example passes; nothing to show.")
        return
    if not job.rows:
        return
    rows = job.rows
    name = st.session_state.get("ev_job_name", "the file")
    st.subheader(f"Results: {name}")
    st.caption(f"{rows[0]['n']:,} texts; {job.done:,} example passes in {job.seconds:.1f} s ({job.rate:.1f} examples/s); "
               f"model {rows[0]['head']}.")
    metric = st.radio("Metric", ["accuracy", "macro_f1"], horizontal=True, key="ev_metric",
                      format_func=lambda m: {"accuracy": "accuracy", "macro_f1": "macro-F1"}[m])
    full = next((r[metric] for r in rows if r["regime"] == "inference" and r["retention"] >= 1.0), None)
    st.plotly_chart(figures.accuracy_figure(rows, full, f"{'Accuracy' if metric == 'accuracy' else 'Macro-F1'} "
                                                        f"against FLOPs speedup, {name}, n = {rows[0]['n']}",
                                            metric=metric, full_label=rows[0]["head"]),
                    key="ev-chart", width="stretch")
    table = pd.DataFrame([{
        "selector": selector_label(r["selector"]), "regime": figures.REGIME_NAMES.get(r["regime"], r["regime"]),
        "ρ": r["retention"], "FLOPs speedup": round(r["flops_speedup"], 2),
        "accuracy %": f"{100 * r['accuracy']:.1f} [{100 * r['ci_low']:.1f}, {100 * r['ci_high']:.1f}]",
        "macro-F1": f"{100 * r['macro_f1']:.1f} [{100 * r['f1_low']:.1f}, {100 * r['f1_high']:.1f}]",
        "vs full length (points)": ("" if r["retention"] >= 1.0 and r["diff_full"] == 0 else
                                    f"{100 * r['diff_full']:+.1f} [{100 * r['diff_low']:+.1f}, {100 * r['diff_high']:+.1f}]"
                                    + (" *" if r["diff_low"] > 0 or r["diff_high"] < 0 else "")),
        "same label as full %": round(100 * r["agreement"], 1),
    } for r in rows])
    st.dataframe(table, hide_index=True, width="stretch", key="ev-table")
    st.caption("95% percentile bootstrap intervals over the texts (2,000 resamples, seed 0). *: distinguishable from "
               "the same model at full length (the paired interval of the difference excludes 0). FLOPs speedup "
               "counts the selector's own cost. Labels: " + ", ".join(labels) + ".")
    panels.pairwise_panel(rows, list(dict.fromkeys(r["regime"] for r in rows)), key="ev")
    stem = "pyramid-lens_evaluate_" + "".join(c if c.isalnum() or c in "-_" else "_" for c in Path(name).stem)[:60]
    kept = [{k: r[k] for k in KEEP_COLUMNS} for r in rows]
    c1, c2 = st.columns(2)
    c1.download_button("Results (CSV)", data=lambda: panels.safe_csv(kept), file_name=f"{stem}.csv", mime="text/csv",
                       on_click="ignore", key="ev-csv")
    c2.download_button("Results (JSON)", data=lambda: json.dumps({"data": name, "rows": kept}, indent=1),
                       file_name=f"{stem}.json", mime="application/json", on_click="ignore", key="ev-json")
    if st.button("Clear the results", key="ev_clear"):
        st.session_state.pop("ev_job", None)
        st.rerun()
