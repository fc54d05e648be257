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

import numpy as np
import torch

from ..jit import njit_cached
from .base import Descriptor, Selection, SelectionContext, Selector


@njit_cached(nogil=True, fastmath=True)
def _greedy_k_center_kernel(gram, sq, valid, k, keep, order, rank, radius2):  # pragma: no cover - compiled
    """Furthest-point greedy from a Gram matrix, one example after another.

    gram (B, N, N) float32 inner products (symmetric, every row filled: :func:`gram_matrix`); sq (B, N)
    float32 squared norms, so that ``||x_i - x_j||^2 = sq_i + sq_j - 2 gram_ij`` (clamped at +0.0); valid
    (B, N) bool; k (B,) int64. Outputs (written in full): keep (B, N) bool; order (B, N) int64 (centres
    in the order chosen, -1 after); rank (B, N) float32 (N for [CLS], N - 1 for the second centre, ...,
    0 for non-centres and pads: the selector's scores); radius2 (B,) float32 (squared coverage radius,
    the largest distance of a valid non-centre to its nearest centre; 0 when every valid token is one).

    Each step is two passes over one contiguous row that the compiler vectorises, then a short scan:
    the element-wise minimum of the distances to the centres so far with the new centre's row; their
    maximum, taken on the float32 bits read as int32 (for floats >= +0.0 the integer order is the float
    order, and -1.0, which centres and pads hold, is a negative integer; LLVM vectorises an integer
    max reduction but not a float one, 8x faster at 512 tokens); the first token holding it (the tie
    rule of a strict ``>`` scan). Distances are clamped with a compare, so none is -0.0.
    """
    B, N = valid.shape
    zero = np.float32(0.0)
    two = np.float32(2.0)
    dmin = np.empty(N, np.float32)
    bits = dmin.view(np.int32)  # the same memory, read as int32 for the max
    for b in range(B):
        s0 = sq[b, 0]
        for i in range(N):
            order[b, i] = -1
            rank[b, i] = 0.0
            keep[b, i] = False
            if valid[b, i] and i > 0:
                dist = s0 + sq[b, i] - two * gram[b, 0, i]
                dmin[i] = dist if dist > zero else zero
            else:
                dmin[i] = -1.0
        radius2[b] = 0.0
        if not valid[b, 0]:
            continue
        keep[b, 0] = True
        order[b, 0] = 0
        rank[b, 0] = N
        count = 1
        while True:
            top = np.int32(-2147483647)
            for i in range(N):
                x = bits[i]
                top = x if x > top else top
            if top < 0:  # every valid token is a centre
                break
            j = 0
            while bits[j] != top:
                j += 1
            if count >= k[b]:
                radius2[b] = dmin[j]
                break
            keep[b, j] = True
            order[b, count] = j
            rank[b, j] = N - count
            count += 1
            dmin[j] = -1.0
            sj = sq[b, j]
            row = gram[b, j]
            for i in range(N):
                dist = sj + sq[b, i] - two * row[i]
                dist = dist if dist > zero else zero
                cur = dmin[i]
                dmin[i] = dist if dist < cur else cur


GRAM_BLOCKS = 4
"""Row blocks of the Gram matrix for a batch; only blocks on and above the diagonal are multiplied, the
others are their transposes."""

GRAM_FULL_BELOW = 256
"""Below this many tokens, and for one example, one full product beats the blocks (measured on 2 cores:
the blocks' smaller products run at a lower FLOP rate than they save)."""


def gram_matrix(hidden: torch.Tensor, valid: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Inner products and squared norms of each example's mean-centred token states, on the CPU.

    For one example, or fewer than ``GRAM_FULL_BELOW`` tokens, one batched product. Otherwise the
    symmetry is used: ``GRAM_BLOCKS`` row blocks, each multiplied only from its own diagonal block
    rightwards (``(4+3+2+1)/16 = 62.5%`` of the FLOPs of a full product), and the blocks below the
    diagonal copied from their transposes, so that every row is contiguous for the k-center loop.

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
        B, N, _ = x.shape
        if bool(valid.all()):
            x = x - x.mean(1, keepdim=True)  # (B, N, d)
        else:
            w = valid.to("cpu", torch.float32).unsqueeze(-1)  # (B, N, 1)
            x = x - (x * w).sum(1, keepdim=True) / w.sum(1, keepdim=True).clamp_min(1.0)  # (B, N, d)
        if B == 1 or N <= GRAM_FULL_BELOW:
            gram = torch.bmm(x, x.transpose(1, 2))  # (B, N, N): one product is faster than the blocks here
        else:
            block = -(-N // GRAM_BLOCKS)
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
        rank: ``(B, N)`` float32, N for the first centre, N - 1 for the second, ..., 0 for the rest.
        nearest: ``(B, N)`` long, with ``assign``: the centre other than [CLS] nearest to each non-centre
            (the k-center assignment; -1 for centres, pads, and when [CLS] is the only centre); else None.
    """

    keep: torch.Tensor
    order: torch.Tensor
    radius: torch.Tensor
    rank: torch.Tensor
    nearest: torch.Tensor | None = None


@njit_cached(nogil=True)
def _assignment_kernel(gram, sq, valid, keep, out):  # pragma: no cover - compiled
    """For each valid non-centre, the nearest centre other than slot 0; -1 elsewhere (see :func:`_assignment`).

    An ``(n - k) x k`` read of the Gram matrix already computed; a strict ``<`` in slot order gives ties to
    the earlier centre.
    """
    B, N = valid.shape
    two = np.float32(2.0)
    for b in range(B):
        centres = np.flatnonzero(keep[b, 1:]) + 1
        sqc = sq[b][centres]
        for i in range(N):
            out[b, i] = -1
            if not valid[b, i] or keep[b, i] or centres.size == 0:
                continue
            row = gram[b, i]
            best, arg = np.float32(np.inf), -1
            for j in range(centres.size):  # sq_i is constant per token: left out of the arg min
                d = sqc[j] - two * row[centres[j]]
                if d < best:
                    best, arg = d, centres[j]
            out[b, i] = arg


def _assignment(gram: np.ndarray, sq: np.ndarray, valid: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """For each valid non-centre, the nearest centre other than slot 0 ([CLS]), from the Gram matrix already
    computed (``||x_i - x_j||^2 = sq_i + sq_j - 2 gram_ij``; an ``(n, k)`` read, no new product); -1 elsewhere.
    Ties go to the earlier slot (``argmin``'s rule)."""
    out = np.empty(valid.shape, dtype=np.int64)
    _assignment_kernel(gram, sq, valid, keep, out)
    return out


def greedy_k_center(hidden: torch.Tensor, valid: torch.Tensor, k: torch.Tensor, assign: bool = False) -> KCenterResult:
    """Greedy furthest-point k-center, seeded with [CLS] (slot 0), per example.

    Args:
        hidden: ``(B, N, d)`` hidden states (any float dtype, any device; moved to CPU for the loop).
        valid: ``(B, N)`` bool; pads are never chosen.
        k: ``(B,)`` int, number of centres per example ([CLS] included); an example with fewer
            valid tokens keeps all of them.
        assign: also return each non-centre's nearest centre other than [CLS] (core-set pooling).

    Returns:
        A :class:`KCenterResult` on ``hidden``'s device.

    Raises:
        ValueError: shapes disagree.
    """
    if hidden.dim() != 3 or valid.shape != hidden.shape[:2] or k.shape != hidden.shape[:1]:
        raise ValueError(f"bad shapes: hidden {tuple(hidden.shape)}, valid {tuple(valid.shape)}, k {tuple(k.shape)}")
    gram, sq = gram_matrix(hidden, valid)
    B, N = valid.shape
    keep = np.empty((B, N), dtype=np.bool_)
    order = np.empty((B, N), dtype=np.int64)
    rank = np.empty((B, N), dtype=np.float32)
    radius2 = np.empty(B, dtype=np.float32)
    valid_np = valid.detach().cpu().numpy().astype(np.bool_)
    _greedy_k_center_kernel(
        gram, sq, valid_np, k.detach().cpu().numpy().astype(np.int64), keep, order, rank, radius2,
    )
    dev = hidden.device
    return KCenterResult(
        keep=torch.from_numpy(keep).to(dev),
        order=torch.from_numpy(order).to(dev),
        radius=torch.from_numpy(np.sqrt(radius2)).to(dev),
        rank=torch.from_numpy(rank).to(dev),
        nearest=torch.from_numpy(_assignment(gram, sq, valid_np, keep)).to(dev) if assign else None,
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

    def select(self, ctx: SelectionContext) -> Selection:
        result = greedy_k_center(ctx.hidden, ctx.valid, ctx.k)
        return Selection(keep=result.keep, scores=result.rank)

    def selection_flops(self, n_alive: int, n_kept: int, hidden_size: int) -> float:
        return 2.0 * n_alive * n_alive * hidden_size + 3.0 * n_alive * n_kept

DESCRIPTOR = Descriptor(
    label="Core-set (Pyramid-BERT, greedy k-center)",
    short="Core-set",
    description=("Pyramid-BERT: greedy k-center on the hidden states. Starting from [CLS], it keeps the token "
                 "furthest from everything kept so far, so the kept tokens cover all the others."),
)
"""How people see this selector (menus, legends, help) and what it needs shipped."""
