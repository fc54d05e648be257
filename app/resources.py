"""Cached resources and computations shared by the pages.

Models are loaded once per process (``st.cache_resource``), inside the cached function, so that
sessions arriving together never race on transformers' lazy imports. Per-request work is a pure
function of its inputs (``st.cache_data``): nothing per-session is attached to a shared model. Each
computation is separate, so a page computes only what it shows: the chosen selector's trace and the
compared one on Run, the other selectors' traces when the user asks for them, the projection when
its tab opens.
"""

from __future__ import annotations

import gc
import threading

import streamlit as st

from pyramid.artifacts import DEFAULT_HEAD
from pyramid.classifier import HeadLoadError, Prediction, SequenceClassifier, load_classifier, predict_ids
from pyramid.loading import LoadedEncoder, load_encoder, quiet_transformers
from pyramid.projection import Projection, project_trace, warm_up
from pyramid.schedule import Schedule
from pyramid.selectors import get_selector, unavailable_reason, usable_selectors
from pyramid.trace import Trace, TokenizedText, tokenize, trace_text


def freeze_long_lived() -> None:
    """Move every object alive now (models, tokenizers, torch, transformers, numba) into the garbage
    collector's permanent generation (``gc.freeze``), after one collection.

    Streamlit runs a full ``gc.collect()`` after every script run (``runner.postScriptGC``): with a
    loaded model that full pass walks millions of long-lived objects and took about 0.33 s of each
    Run on 2 cores (``scripts/profile_app.py``). Frozen objects are skipped by that pass, so it
    costs only what the run itself allocated; new garbage is still collected as before. Called
    once after each model, head and the UMAP warm-up load.
    """
    gc.collect()
    gc.freeze()


@st.cache_resource(show_spinner="Loading the model (once per server)…")
def get_encoder(model: str, allow_hub: bool) -> LoadedEncoder:
    """The loaded model: the default model's name, a folder under the allowed root (the sidebar only
    offers those), or a hub id when allowed (raises ``ModelLoadError``, which is not cached)."""
    quiet_transformers()
    loaded = load_encoder(model, allow_hub=allow_hub)
    freeze_long_lived()
    return loaded


UMAP_WARMUP_DELAY_S = 3.0
"""Seconds the UMAP compile waits after the first answer, so that it does not compete for the 2 cores
with the end of that script run and the browser drawing the first page (on 2 cores this took the cold
start from 12.5-13.0 s to 9.3-9.9 s, ``scripts/bench_explorer.py``); opening the Embeddings tab starts it
at once."""


class UmapWarmup:
    """UMAP's one-time JIT compile (``warm_up``) in a background thread, one per server.

    The thread waits ``UMAP_WARMUP_DELAY_S`` seconds, or until :meth:`wait` is called, then compiles.
    """

    def __init__(self) -> None:
        self._go = threading.Event()
        self._thread = threading.Thread(target=self._run, name="umap-warmup", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        self._go.wait(UMAP_WARMUP_DELAY_S)
        warm_up()
        freeze_long_lived()

    def is_alive(self) -> bool:
        """True until the compile has finished."""
        return self._thread.is_alive()

    def wait(self) -> None:
        """Start the compile now if it is still waiting, and block until it has finished."""
        self._go.set()
        self._thread.join()


@st.cache_resource(show_spinner=False)
def umap_warmup_thread() -> UmapWarmup:
    """Start UMAP's one-time JIT compile in the background (once per server; see :class:`UmapWarmup`)."""
    return UmapWarmup()


@st.cache_resource(show_spinner="Loading a sentiment head (once per server)…")
def get_classifier(_encoder: LoadedEncoder, model_name: str, head: str) -> SequenceClassifier:
    """A shipped sentiment head on the loaded model (raises ``HeadLoadError``, which is not cached)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        classifier = load_classifier(head, _encoder)
    freeze_long_lived()
    return classifier


@st.cache_data(show_spinner=False, max_entries=256)
def tokenize_cached(_encoder: LoadedEncoder, model_name: str, text: str, max_tokens: int) -> TokenizedText:
    """Tokenization of ``text`` (raises ``EmptyTextError``)."""
    return tokenize(_encoder, text, max_tokens)


@st.cache_data(show_spinner=False, max_entries=64)
def selectors_for(model_name: str, regime: str) -> list[str]:
    """The selectors that run on this model in this regime (one answer, shared with the CLI)."""
    return usable_selectors(model_name, regime)


@st.cache_data(show_spinner=False, max_entries=64)
def why_unavailable(name: str, model_name: str, regime: str) -> str | None:
    """Why a selector cannot run here (None when it can)."""
    return unavailable_reason(name, model_name, regime)


def _encoder_for(encoder: LoadedEncoder, model_name: str, selector) -> LoadedEncoder:
    """The encoder a selector runs on: the base, or the encoder of the head it names."""
    if selector.head is None:
        return encoder
    return get_classifier(encoder, model_name, selector.head).encoder


@st.cache_data(show_spinner=False, max_entries=256)
def trace_for(_encoder: LoadedEncoder, model_name: str, text: str, selector: str, regime: str, retention: float,
              start_layer: int, seed: int, max_tokens: int) -> Trace:
    """One selector's trace of one text (its regime's model; raises ``HeadLoadError``, ``ValueError``)."""
    sel = get_selector(selector, regime)
    tokenized = tokenize(_encoder, text, max_tokens)
    return trace_text(_encoder_for(_encoder, model_name, sel), text, sel,
                      Schedule(retention=retention, start_layer=start_layer), seed=seed, tokenized=tokenized)


@st.cache_data(show_spinner=False, max_entries=256)
def prediction_for(_encoder: LoadedEncoder, model_name: str, input_ids: tuple[int, ...], selector: str | None,
                   regime: str, retention: float, start_layer: int, seed: int) -> Prediction | None:
    """The prediction of the head a selector runs with in its regime (``selector`` None: ``sst2-lora`` at
    full length); None when no head fits this model."""
    sel = get_selector(selector, regime) if selector is not None else None
    head = sel.prediction_head if sel is not None else DEFAULT_HEAD
    try:
        clf = get_classifier(_encoder, model_name, head)
    except HeadLoadError:
        return None
    if sel is None:
        from pyramid.selectors import full_length_selector

        sel = full_length_selector()
        retention = 1.0
    return predict_ids(clf, list(input_ids), sel, Schedule(retention=retention, start_layer=start_layer), seed=seed)


@st.cache_data(show_spinner=False, max_entries=64)
def projection_for(_trace: Trace, key: tuple) -> Projection:
    """UMAP of a trace (``key`` identifies the trace: model, text, selector, regime, schedule, seed)."""
    return project_trace(_trace)


@st.cache_data(show_spinner=False, max_entries=64)
def saliency_for(_classifier: SequenceClassifier, head: str, input_ids: tuple[int, ...], k: int, ig_steps: int):
    """:class:`pyramid.attribution.SaliencyReport` of one text; the learned selectors trained on this
    head add their own score rows."""
    from pyramid.attribution import saliency_report

    learned = [get_selector(n) for n in usable_selectors(_classifier.encoder.name)]
    learned = [s for s in learned if s.head == head]
    return saliency_report(_classifier, list(input_ids), k=k, ig_steps=ig_steps, selectors=learned)


@st.cache_data(show_spinner=False, max_entries=64)
def traces_for_classifier(_classifier: SequenceClassifier, head: str, input_ids: tuple[int, ...],
                          retention: float) -> dict[str, Trace]:
    """One trace per selector that runs on this head's encoder, start layer 1 (the Saliency page)."""
    schedule = Schedule(retention=retention, start_layer=1)
    tok = _classifier.encoder.tokenizer
    tokenized = TokenizedText(input_ids=list(input_ids), tokens=tok.convert_ids_to_tokens(list(input_ids)),
                              truncated=False, original_length=len(input_ids), max_length=len(input_ids))
    names = [n for n in usable_selectors(_classifier.encoder.name) if get_selector(n).head in (None, head)]
    return {name: trace_text(_classifier.encoder, "", name, schedule, tokenized=tokenized) for name in names}
