"""Cached resources and computations shared by the pages.

The model is loaded once per process (``st.cache_resource``), inside the cached function, so that
sessions arriving together never race on transformers' lazy imports. Per-request work is a pure
function of its inputs (``st.cache_data``): nothing per-session is attached to the shared model.
"""

from __future__ import annotations

import threading

import streamlit as st

from pyramid.classifier import HeadLoadError, Prediction, SequenceClassifier, load_classifier, predict_ids
from pyramid.loading import LoadedEncoder, load_encoder, quiet_transformers
from pyramid.projection import Projection, project_trace, warm_up
from pyramid.schedule import Schedule
from pyramid.selectors import get_selector, usable_selectors
from pyramid.trace import Trace, TokenizedText, tokenize, trace_text


@st.cache_resource(show_spinner="Loading the model (once per server)…")
def get_encoder(model_name: str, allow_hub: bool) -> LoadedEncoder:
    """The loaded model for ``model_name`` (raises ``ModelLoadError``, which is not cached)."""
    quiet_transformers()
    return load_encoder(model_name, allow_hub=allow_hub)


@st.cache_resource(show_spinner=False)
def umap_warmup_thread() -> threading.Thread:
    """Start UMAP's one-time JIT compile in the background when the server starts."""
    thread = threading.Thread(target=warm_up, name="umap-warmup", daemon=True)
    thread.start()
    return thread


@st.cache_data(show_spinner=False, max_entries=256)
def tokenize_cached(_encoder: LoadedEncoder, model_name: str, text: str, max_tokens: int) -> TokenizedText:
    """Tokenization of ``text`` (raises ``EmptyTextError``)."""
    return tokenize(_encoder, text, max_tokens)


@st.cache_data(show_spinner=False, max_entries=128)
def run_all_selectors(
    _encoder: LoadedEncoder, model_name: str, text: str, retention: float, start_layer: int,
    seed: int, max_tokens: int,
) -> dict[str, Trace]:
    """One trace per registered selector, same text and schedule (for the comparisons)."""
    tokenized = tokenize(_encoder, text, max_tokens)
    schedule = Schedule(retention=retention, start_layer=start_layer)
    traces = {}
    for name in usable_selectors(model_name):
        selector = get_selector(name)
        encoder = _encoder
        if selector.head is not None:
            # The selector runs on the fine-tuned encoder of its head (learned weights read its states).
            try:
                encoder = get_classifier(_encoder, model_name, selector.head).encoder
            except HeadLoadError:
                continue
        traces[name] = trace_text(encoder, text, selector, schedule, seed=seed, tokenized=tokenized)
    return traces


@st.cache_data(show_spinner=False, max_entries=128)
def projection_for(_trace: Trace, key: tuple) -> Projection:
    """UMAP of a trace (``key`` identifies the trace: model, text, selector, schedule, seed)."""
    return project_trace(_trace)


@st.cache_resource(show_spinner="Loading the sentiment head (once per server)…")
def get_classifier(_encoder: LoadedEncoder, model_name: str, head: str) -> SequenceClassifier:
    """A shipped sentiment head on the loaded model (raises ``HeadLoadError``, which is not cached)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return load_classifier(head, _encoder)


@st.cache_data(show_spinner=False, max_entries=128)
def predictions_for(
    _classifier: SequenceClassifier, head: str, model_name: str, input_ids: tuple[int, ...],
    retention: float, start_layer: int, seed: int,
) -> dict[str, Prediction]:
    """The head's prediction at full length and under every selector, same schedule as the traces."""
    schedule = Schedule(retention=retention, start_layer=start_layer)
    out = {}
    full = None
    for name in usable_selectors(model_name):
        selector = get_selector(name)
        if selector.head not in (None, head):
            continue  # tied to another head
        out[name] = predict_ids(_classifier, list(input_ids), selector, schedule, seed=seed, full_probs=full)
        full = out[name].full_probs  # the full-length run once per text
    return out


@st.cache_data(show_spinner=False, max_entries=64)
def saliency_for(_classifier: SequenceClassifier, head: str, input_ids: tuple[int, ...], k: int, ig_steps: int):
    """:class:`pyramid.attribution.SaliencyReport` of one text."""
    from pyramid.attribution import saliency_report

    learned = [get_selector(n) for n in usable_selectors(_classifier.encoder.name)]
    learned = [s for s in learned if s.head == head]  # their scores join the comparison
    return saliency_report(_classifier, list(input_ids), k=k, ig_steps=ig_steps, selectors=learned)


@st.cache_data(show_spinner=False, max_entries=64)
def traces_for_classifier(_classifier: SequenceClassifier, head: str, input_ids: tuple[int, ...],
                          retention: float) -> dict[str, Trace]:
    """One trace per selector on the classifier's own (merged) encoder, start layer 1."""
    schedule = Schedule(retention=retention, start_layer=1)
    tok = _classifier.encoder.tokenizer
    tokenized = TokenizedText(input_ids=list(input_ids), tokens=tok.convert_ids_to_tokens(list(input_ids)),
                              truncated=False, original_length=len(input_ids), max_length=len(input_ids))
    names = [n for n in usable_selectors(_classifier.encoder.name) if get_selector(n).head in (None, head)]
    return {name: trace_text(_classifier.encoder, "", name, schedule, tokenized=tokenized) for name in names}
