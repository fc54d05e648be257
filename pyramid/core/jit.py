"""Compiled loops that work on any install: numba kernels compiled on their first call, cached on disk where a
cache can be written, compiled in memory where it cannot.

``@numba.njit(cache=True)`` looks for a writable cache location when the decorator runs, at import, and raises
``RuntimeError: cannot cache function ...: no locator available`` when there is none: a package in a read-only
folder (a system-wide install, a container run as another user) with no writable home and no
``NUMBA_CACHE_DIR``. :func:`njit_cached` decorates on the first call instead, with numba's cache when numba
finds a place for it (next to the module in ``__pycache__``, else the user's cache folder, else
``NUMBA_CACHE_DIR``), and without it otherwise: the same machine code, compiled again in each process.
"""

from __future__ import annotations

import functools
import threading
from typing import Callable


def njit_cached(**options) -> Callable[[Callable], Callable]:
    """A decorator: ``numba.njit(cache=True, **options)`` applied on the first call, or ``numba.njit(cache=False,
    **options)`` where numba has no writable cache location (see the module docstring). Importing the module that
    defines a kernel never compiles, caches or fails; the first call compiles (or loads the cached code).

    The wrapper keeps the Python function as ``py_func`` and the compiled dispatcher, once made, as ``dispatcher``;
    ``cached`` tells whether it was compiled with the on-disk cache.
    """

    def decorate(fn: Callable) -> Callable:
        lock = threading.Lock()

        @functools.wraps(fn)
        def kernel(*args):
            dispatcher = kernel.dispatcher
            if dispatcher is None:
                with lock:
                    if kernel.dispatcher is None:
                        import numba

                        try:
                            kernel.dispatcher = numba.njit(cache=True, **options)(fn)
                            kernel.cached = True
                        except RuntimeError:  # numba: no locator for this file (nowhere to write a cache)
                            kernel.dispatcher = numba.njit(cache=False, **options)(fn)
                            kernel.cached = False
                dispatcher = kernel.dispatcher
            return dispatcher(*args)

        kernel.py_func = fn
        kernel.dispatcher = None
        kernel.cached = None
        return kernel

    return decorate
