"""A cache bounded in bytes, for the server's large per-request results (traces with every layer's states,
UMAP projections): Streamlit's ``st.cache_data`` bounds entries by count, not size, and a 512-token trace
holds ~3 MB of hidden states, so a class pasting hundreds of texts grew the server without limit.

Entries are kept least-recently-used first out until the total estimated size is under the budget
(``PYRAMID_LENS_CACHE_MB``, :class:`app.settings.Settings`). Values are shared between sessions, not copied:
nothing in the app mutates a trace or a projection once made.
"""

from __future__ import annotations

import ctypes
import gc
import threading
import weakref
from collections import OrderedDict
from concurrent.futures import Future
from typing import Any, Callable, Hashable

import numpy as np


def approx_nbytes(value: Any) -> int:
    """An estimate of a cached value's memory: its NumPy arrays (hidden states, coordinates) in full, plus
    ~48 bytes per element of the per-token lists a trace keeps (Python ints, floats and list slots)."""
    total = 0
    seen = set()

    def walk(x, depth=0):
        nonlocal total
        if id(x) in seen or depth > 4:
            return
        seen.add(id(x))
        if isinstance(x, np.ndarray):
            total += x.nbytes
        elif isinstance(x, (list, tuple)):
            total += 48 * len(x)
            if x and not isinstance(x[0], (int, float, str, type(None))):
                for item in x:
                    walk(item, depth + 1)
        elif isinstance(x, dict):
            for item in x.values():
                walk(item, depth + 1)
        elif hasattr(x, "__dict__"):
            for item in vars(x).values():
                walk(item, depth + 1)

    walk(value)
    return total + 1024


def release_memory() -> None:
    """Give freed memory back to the operating system: a full garbage collection (frozen objects included:
    ``gc.freeze`` after a model load keeps them out of every pass, so a cleared model in a reference cycle
    would otherwise stay), then glibc's ``malloc_trim(0)``, which returns the free pages of the heap and its
    arenas (without it the server's resident memory stays at its peak after the caches are cleared). What
    survives is frozen again, as after a model load (``app.resources``). A no-op for the trim where the C
    library is not glibc."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()
    trim_heap()


def trim_heap() -> None:
    """glibc's ``malloc_trim(0)``: return the free pages of the heap and its arenas to the system (a few ms);
    a no-op where the C library is not glibc."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


TRIM_EVERY_BYTES = 64_000_000
"""After evicting this many bytes, the cache trims the heap (:func:`trim_heap`): freed traces otherwise leave
holes that glibc keeps, and the resident memory creeps above the budget."""


def _release_soon(delay_s: float = 2.0, fn: Callable[[], None] | None = None) -> None:
    """``fn`` (:func:`release_memory` by default) on a timer thread, once the dropped objects' last references
    have gone."""
    timer = threading.Timer(delay_s, fn or (lambda: release_memory()))
    timer.daemon = True
    timer.start()


class ByteBudgetCache:
    """Least-recently-used cache whose entries' estimated sizes (:func:`approx_nbytes`) stay under a budget.

    Thread-safe; a value is computed outside the lock, once: a caller asking for a key that another caller is
    computing waits for that result instead of computing it again (a class opening the first page together, or
    the server's warm-up and the first visitor, share one computation). When that computation fails, each waiting
    caller computes the key itself (the first one's error may be its own, e.g. its session left the queue).

    Args:
        budget_bytes: the most the entries may hold together. An entry larger than the whole budget is
            returned without being kept.
    """

    def __init__(self, budget_bytes: int):
        self.budget = int(budget_bytes)
        self._items: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._lock = threading.Lock()
        self._computing: dict[Hashable, Future] = {}
        self.bytes = 0
        self.hits = self.misses = 0
        self._evicted = 0
        # Streamlit's "Clear caches" drops this cache (and the models) with every st.cache_resource: the
        # memory they held goes back to the system shortly after (release_memory)
        weakref.finalize(self, _release_soon)

    def get_or_compute(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        """The cached value of ``key``, or ``compute()`` kept under the budget (computed once while other
        callers of the same key wait for it).

        Raises:
            Exception: whatever ``compute`` raised (not cached).
        """
        while True:
            with self._lock:
                found = self._items.get(key)
                if found is not None:
                    self._items.move_to_end(key)
                    self.hits += 1
                    return found[0]
                running = self._computing.get(key)
                if running is None:
                    self.misses += 1
                    mine = self._computing[key] = Future()
            if running is None:
                break
            try:
                return running.result()
            except Exception:  # noqa: BLE001 - the other caller's failure: compute it here (loop)
                continue
        try:
            value = compute()
        except BaseException as exc:
            with self._lock:
                self._computing.pop(key, None)
            mine.set_exception(exc)
            raise
        self._keep(key, value)
        with self._lock:
            self._computing.pop(key, None)
        mine.set_result(value)
        return value

    def _keep(self, key: Hashable, value: Any) -> None:
        size = approx_nbytes(value)
        if size > self.budget:
            return
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self.bytes -= old[1]
            self._items[key] = (value, size)
            self.bytes += size
            while self.bytes > self.budget and self._items:
                _, (_, dropped) = self._items.popitem(last=False)
                self.bytes -= dropped
                self._evicted += dropped
            trim = self._evicted >= TRIM_EVERY_BYTES
            if trim:
                self._evicted = 0
        if trim:
            _release_soon(0.5, trim_heap)

    def clear(self) -> None:
        """Forget every entry."""
        with self._lock:
            self._items.clear()
            self.bytes = 0
        _release_soon()

    def __len__(self) -> int:
        return len(self._items)
