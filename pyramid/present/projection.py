"""2-D projections of token states across layers (umap-learn).

One projection is fitted on the states of every token at every layer of a trace (the embedding
output as layer 0, then each layer's output for its alive tokens), so that all layers share the
same axes and a token's path through the layers can be followed.

Small inputs: UMAP needs neighbours. ``n_neighbors`` is capped at ``n_points - 1``; below
``MIN_UMAP_POINTS`` points (a two-word text on a shallow model) the projection falls back to PCA
(scikit-learn), which is exact and needs no graph. Spectral initialisation can fail on tiny or
disconnected graphs (umap issues #90, #1026), so small fits use ``init="random"``.

``import umap`` and its first fit JIT-compile for ~8 s (numba); call :func:`warm_up` once per
process, off the critical path. umap-learn compiles its functions without numba's on-disk cache
(``cache=False``; adding it upstream was proposed in lmcinnes/umap#1257, not merged), so every
server start paid the compile again: :func:`enable_umap_disk_cache` turns numba's own cache on for
them before the first fit, and a process after the first loads the machine code instead (warm-up
7.7 s -> 0.1 s on 2 cores).
"""

from __future__ import annotations

import os
import threading
import warnings
from dataclasses import dataclass

import numpy as np

from ..trace import Trace

MIN_UMAP_POINTS = 12
"""Below this many points the projection is PCA."""

UMAP_CACHE_ENV = "PYRAMID_LENS_UMAP_CACHE"
"""Set to ``0`` to leave umap-learn's compiled functions out of numba's on-disk cache."""

_UMAP_MODULES = ("umap.umap_", "umap.layouts", "umap.spectral", "umap.utils", "umap.distances", "umap.sparse")

_warm_lock = threading.Lock()
_warm_done = False
_cache_lock = threading.Lock()
_cache_done = False


def enable_umap_disk_cache() -> int:
    """Turn on numba's on-disk cache for umap-learn's module-level jitted functions (idempotent).

    Each numba dispatcher that has no cache gets the one ``@njit(cache=True)`` would have given it:
    numba writes the machine code next to the module (``__pycache__``, or ``NUMBA_CACHE_DIR``) and
    keys it on the source file's timestamp, so an upgraded umap-learn recompiles. Call it before
    the first fit; functions compiled earlier in the process are not saved. Speed only: the cached
    code is the code numba would compile. Never raises: a function numba cannot cache (no writable
    location) stays uncached.

    Returns:
        How many functions now cache to disk (0 when ``PYRAMID_LENS_UMAP_CACHE=0``).
    """
    global _cache_done
    with _cache_lock:
        if _cache_done or os.environ.get(UMAP_CACHE_ENV, "1") == "0":
            return 0
        _cache_done = True
        import importlib

        from numba.core.caching import NullCache
        from numba.core.registry import CPUDispatcher

        enabled = 0
        for name in _UMAP_MODULES:
            try:
                module = importlib.import_module(name)
            except ImportError:
                continue
            for obj in list(vars(module).values()):
                if isinstance(obj, CPUDispatcher) and isinstance(getattr(obj, "_cache", None), NullCache):
                    try:
                        obj.enable_caching()
                        enabled += 1
                    except Exception:  # numba: no cache locator for this file; stays uncached
                        pass
        return enabled


@dataclass
class Projection:
    """Per-layer 2-D coordinates of a trace's tokens.

    Attributes:
        layers: layer numbers, 0 (embedding output) to L.
        tokens: ``tokens[i]`` token indices shown at ``layers[i]`` (the layer's alive tokens).
        coords: ``coords[i]`` ``(len(tokens[i]), 2)`` float32.
        method: ``"umap"`` or ``"pca"``.
    """

    layers: list[int]
    tokens: list[list[int]]
    coords: list[np.ndarray]
    method: str

    def at(self, layer: int) -> tuple[list[int], np.ndarray]:
        """Token indices and ``(n, 2)`` coordinates at ``layer``."""
        i = self.layers.index(layer)
        return self.tokens[i], self.coords[i]


def _umap(n_points: int, random_state: int):
    import umap

    enable_umap_disk_cache()

    return umap.UMAP(
        n_components=2,
        n_neighbors=max(2, min(15, n_points - 1)),
        min_dist=0.1,
        metric="precomputed",  # Euclidean distances, the ones coverage radii use (see project_points)
        init="spectral" if n_points >= 100 else "random",
        random_state=random_state,
        n_epochs=200,
    )


def project_points(points: np.ndarray, random_state: int = 0) -> tuple[np.ndarray, str]:
    """Project ``(n_points, d)`` states to ``(n_points, 2)``.

    Returns:
        ``(coords float32, method)``; method is ``"umap"`` or ``"pca"`` (small inputs, or a UMAP
        failure on a degenerate graph).
    """
    points = np.asarray(points, dtype=np.float32)
    n = points.shape[0]
    if n == 0:
        return np.zeros((0, 2), np.float32), "pca"
    if n >= MIN_UMAP_POINTS:
        try:
            from sklearn.metrics.pairwise import euclidean_distances

            # Precomputed: below 4,096 points umap-learn would call a Python-level metric once per
            # pair through scikit-learn (2.7 million calls, ~4 s, for a 512-token text).
            dist = euclidean_distances(points.astype(np.float64)).astype(np.float32)
            np.fill_diagonal(dist, 0.0)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return _umap(n, random_state).fit_transform(dist).astype(np.float32), "umap"
        except (ValueError, np.linalg.LinAlgError):
            pass
    from sklearn.decomposition import PCA

    if n == 1:
        return np.zeros((1, 2), np.float32), "pca"
    comps = min(2, n, points.shape[1])
    coords = PCA(n_components=comps, random_state=random_state).fit_transform(points)
    if comps < 2:
        coords = np.hstack([coords, np.zeros((n, 2 - comps))])
    return coords.astype(np.float32), "pca"


def project_trace(trace: Trace, random_state: int = 0) -> Projection:
    """Fit one projection on every token at every layer of ``trace``.

    Args:
        trace: a :class:`pyramid.trace.Trace`.
        random_state: UMAP seed (a fixed seed makes the plot reproducible).

    Returns:
        :class:`Projection` with layers 0..L.
    """
    blocks = [trace.embedding] + [lt.hidden for lt in trace.layers]  # (n_j, d) each
    tokens = [list(range(trace.n_tokens))] + [list(lt.alive) for lt in trace.layers]
    sizes = [b.shape[0] for b in blocks]
    coords, method = project_points(np.concatenate(blocks, axis=0), random_state)  # (sum n_j, 2)
    splits = np.split(coords, np.cumsum(sizes)[:-1])
    return Projection(layers=list(range(len(blocks))), tokens=tokens, coords=list(splits), method=method)


def warm_up() -> None:
    """Import umap and run one small fit so that later fits do not pay the JIT compile (idempotent)."""
    global _warm_done
    with _warm_lock:
        if _warm_done:
            return
        rng = np.random.default_rng(0)
        project_points(rng.normal(size=(60, 8)).astype(np.float32))
        project_points(rng.normal(size=(120, 8)).astype(np.float32))
        _warm_done = True
