"""Core-set selection (Pyramid-BERT, Huang et al., ACL 2022): greedy k-center on the hidden states
(docs/methods.md 1.2).

The coverage radius of a kept set S over the valid tokens V is

    delta(S) = max_{i in V} min_{j in S} || h_i - h_j ||_2

(Sener & Savarese 2018; the bound's exact form in Pyramid-BERT is [UNCONFIRMED], the k-center link
is confirmed [2nd]). Minimising it is the k-center problem; the greedy furthest-point algorithm is
a 2-approximation: start from [CLS], then repeatedly add the token furthest from the centres so far.

Implementation: the upper block triangle of the (symmetric) Gram matrix of one example's mean-centred
tokens takes a few batched matrix products and the lower triangle is its mirror (distances follow as
``||x||^2 + ||y||^2 - 2 x.y``; centring keeps the expansion precise); the k - 1 sequential steps then
run in a small numba kernel whose passes over a contiguous row are vectorised, because a torch loop
pays ~10 microseconds of dispatch per step and k is in the hundreds at 512 tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
import torch

from .base import Selection, SelectionContext, Selector


@numba.njit(cache=True, nogil=True, fastmath=True)
def _greedy_k_center_kernel(gram, sq, valid, k, keep, order, dmin_out):  # pragma: no cover - compiled
    """Furthest-point greedy from a Gram matrix, one example after another.

    gram (B, N, N) float32 inner products (symmetric, every row filled: :func:`gram_matrix`); sq (B, N)
    float32 squared norms, so that ``||x_i - x_j||^2 = sq_i + sq_j - 2 gram_ij`` (clamped at 0); valid
    (B, N) bool; k (B,) int64. Outputs: keep (B, N) bool, order (B, N) int64 (centres in the order
    chosen, -1 after), dmin_out (B, N) float32 (squared distance of each non-centre valid token to its
    nearest centre; -1 for centres and pads).

    Each step is three passes over one contiguous row, which the compiler vectorises: the maximum of
    the distances to the centres so far, the first token holding it (the same tie rule as a strict
    ``>`` scan), and the element-wise minimum with the new centre's distance row. Centres and pads hold
    -1, which no distance (>= 0) can lower or exceed.
    """
    B, N = valid.shape
    for b in range(B):
        dmin = np.empty(N, np.float32)
        s0 = sq[b, 0]
        for i in range(N):
            order[b, i] = -1
            if valid[b, i]:
                dmin[i] = max(np.float32(0.0), s0 + sq[b, i] - np.float32(2.0) * gram[b, 0, i])
            else:
                dmin[i] = -1.0
        if not valid[b, 0]:
            for i in range(N):
                dmin_out[b, i] = -1.0
            continue
        keep[b, 0] = True
        order[b, 0] = 0
        dmin[0] = -1.0
        count = 1
        while count < k[b]:
            best = np.float32(-1.0)
            for i in range(N):
                best = max(best, dmin[i])
            if best < 0.0:
                break
            j = 0
            while dmin[j] != best:
                j += 1
            keep[b, j] = True
            order[b, count] = j
            count += 1
            dmin[j] = -1.0
            sj = sq[b, j]
            row = gram[b, j]
            for i in range(N):
                d = max(np.float32(0.0), sj + sq[b, i] - np.float32(2.0) * row[i])
                dmin[i] = min(dmin[i], d)
        for i in range(N):
            dmin_out[b, i] = dmin[i]


GRAM_BLOCKS = 4
"""Row blocks of the Gram matrix; only blocks on and above the diagonal are multiplied, the others are
their transposes."""


def gram_matrix(hidden: torch.Tensor, valid: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Inner products and squared norms of each example's mean-centred token states, on the CPU.

    The Gram matrix is symmetric, so it is multiplied in ``GRAM_BLOCKS`` row blocks, each only from its
    own diagonal block rightwards (``(4+3+2+1)/16 = 62.5%`` of the FLOPs of a full product), and the
    blocks below the diagonal are copied from their transposes, so that every row is contiguous for
    the k-center loop.

    Args:
        hidden: ``(B, N, d)`` hidden states.
        valid: ``(B, N)`` bool, True for real tokens.

    Returns:
        ``(gram (B, N, N), sq (B, N))`` float32 NumPy arrays with ``||x_i - x_j||^2 = sq_i + sq_j -
        2 gram_ij``. States are centred on the example's valid-token mean first: distances are
        translation-invariant, and centring shrinks ``||x||^2`` and so the rounding error of the
        expansion.
    """
    with torch.no_grad():
        x = hidden.detach().to("cpu", torch.float32)
        if bool(valid.all()):
            x = x - x.mean(1, keepdim=True)
        else:
            w = valid.to("cpu", torch.float32).unsqueeze(-1)  # (B, N, 1)
            x = x - (x * w).sum(1, keepdim=True) / w.sum(1, keepdim=True).clamp_min(1.0)  # (B, N, d)
        B, N, _ = x.shape
        block = max(1, -(-N // GRAM_BLOCKS))
        xt = x.transpose(1, 2)  # (B, d, N)
        gram = torch.empty(B, N, N)
        for r0 in range(0, N, block):
            r1 = min(N, r0 + block)
            gram[:, r0:r1, r0:] = torch.bmm(x[:, r0:r1], xt[:, :, r0:])  # (B, rows, N - r0)
            if r0:
                gram[:, r0:r1, :r0] = gram[:, :r0, r0:r1].transpose(1, 2)  # below the diagonal: the mirror
        sq = (x * x).sum(-1)  # (B, N)
        return gram.numpy(), sq.numpy()


@dataclass
class KCenterResult:
    """Output of :func:`greedy_k_center`.

    Attributes:
        keep: ``(B, N)`` bool, the centres.
        order: ``(B, N)`` long, centre slots in the order chosen ([CLS] first), -1 after the last.
        radius: ``(B,)`` float32, coverage radius of the centres over the valid tokens (0.0 when
            every valid token is a centre).
    """

    keep: torch.Tensor
    order: torch.Tensor
    radius: torch.Tensor


def greedy_k_center(hidden: torch.Tensor, valid: torch.Tensor, k: torch.Tensor) -> KCenterResult:
    """Greedy furthest-point k-center, seeded with [CLS] (slot 0), per example.

    Args:
        hidden: ``(B, N, d)`` hidden states (any float dtype, any device; moved to CPU for the loop).
        valid: ``(B, N)`` bool; pads are never chosen.
        k: ``(B,)`` int, number of centres per example ([CLS] included); an example with fewer
            valid tokens keeps all of them.

    Returns:
        A :class:`KCenterResult` on ``hidden``'s device.

    Raises:
        ValueError: shapes disagree.
    """
    if hidden.dim() != 3 or valid.shape != hidden.shape[:2] or k.shape != hidden.shape[:1]:
        raise ValueError(f"bad shapes: hidden {tuple(hidden.shape)}, valid {tuple(valid.shape)}, k {tuple(k.shape)}")
    gram, sq = gram_matrix(hidden, valid)
    B, N = valid.shape
    keep = np.zeros((B, N), dtype=np.bool_)
    order = np.empty((B, N), dtype=np.int64)
    dmin = np.empty((B, N), dtype=np.float32)
    _greedy_k_center_kernel(
        gram, sq, valid.detach().cpu().numpy().astype(np.bool_), k.detach().cpu().numpy().astype(np.int64),
        keep, order, dmin,
    )
    radius = np.sqrt(np.maximum(dmin.max(axis=1), 0.0))
    dev = hidden.device
    return KCenterResult(
        keep=torch.from_numpy(keep).to(dev),
        order=torch.from_numpy(order).to(dev),
        radius=torch.from_numpy(radius).to(dev),
    )


class CoresetSelector(Selector):
    """Pyramid-BERT's core-set selection: greedy k-center on the layer's output (docs/methods.md 1.2).

    Euclidean distance on the post-LayerNorm hidden states, [CLS] as the first centre, each next
    centre the token furthest from the centres chosen so far; pads never chosen. The distance and
    the [CLS] rule are the project defaults ([UNCONFIRMED] in the paper). Scores are the order in
    which tokens became centres (earlier = higher), so the app can rank them.

    Selection cost counted in FLOPs: the Gram matrix ``2 n^2 d`` plus ``~3 n`` per centre.
    """

    name = "coreset"
    label = "Core-set (Pyramid-BERT, greedy k-center)"
    short = "Core-set"
    description = ("Pyramid-BERT: greedy k-center on the hidden states. Starting from [CLS], it keeps the token "
                   "furthest from everything kept so far, so the kept tokens cover all the others.")

    def select(self, ctx: SelectionContext) -> Selection:
        result = greedy_k_center(ctx.hidden, ctx.valid, ctx.k)
        B, N = ctx.valid.shape
        scores = torch.zeros(B, N, dtype=torch.float32, device=ctx.hidden.device)
        rank = torch.arange(N, 0, -1, dtype=torch.float32, device=scores.device).expand(B, N)  # N..1
        idx = result.order.clamp_min(0)
        scores.scatter_(1, idx, torch.where(result.order >= 0, rank, torch.zeros_like(rank)))
        return Selection(keep=result.keep, scores=scores)

    def selection_flops(self, n_alive: int, n_kept: int, hidden_size: int) -> float:
        return 2.0 * n_alive * n_alive * hidden_size + 3.0 * n_alive * n_kept
