"""A read-only install: numba finds nowhere to write its cache (a package in a read-only folder, no writable
home, no NUMBA_CACHE_DIR), and the project still imports and runs its compiled kernels (compiled in memory).

As root the tests cannot make a folder unwritable to themselves, so the child process makes numba's cache
locators fail the way they fail there (no locator accepts the file: ``RuntimeError: cannot cache function``).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

CHILD = textwrap.dedent("""
    import numba.core.caching as caching
    caching.CacheImpl._locator_classes = []          # no writable cache location anywhere
    import numba
    try:
        numba.njit(cache=True)(lambda x: x)
    except RuntimeError as exc:
        assert "cannot cache" in str(exc)
    else:
        raise SystemExit("the locators still work: the test would prove nothing")

    import torch
    import pyramid                                     # imports every selector and routing
    from pyramid.core.routing.merge import _checked_targets_kernel, checked_targets
    from pyramid.core.selectors.coreset import _greedy_k_center_kernel, greedy_k_center

    x = torch.randn(2, 12, 8)
    valid = torch.ones(2, 12, dtype=torch.bool)
    result = greedy_k_center(x, valid, torch.tensor([4, 6]), assign=True)
    assert result.keep.sum().item() == 10, result.keep
    given = torch.full((2, 12), -1, dtype=torch.long)
    given[:, 5] = 1
    assert checked_targets(given, result.keep, valid).shape == (2, 12)
    assert _greedy_k_center_kernel.cached is False     # compiled in memory
    print("ok")
""")


def test_the_kernels_compile_without_a_writable_cache():
    proc = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().endswith("ok")
