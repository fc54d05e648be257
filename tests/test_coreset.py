"""Greedy k-center and coverage radii against brute force."""

import itertools

import numpy as np
import pytest
import torch

from pyramid.core.coverage import coverage
from pyramid.core.selectors.coreset import greedy_k_center


def brute_radius(x: np.ndarray, centres) -> float:
    """max_i min_{c in centres} ||x_i - x_c|| in float64."""
    d = np.linalg.norm(x[:, None, :] - x[None, list(centres), :], axis=-1)
    return float(d.min(axis=1).max())


def random_batch(B=3, N=10, d=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, N, d, generator=g)


def test_first_centre_is_cls_and_each_next_is_the_furthest():
    x = random_batch(B=4, N=16, d=6)
    valid = torch.ones(4, 16, dtype=torch.bool)
    k = torch.tensor([1, 5, 9, 16])
    res = greedy_k_center(x, valid, k)
    for b in range(4):
        order = [int(i) for i in res.order[b] if i >= 0]
        assert order[0] == 0
        assert len(order) == int(k[b]) == int(res.keep[b].sum())
        xb = x[b].double().numpy()
        for t in range(1, len(order)):
            d = np.linalg.norm(xb[:, None] - xb[None, order[:t]], axis=-1).min(1)
            d[order[:t]] = -1
            assert d[order[t]] == pytest.approx(d.max(), rel=1e-5)


@pytest.mark.parametrize("seed", range(8))
def test_radius_within_twice_the_optimum(seed):
    x = random_batch(B=1, N=9, d=3, seed=seed)
    valid = torch.ones(1, 9, dtype=torch.bool)
    xb = x[0].double().numpy()
    for k in range(1, 6):
        res = greedy_k_center(x, valid, torch.tensor([k]))
        greedy = brute_radius(xb, torch.nonzero(res.keep[0]).flatten().tolist())
        optimum = min(brute_radius(xb, c) for c in itertools.combinations(range(9), k))
        assert greedy <= 2 * optimum + 1e-6
        assert float(res.radius[0]) == pytest.approx(greedy, rel=1e-4, abs=1e-5)


def test_radius_non_increasing_as_k_grows():
    x = random_batch(B=2, N=24, d=8, seed=3)
    valid = torch.ones(2, 24, dtype=torch.bool)
    radii = [greedy_k_center(x, valid, torch.tensor([k, k])).radius for k in range(1, 25)]
    radii = torch.stack(radii)  # (K, B)
    assert bool((radii[1:] <= radii[:-1] + 1e-6).all())
    assert torch.allclose(radii[-1], torch.zeros(2))


def test_pads_are_never_chosen():
    x = random_batch(B=2, N=12, d=4, seed=5)
    x[:, 8:] = 1000.0  # pads far away: the furthest points if they counted
    valid = torch.ones(2, 12, dtype=torch.bool)
    valid[:, 8:] = False
    res = greedy_k_center(x, valid, torch.tensor([6, 12]))
    assert not bool(res.keep[:, 8:].any())
    assert int(res.keep[0].sum()) == 6
    assert int(res.keep[1].sum()) == 8  # asked for more than the valid tokens: all valid kept
    assert float(res.radius[1]) == 0.0


def test_greedy_radius_equals_coverage_radius():
    x = random_batch(B=3, N=20, d=16, seed=7) * 5
    valid = torch.ones(3, 20, dtype=torch.bool)
    valid[2, 15:] = False
    res = greedy_k_center(x, valid, torch.tensor([4, 10, 7]))
    cov = coverage(x, valid, res.keep)
    assert torch.allclose(cov.radius, res.radius, rtol=1e-4)


def test_coverage_matches_brute_force():
    x = random_batch(B=2, N=11, d=7, seed=9)
    valid = torch.ones(2, 11, dtype=torch.bool)
    valid[1, 9:] = False
    keep = torch.zeros(2, 11, dtype=torch.bool)
    keep[0, [0, 3, 7]] = True
    keep[1, [0, 5]] = True
    cov = coverage(x, valid, keep)
    for b in range(2):
        xb = x[b].double().numpy()
        n_valid = int(valid[b].sum())
        kept = torch.nonzero(keep[b]).flatten().tolist()
        d = np.linalg.norm(xb[:n_valid, None] - xb[None, kept], axis=-1)
        assert float(cov.radius[b]) == pytest.approx(d.min(1).max(), rel=1e-6)
        assert cov.nearest[b, :n_valid].tolist() == [kept[i] for i in d.argmin(1)]
        assert np.allclose(cov.distance[b, :n_valid].numpy(), d.min(1), rtol=1e-5)
        dropped = [i for i in range(n_valid) if i not in kept]
        assert float(cov.mean_distance[b]) == pytest.approx(d.min(1)[dropped].mean(), rel=1e-5)
    assert cov.nearest[1, 9:].tolist() == [-1, -1]


def test_coverage_is_zero_when_nothing_is_dropped():
    x = random_batch(B=1, N=5, d=3)
    valid = torch.ones(1, 5, dtype=torch.bool)
    cov = coverage(x, valid, valid)
    assert float(cov.radius[0]) == 0.0
    assert cov.nearest[0].tolist() == [0, 1, 2, 3, 4]


def _reference_greedy(x: np.ndarray, valid: np.ndarray, k: int) -> list[int]:
    """Furthest-point greedy in float64, written plainly: [CLS] first, ties to the earliest token."""
    idx = [i for i in range(len(x)) if valid[i]]
    order = [0]
    d = np.full(len(x), -np.inf)
    d[idx] = np.linalg.norm(x[idx] - x[0], axis=1)
    d[0] = -np.inf
    while len(order) < min(k, len(idx)):
        j = int(np.argmax(d))  # the first maximum
        order.append(j)
        d = np.minimum(d, np.where(d > -np.inf, np.linalg.norm(x - x[j], axis=1), -np.inf))
        d[j] = -np.inf
    return order


@pytest.mark.parametrize("seed", range(6))
def test_the_compiled_kernel_equals_a_plain_float64_greedy(seed):
    """Real-looking shapes (up to 512 tokens, hidden 384, padded batches): the same centres in the same
    order as the reference, so the speed-ups change nothing."""
    g = torch.Generator().manual_seed(seed)
    B, N = 3, [40, 200, 512][seed % 3]
    x = torch.randn(B, N, 384, generator=g) * 2 + torch.randn(1, 1, 384, generator=g) * 5
    valid = torch.ones(B, N, dtype=torch.bool)
    valid[1, N // 2:] = False
    valid[2, N - 3:] = False
    k = torch.tensor([N // 3, N // 4, int(0.79 * N)])
    res = greedy_k_center(x, valid, k)
    for b in range(B):
        want = _reference_greedy(x[b].double().numpy(), valid[b].numpy(), int(k[b]))
        got = [int(i) for i in res.order[b] if i >= 0]
        assert got == want


def test_duplicate_tokens_tie_to_the_earliest():
    x = torch.tensor([[[0.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.0, 2.0], [0.0, 2.0]]])
    res = greedy_k_center(x, torch.ones(1, 5, dtype=torch.bool), torch.tensor([5]))
    assert res.order[0].tolist() == [0, 3, 1, 2, 4]  # 3 is furthest; then 1 (first of the tied pair); then the zeros
