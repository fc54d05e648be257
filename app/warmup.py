"""The server's warm-up: what the first visitor would otherwise wait for, done as the server starts.

A cold start (``streamlit run`` to the first answered page, ``scripts/bench_explorer.py``) was mostly imports and
the first computations, made when the first browser connected: torch, transformers and the pages' modules
(~2.3 s on 2 cores), the default model (~2.2 s, nearly all of it transformers' lazy imports of its modeling
code), the first page's traces and predictions (~0.8 s). ``streamlit_app.py`` serves the pages with
Streamlit's ``st.App``, whose lifespan hook runs when the server starts; it starts :func:`warm_up` in a
background thread, so the server answers at once and that work overlaps the browser's start and Streamlit's
first page load. The first visitor's script waits for whatever is still running (Python's import locks,
``st.cache_resource``'s per-key lock, and the trace cache, which computes a key once for every caller:
:class:`app.cache.ByteBudgetCache`), so nothing is computed twice.

What it warms: the pages' imports, the default model with its classifiers (``get_model``, the cache the
pages use) and the Explorer's first page (the first example with the form's defaults,
:func:`app.explorer.precompute`). A model chosen in the sidebar loads on first use as before. Set
``PYRAMID_LENS_WARM_UP=0`` to start cold (the first visitor then pays for it).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from contextlib import asynccontextmanager

from streamlit.logger import get_logger

LOG = get_logger(__name__)  # Streamlit's handler and level (``logger.level``), as the server's own messages

WARM_UP_THREAD = "pyramid-lens-warm-up"
"""Name of the warm-up's thread."""


def enabled() -> bool:
    """False when ``PYRAMID_LENS_WARM_UP`` is "0" (or "false", "no", "off")."""
    return os.environ.get("PYRAMID_LENS_WARM_UP", "1").strip().lower() not in ("0", "false", "no", "off")


def warm_up() -> dict[str, float]:
    """Import the pages, load the default model and compute the Explorer's first page into the shared caches.

    Returns:
        Seconds spent on each step: ``{"imports": s, "model": s, "first page": s}``.

    Raises:
        Exception: whatever a step raised (the page would show the same error to its first visitor).
    """
    t0 = time.perf_counter()
    from pyramid.api import DEFAULT_MODEL

    from . import benchmarks, evaluate, explorer, learn, saliency  # noqa: F401  (the pages' imports)
    from .resources import get_model
    from .settings import load_settings

    t1 = time.perf_counter()
    settings = load_settings()
    model = get_model(DEFAULT_MODEL, settings.allow_hub)
    t2 = time.perf_counter()
    explorer.precompute(model, model.name, explorer.first_run(model, model.name), settings)
    t3 = time.perf_counter()
    return {"imports": t1 - t0, "model": t2 - t1, "first page": t3 - t2}


class _NoContextWarning(logging.Filter):
    """Drops Streamlit's "missing ScriptRunContext" warning for the warm-up's thread, which runs cached functions
    outside any script run on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.threadName == WARM_UP_THREAD and "ScriptRunContext" in record.getMessage())


def _warm_up_logged() -> None:
    logging.getLogger("streamlit.runtime.scriptrunner_utils.script_run_context").addFilter(_NoContextWarning())
    try:
        seconds = warm_up()
    except Exception:  # noqa: BLE001 - a warm-up never stops the server; the first visitor sees the error
        LOG.exception("Pyramid Lens warm-up failed; the first visitor will load the model instead")
        return
    LOG.info("Pyramid Lens warmed up: %s", ", ".join(f"{k} {v:.1f} s" for k, v in seconds.items()))


def start_warm_up() -> threading.Thread | None:
    """Start :func:`warm_up` in a daemon thread (None when ``PYRAMID_LENS_WARM_UP=0``)."""
    if not enabled():
        return None
    thread = threading.Thread(target=_warm_up_logged, name=WARM_UP_THREAD, daemon=True)
    thread.start()
    return thread


@asynccontextmanager
async def lifespan(_app):
    """``st.App``'s lifespan hook: start the warm-up when the server starts, and serve at once."""
    start_warm_up()
    yield
