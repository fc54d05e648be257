"""An evaluation sweep that runs off the UI thread, with progress and a Cancel (the Evaluate page).

A :class:`SweepJob` runs :func:`pyramid.analysis.evaluation.evaluate` for each regime in a background thread; every
batch's forward runs on the server's torch thread (``runner``), one batch at a time, so that other users'
Runs are answered between batches. The page polls :attr:`SweepJob.done` to draw its progress bar. A job
is tied to its session by :func:`bind_to_session`: when the session is gone, the job is cancelled.
"""

from __future__ import annotations

import threading
import time
import weakref
from dataclasses import dataclass, field
from typing import Callable

from pyramid.data import LabelledData
from pyramid.analysis.evaluation import evaluate, runs_needed
from pyramid.core.selectors import get_selector


class Cancelled(Exception):
    """The user pressed Cancel (or left): the sweep stops after the current batch."""


@dataclass
class SweepPlan:
    """What to evaluate.

    Attributes:
        runs: ``[(regime, head, [selector names])]``: one :func:`evaluate` call each (the inference-only
            regime's head with its selectors; in Train-Select, each selector with its own head).
        retentions: final retention ratios. batch_size: examples per forward. max_length: tokens per text.
    """

    runs: list[tuple[str, str, list[str]]]
    retentions: list[float]
    batch_size: int = 16
    max_length: int | None = None


@dataclass
class SweepJob:
    """One sweep in a background thread (see the module docstring).

    Attributes:
        done, total: examples processed and to process (over every run). what: the run in progress.
        rows: the result rows when finished (:data:`pyramid.analysis.evaluation.ROW_KEYS`). error: a message when
        it failed. cancelled: it was cancelled. started, finished: ``time.perf_counter()`` stamps.
    """

    model: object
    data: LabelledData
    plan: SweepPlan
    runner: Callable
    done: int = 0
    total: int = 0
    what: str = ""
    rows: list[dict] = field(default_factory=list)
    error: str | None = None
    cancelled: bool = False
    started: float = 0.0
    finished: float | None = None
    examples_timed: int = 0

    def __post_init__(self) -> None:
        n = len(self.data)
        self.total = sum(n * runs_needed([get_selector(s, regime) for s in names], self.plan.retentions)
                         for regime, _, names in self.plan.runs)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pyramid-sweep", daemon=True)

    def start(self) -> "SweepJob":
        """Start the thread; returns the job."""
        self.started = time.perf_counter()
        self._thread.start()
        return self

    def cancel(self) -> None:
        """Ask the sweep to stop after the batch in progress."""
        self._stop.set()

    @property
    def running(self) -> bool:
        """The thread has not finished."""
        return self._thread.is_alive()

    @property
    def seconds(self) -> float:
        """Wall time so far (or in all, once finished)."""
        end = self.finished if self.finished is not None else time.perf_counter()
        return max(0.0, end - self.started) if self.started else 0.0

    @property
    def rate(self) -> float:
        """Examples per second over the passes so far."""
        return self.done / self.seconds if self.seconds > 0 else 0.0

    def _run(self) -> None:
        try:
            offset = 0
            for regime, head, names in self.plan.runs:
                classifier = self.runner(self.model.classifier, head)
                sels = [self.model.selector(s, regime) for s in names]
                base = offset

                def progress(done: int, total: int, what: str, _base=base, _regime=regime) -> None:
                    self.done, self.what = _base + done, f"{what} ({_regime})"
                    if self._stop.is_set():
                        raise Cancelled()

                self.rows += evaluate(classifier, self.data.with_labels(classifier.labels), sels,
                                      self.plan.retentions, batch_size=self.plan.batch_size,
                                      max_length=self.plan.max_length, progress=progress, runner=self.runner)
                offset += len(self.data) * runs_needed(sels, self.plan.retentions)
        except Cancelled:
            self.cancelled = True
        except Exception as exc:  # noqa: BLE001 - shown on the page, never a traceback
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            self.finished = time.perf_counter()


class SessionToken:
    """An object only the session's state refers to; when the session is gone it is collected."""


def bind_to_session(job: SweepJob, token: SessionToken) -> None:
    """Cancel ``job`` when ``token`` (kept in the session's state) is garbage-collected: a session that
    leaves frees its work."""
    weakref.finalize(token, job.cancel)
