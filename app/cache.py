"""A cache bounded in bytes, for the server's large per-request results (traces with every layer's states,
UMAP projections): Streamlit's ``st.cache_data`` bounds entries by count, not size, and a 512-token trace
holds ~3 MB of hidden states, so a class pasting hundreds of texts grew the server without limit.

Entries are kept least-recently-used first out until the total estimated size is under the budget
(``PYRAMID_LENS_CACHE_MB``, :class:`app.settings.Settings`). Values are shared between sessions, not copied:
nothing in the app mutates a trace or a projection once made.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
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


class ByteBudgetCache:
    """Least-recently-used cache whose entries' estimated sizes (:func:`approx_nbytes`) stay under a budget.

    Thread-safe; a value is computed outside the lock (two sessions asking for the same new key at the same
    moment may both compute it; the second result is kept).

    Args:
        budget_bytes: the most the entries may hold together. An entry larger than the whole budget is
            returned without being kept.
    """

    def __init__(self, budget_bytes: int):
        self.budget = int(budget_bytes)
        self._items: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._lock = threading.Lock()
        self.bytes = 0
        self.hits = self.misses = 0

    def get_or_compute(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        """The cached value of ``key``, or ``compute()`` kept under the budget."""
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
                self.hits += 1
                return found[0]
            self.misses += 1
        value = compute()
        size = approx_nbytes(value)
        if size > self.budget:
            return value
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self.bytes -= old[1]
            self._items[key] = (value, size)
            self.bytes += size
            while self.bytes > self.budget and self._items:
                _, (_, dropped) = self._items.popitem(last=False)
                self.bytes -= dropped
        return value

    def clear(self) -> None:
        """Forget every entry."""
        with self._lock:
            self._items.clear()
            self.bytes = 0

    def __len__(self) -> int:
        return len(self._items)
