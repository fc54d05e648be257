"""UMAP projections: small-input fallback and numba's on-disk cache for umap-learn's compiled code."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pyramid.present.projection import MIN_UMAP_POINTS, enable_umap_disk_cache, project_points


def test_small_inputs_fall_back_to_pca_and_shapes_hold():
    rng = np.random.default_rng(0)
    for n in (0, 1, 2, MIN_UMAP_POINTS - 1):
        coords, method = project_points(rng.normal(size=(n, 8)).astype(np.float32))
        assert coords.shape == (n, 2) and coords.dtype == np.float32
        assert method == "pca"


def test_umap_functions_are_written_to_numba_disk_cache():
    """After a fit, umap-learn's kNN smoothing has its machine code in numba's cache folder, so the
    next process (the next app server) loads it instead of compiling it again."""
    import umap.umap_

    enable_umap_disk_cache()
    coords, method = project_points(np.random.default_rng(1).normal(size=(40, 8)).astype(np.float32))
    assert method == "umap" and coords.shape == (40, 2) and np.isfinite(coords).all()
    assert enable_umap_disk_cache() == 0  # idempotent: the second call enables nothing new
    stats = umap.umap_.smooth_knn_dist.stats
    assert stats.cache_path is not None
    assert stats.cache_hits or stats.cache_misses  # the fit compiled (miss, then saved) or loaded it (hit)
    assert list(Path(stats.cache_path).glob("umap_.smooth_knn_dist-*.nbi")), stats.cache_path
