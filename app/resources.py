"""Cached resources and computations shared by the pages.

Models are loaded once per process (``st.cache_resource``), inside the cached function, so that
sessions arriving together never race on transformers' lazy imports; a :class:`pyramid.api.Model`
loads its classifiers on first use, under its own lock. A trace carries the prediction of its own
pass, and the full-length answer is computed once per classifier and text (the model's cache), so a
Run makes about five encoder passes (two traces, the full-length answer, the two selectors' other
regime). Per-request work is a pure
function of its inputs (``st.cache_data``): nothing per-session is attached to a shared model. Each
computation is separate, so a page computes only what it shows: the chosen selector's trace and the
compared one on Run, the other selectors' traces when the user asks for them, the projection when
its tab opens.
"""

from __future__ import annotations

import functools
import gc
import threading

import streamlit as st

from pyramid.api import Model

from .cache import ByteBudgetCache
from pyramid.classifier import HeadLoadError, Prediction
from pyramid.core.loading import load_encoder, quiet_transformers
from pyramid.present.projection import Projection, project_trace, warm_up
from pyramid.core.schedule import Schedule
from pyramid.plan import plan_evaluation, shown_regime
from pyramid.tokenization import TokenizedText
from pyramid.trace import Trace


def freeze_long_lived(collect: bool = True) -> None:
    """Move every object alive now (models, tokenizers, torch, transformers, numba) into the garbage
    collector's permanent generation (``gc.freeze``), after one collection unless ``collect`` is False.

    Streamlit runs a full ``gc.collect()`` after every script run (``runner.postScriptGC``): with a
    loaded model that full pass walks millions of long-lived objects and took about 0.33 s of each
    Run on 2 cores (``scripts/profile_app.py``). Frozen objects are skipped by that pass, so it
    costs only what the run itself allocated; new garbage is still collected as before. Called
    once after each model, head and the UMAP warm-up load.

    Loading a model or a head leaves almost no garbage (a collection right after the default model's
    load found 45 unreachable objects and freed nothing measurable, in 0.2 s), so those loads, which a
    visitor waits for, freeze without collecting (``collect=False``); the UMAP warm-up, in the background,
    collects first.
    """
    if collect:
        gc.collect()
    gc.freeze()


class TorchThread:
    """One long-lived thread that runs every torch computation of the server, one at a time.

    Why (measured, 2 cores, 128-token texts, the five passes of a Run): torch's OpenMP pool belongs to the
    thread that calls it. Streamlit runs each script run in a new thread, so each Run got a new pool, and
    while more OpenMP threads exist than cores, libgomp stops spinning between parallel regions
    (its throttled spin count): the same passes took 180-210 ms off the thread that owns the pool against
    93-104 ms on it. On one thread the pool stays warm. On 2 cores, serialising the work also costs
    concurrent sessions nothing: each pass already uses both cores.

    Threads per job: all cores (torch's default, or ``PYRAMID_LENS_TORCH_THREADS``) while a job runs alone,
    one while others wait behind it (:attr:`pending` > 1). Measured with 8 sessions pressing Run together, two
    rounds (``scripts/load_test.py --rounds 2``, ~25- and ~500-token texts, 2 cores): when something else
    wants the cores too (there, the 8 browsers at full priority), every two-thread parallel region waits for
    a core and the passes crawl: the server's answer p95 31.4 s and 34.6 CPU seconds, against 11.3 s and 9.6
    CPU seconds with one thread per queued job. With the cores to itself (browsers at nice 19) both ways give
    a p95 of ~2.2 s. One user alone keeps both cores.
    """

    def __init__(self) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=TORCH_THREAD, initializer=self._setup)
        self._lock = threading.Lock()
        self._pending = 0
        self._threads = 0  # all cores: set on the thread itself (_setup)

    @property
    def pending(self) -> int:
        """Jobs submitted and not finished (the one running included): the queue a new Run waits behind."""
        return self._pending

    def _done(self, _future) -> None:
        with self._lock:
            self._pending -= 1

    def _setup(self) -> None:
        import os

        import torch

        n = os.environ.get("PYRAMID_LENS_TORCH_THREADS", "").strip()
        if n.isdigit() and int(n) > 0:
            torch.set_num_threads(int(n))
        self._threads = torch.get_num_threads()

    def _threads_for_next_job(self) -> None:
        """One torch thread while other jobs wait behind this one, all of them otherwise (see the class)."""
        import torch

        want = 1 if self._pending > 1 else self._threads
        if want and torch.get_num_threads() != want:
            torch.set_num_threads(want)

    def run(self, fn, *args, **kwargs):
        """``fn(*args, **kwargs)`` on the torch thread (directly when already on it); its result or exception.

        A job waits in the queue behind the others; when its turn comes and the browser session that asked for
        it has gone (tab closed, :func:`_session_alive`), it is skipped (:class:`SessionGone`), so a student who
        leaves frees the cores for those still waiting.

        Raises:
            SessionGone: the asking session disconnected before the job started.
        """
        if threading.current_thread().name.startswith(TORCH_THREAD):
            return fn(*args, **kwargs)
        alive = _session_alive()

        def job():
            if alive is not None and not alive():
                raise SessionGone("the session that asked for this computation has gone")
            self._threads_for_next_job()
            return fn(*args, **kwargs)

        with self._lock:
            self._pending += 1
        future = self._pool.submit(job)
        future.add_done_callback(self._done)
        return future.result()


class SessionGone(RuntimeError):
    """A queued computation was skipped because the browser session that asked for it had disconnected."""


def _session_alive():
    """A callable telling whether the calling script run's browser session is still connected, or None outside
    a Streamlit server (tests, bare mode)."""
    from streamlit import runtime
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    ctx = get_script_run_ctx(suppress_warning=True)
    if ctx is None or not runtime.exists():
        return None
    rt, session_id = runtime.get_instance(), ctx.session_id
    return lambda: rt.is_active_session(session_id)


TORCH_THREAD = "pyramid-torch"
"""Name prefix of the server's torch thread (:class:`TorchThread`)."""


@st.cache_resource(show_spinner=False)
def torch_thread() -> TorchThread:
    """The server's torch thread (one per process)."""
    return TorchThread()


def on_torch(fn, *args, **kwargs):
    """Run ``fn`` on the server's torch thread (see :class:`TorchThread`)."""
    return torch_thread().run(fn, *args, **kwargs)


def _load_model(model: str, allow_hub: bool) -> Model:
    quiet_transformers()
    loaded = Model(load_encoder(model, allow_hub=allow_hub), on_load=functools.partial(freeze_long_lived, collect=False))
    freeze_long_lived(collect=False)
    return loaded


@st.cache_resource(show_spinner="Loading the model (once per server)…")
def get_model(model: str, allow_hub: bool) -> Model:
    """The loaded model with its classifiers (:class:`pyramid.api.Model`): the default model's name, a
    folder under the allowed root (the sidebar only offers those; a plain encoder or a fine-tuned
    classifier checkpoint), or a hub id when allowed (raises ``ModelLoadError``, which is not cached)."""
    return on_torch(_load_model, model, allow_hub)


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


@st.cache_data(show_spinner=False, max_entries=256)
def tokenize_cached(_model: Model, model_name: str, text: str, max_tokens: int) -> TokenizedText:
    """Tokenization of ``text`` (raises ``EmptyTextError``)."""
    return _model.tokenize(text, max_tokens)


@st.cache_data(show_spinner=False, max_entries=256, ttl=30)
def shown_regime_for(_model: Model, model_name: str, name: str, regime: str) -> tuple[str, str | None]:
    """The regime a selector asked for in ``regime`` is shown in, with a note when it falls back
    (:func:`pyramid.plan.shown_regime`); kept 30 s, like :func:`selectors_for`."""
    return shown_regime(_model, name, regime)


@st.cache_data(show_spinner=False, max_entries=64, ttl=30)
def selectors_for(_model: Model, model_name: str, regime: str) -> list[str]:
    """The selectors that run on this model in this regime (one answer, shared with the CLI). Kept 30 s, so that a
    Train-Select model trained while the server runs shows up without a restart."""
    return _model.selectors(regime)


@st.cache_data(show_spinner=False, max_entries=64, ttl=30)
def why_unavailable(_model: Model, name: str, model_name: str, regime: str) -> str | None:
    """Why a selector cannot run here (None when it can)."""
    return _model.unavailable(name, regime)


@st.cache_resource(show_spinner=False)
def result_cache() -> ByteBudgetCache:
    """The server's byte-bounded cache of traces and projections (``PYRAMID_LENS_CACHE_MB``)."""
    from .settings import load_settings

    return ByteBudgetCache(int(load_settings().cache_mb * 1e6))


def trace_for(_model: Model, model_name: str, text: str, selector: str, regime: str, retention: float,
              start_layer: int, seed: int, max_tokens: int, tokenized: TokenizedText | None = None) -> Trace:
    """One selector's trace of one text on its regime's model, with the prediction of the same pass, from the
    byte-bounded cache (raises ``HeadLoadError``, ``ValueError``). The trace is shared: do not modify it.
    ``tokenized``: the text's tokenization at ``max_tokens`` when the caller has it (a text is tokenized once)."""

    def compute() -> Trace:
        return on_torch(_model.trace, tokenized or _model.tokenize(text, max_tokens), selector, regime,
                        Schedule(retention=retention, start_layer=start_layer), seed=seed)

    key = ("trace", model_name, text, selector, regime, float(retention), int(start_layer), int(seed), int(max_tokens))
    return result_cache().get_or_compute(key, compute)


@st.cache_data(show_spinner=False, max_entries=256)
def prediction_for(_model: Model, model_name: str, input_ids: tuple[int, ...], selector: str | None,
                   regime: str, retention: float, start_layer: int, seed: int) -> Prediction | None:
    """The prediction of the classifier a selector runs with in its regime: one pass without a trace, and
    without its full-length answer, which the table does not show (``selector`` None: the inference-only
    regime's classifier at full length); None when no classifier fits this model."""
    try:
        if selector is None:
            return on_torch(_model.full_prediction, list(input_ids))
        return on_torch(_model.predict, list(input_ids), selector, regime,
                        Schedule(retention=retention, start_layer=start_layer), seed=seed, full_length=False)
    except HeadLoadError:
        return None


def projection_for(_trace: Trace, key: tuple) -> Projection:
    """UMAP of a trace (``key`` identifies the trace: model, text, selector, regime, schedule, seed), from the
    byte-bounded cache."""
    return result_cache().get_or_compute(("projection",) + tuple(key), lambda: project_trace(_trace))


@st.cache_data(show_spinner=False, max_entries=64)
def saliency_for(_model: Model, model_name: str, head: str, input_ids: tuple[int, ...], k: int, ig_steps: int,
                 target: int | None):
    """:class:`pyramid.analysis.attribution.SaliencyReport` of one text for the classifier ``head`` (``target``: the
    explained class, None for the predicted one); the learned selectors trained on this head add their own
    score rows."""
    from pyramid.analysis.attribution import saliency_report

    classifier = on_torch(_model.classifier, head)
    learned = [_model.selector(n) for n in _model.selectors("inference") if _model.plan(n).runs_on == head]
    return on_torch(saliency_report, classifier, list(input_ids), k=k, ig_steps=ig_steps, selectors=learned,
                    target=target)


@st.cache_data(show_spinner=False, max_entries=64)
def traces_for_classifier(_model: Model, model_name: str, head: str, input_ids: tuple[int, ...],
                          retention: float) -> dict[str, Trace]:
    """One trace per selector that runs on this classifier's encoder, start layer 1 (the Saliency page)."""
    schedule = Schedule(retention=retention, start_layer=1)
    plan = plan_evaluation(_model, _model.selectors("inference"), ("inference",), head)
    names = [n for run in plan.runs for n in run.selectors]
    return {name: on_torch(_model.trace, list(input_ids), name, "inference", schedule, head=head) for name in names}


@st.cache_data(show_spinner=False, max_entries=64)
def grad_x_input_for(_model: Model, model_name: str, head: str, input_ids: tuple[int, ...]) -> list[float]:
    """``[N]`` gradient x input saliency of one text for the full-length classifier ``head`` (its predicted
    class): one forward and one backward pass (:func:`pyramid.analysis.attribution.gradient_saliency`)."""
    from pyramid.analysis.attribution import gradient_saliency

    classifier = on_torch(_model.classifier, head)
    scores = on_torch(gradient_saliency, classifier, list(input_ids), methods=("grad_x_input",))
    return scores.scores["grad_x_input"].tolist()


@st.cache_data(show_spinner=False, max_entries=64)
def faithfulness_for(_model: Model, model_name: str, head: str, input_ids: tuple[int, ...], retention: float,
                     target: int, _traces: dict, _saliency: dict):
    """:class:`pyramid.analysis.faithfulness.TextFaithfulness` of one text: each selector's kept set (``_traces``, the
    Saliency page's traces at ``retention``) and the same-size references (``_saliency``: grad_x_input and
    integrated_gradients per token), for class ``target``; two full-length passes per set, in one batch."""
    from pyramid.analysis.faithfulness import text_faithfulness

    classifier = on_torch(_model.classifier, head)
    return on_torch(text_faithfulness, classifier, list(input_ids), _traces, _saliency, seed=0, target=target)


@st.cache_data(show_spinner=False, max_entries=32)
def scrub_for(_model: Model, model_name: str, input_ids: tuple[int, ...], selector: str, regime: str,
              start_layer: int, seed: int) -> dict:
    """The selector's pyramid rows at every retention of the ρ slider (:meth:`pyramid.api.Model.scrub`, one lean
    pass per retention)."""
    return on_torch(_model.scrub, list(input_ids), selector, regime, start_layer=start_layer, seed=seed)
