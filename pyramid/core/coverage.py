"""Coverage radius: how well a kept set of tokens covers the dropped ones (docs/methods.md 1.2).

The coverage radius of a kept set S over the valid tokens V is

    delta(S) = max_{i in V} min_{j in S} || h_i - h_j ||_2

(Sener & Savarese, ICLR 2018; the quantity the core-set bound of Pyramid-BERT says matters). The same
function scores every selector, in float64, so that radii compare exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Coverage:
    """How a kept set covers the tokens it dropped (docs/methods.md 1.2, "coverage-radius logging").

    Attributes:
        radius: ``(B,)`` float, max over dropped valid tokens of the distance to the nearest kept
            token; 0.0 when nothing is dropped.
        mean_distance: ``(B,)`` float, the mean of that distance over dropped tokens (0.0 if none).
        nearest: ``(B, N)`` long, slot of the kept token nearest to each token (itself when kept,
            -1 for pads).
        distance: ``(B, N)`` float, distance to that kept token (0.0 when kept or a pad).
    """

    radius: torch.Tensor
    mean_distance: torch.Tensor
    nearest: torch.Tensor
    distance: torch.Tensor


def coverage(hidden: torch.Tensor, valid: torch.Tensor, keep: torch.Tensor,
             assign: torch.Tensor | None = None) -> Coverage:
    """Coverage of the valid tokens by the kept ones, in Euclidean distance.

    Computed in float64 on mean-centred states so that radii of different selectors compare
    exactly. The same function scores every selector.

    For a merge (``assign``), a merged token is covered by the token it merged into, not by its nearest
    kept token: the coverage radius of a merge is the largest distance from a merged token to the token
    that absorbed it (docs/methods.md 10.4: the same notion, since a dropped token is *represented* by its
    nearest kept token and a merged one by its target; for core-set pooling the two are the same token
    unless the nearest is [CLS]).

    Args:
        hidden: ``(B, N, d)`` states the selection was made on (the layer's output).
        valid: ``(B, N)`` bool.
        keep: ``(B, N)`` bool, a subset of ``valid`` with at least one kept token per example
            that has a valid token.
        assign: ``(B, N)`` long merge targets (slot of the absorbing token, -1 where none), or None.

    Returns:
        :class:`Coverage`.
    """
    with torch.no_grad():
        x = hidden.detach().double()
        w = valid.to(x.dtype).unsqueeze(-1)
        x = x - (x * w).sum(1, keepdim=True) / w.sum(1, keepdim=True).clamp_min(1.0)
        sq = (x * x).sum(-1)  # (B, N)
        d2 = torch.baddbmm(sq.unsqueeze(2) + sq.unsqueeze(1), x, x.transpose(1, 2), alpha=-2.0)  # (B, N, N)
        full_d2 = d2.clamp_min(0.0)
        keep = keep & valid
        d2 = full_d2.masked_fill(~keep.unsqueeze(1), float("inf"))  # only kept columns count
        dist2, nearest = d2.min(dim=2)  # (B, N)
        if assign is not None:  # merged tokens: the distance to the token that absorbed them
            merged = (assign >= 0) & valid & ~keep
            to_target = full_d2.gather(2, assign.clamp_min(0).unsqueeze(2)).squeeze(2)  # (B, N)
            dist2 = torch.where(merged, to_target, dist2)
            nearest = torch.where(merged, assign, nearest)
        dist = dist2.sqrt()
        dist = torch.where(keep, torch.zeros_like(dist), dist)
        nearest = torch.where(keep, torch.arange(keep.shape[1], device=keep.device).expand_as(nearest), nearest)
        dropped = valid & ~keep
        has_kept = keep.any(dim=1, keepdim=True)
        dropped = dropped & has_kept
        dist = torch.where(dropped | keep, dist, torch.zeros_like(dist))
        nearest = torch.where(valid & has_kept, nearest, torch.full_like(nearest, -1))
        masked = torch.where(dropped, dist, torch.zeros_like(dist))
        radius = masked.max(dim=1).values
        count = dropped.sum(1)
        mean = masked.sum(1) / count.clamp_min(1)
    return Coverage(radius=radius.float(), mean_distance=mean.float(), nearest=nearest, distance=dist.float())
