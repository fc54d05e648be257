"""Merge: each token a selector does not keep is averaged into a kept one (ToMe, Bolya et al., ICLR 2023,
``tome/merge.py``; Token Pooling, Marin et al., WACV 2023; docs/methods.md 10).

A size vector, how many original tokens each state stands for, goes through the layers with the states.
A merge replaces each target by the size-weighted mean of itself and the tokens merged into it,
``x_t <- (s_t x_t + sum_{i -> t} s_i x_i) / (s_t + sum_{i -> t} s_i)``, and adds their sizes (ToMe's
``merge_wavg``). Proportional attention adds ``log(size)`` to the attention logits of every later layer,
so that a merged state weighs as much as the tokens it stands for (ToMe's ``prop_attn``; on by default).
[CLS] is never merged away and nothing is merged into it (ToMe protects its class token the same way):
the classifier reads it.

Targets come from the selector (ToMe's bipartite matching, :attr:`Selection.merge_into`) or, when it gives
none, each dropped token goes to its nearest kept token in Euclidean distance on the layer's output, other
than [CLS] (core-set pooling: the k-center assignment of the tokens to the centres that cover them).
"""

from __future__ import annotations

import numpy as np
import torch

from ..jit import njit_cached
from .base import RouteState, Routing, shrink


def nearest_kept(hidden: torch.Tensor, valid: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """``(B, N)`` long: for each dropped valid token, the slot of its nearest kept token other than slot 0
    ([CLS]) in Euclidean distance (-1 where there is none, and for kept tokens and pads).

    Args:
        hidden: ``(B, N, d)``. valid, keep: ``(B, N)`` bool.
    """
    with torch.no_grad():
        x = hidden.detach().float()
        cand = keep & valid
        cand[:, 0] = False  # nothing merges into [CLS]
        sq = (x * x).sum(-1)  # (B, N)
        d2 = sq.unsqueeze(2) + sq.unsqueeze(1) - 2.0 * torch.bmm(x, x.transpose(1, 2))  # (B, N, N)
        d2 = d2.masked_fill(~cand.unsqueeze(1), float("inf"))
        best, idx = d2.min(dim=2)  # (B, N)
        dropped = valid & ~keep
        return torch.where(dropped & torch.isfinite(best), idx, torch.full_like(idx, -1))


@njit_cached(nogil=True)
def _checked_targets_kernel(given, keep, valid, out):  # pragma: no cover - compiled
    """``out[b, i] = given[b, i]`` where token i is valid, not kept, and its target is a kept slot other than 0;
    -1 elsewhere (see :meth:`MergeRouting.targets`). given, out (B, N) int64; keep, valid (B, N) bool."""
    B, N = given.shape
    for b in range(B):
        for i in range(N):
            t = given[b, i]
            ok = valid[b, i] and not keep[b, i] and 0 < t < N
            out[b, i] = t if ok and keep[b, t] else -1


def checked_targets(given: torch.Tensor, keep: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """A selector's merge targets with the rules of the merge applied: only valid, dropped tokens merge, only
    into kept slots, never into slot 0 ([CLS]); every other entry becomes -1 (a target outside ``0..N-1`` too).

    Args:
        given: ``(B, N)`` long, the slot each token merges into (-1: none). keep, valid: ``(B, N)`` bool.

    Returns:
        ``(B, N)``, ``given``'s dtype and device.

    On a CPU the checks run as one compiled loop: right after a layer, each distinct torch operation costs
    tens of microseconds (its code is out of the caches), and the same checks as tensor operations took nine
    of them (``python -m pyramid bench --pair coreset-pool:coreset``).
    """
    if given.device.type == "cpu":
        out = np.empty(tuple(given.shape), dtype=np.int64)
        _checked_targets_kernel(np.ascontiguousarray(given.detach().numpy(), dtype=np.int64),
                                np.ascontiguousarray(keep.detach().numpy()), np.ascontiguousarray(valid.detach().numpy()),
                                out)
        return torch.from_numpy(out).to(given.dtype)
    return _checked_targets_torch(given, keep, valid)


def _checked_targets_torch(given: torch.Tensor, keep: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """:func:`checked_targets` as tensor operations (any device)."""
    n = given.shape[1]
    ok = valid & ~keep & (given > 0) & (given < n)
    ok &= keep.gather(1, given.clamp(0, n - 1))
    return torch.where(ok, given, torch.full_like(given, -1))


class MergeRouting(Routing):
    """Merge each dropped token into its target (see the module docstring)."""

    name = "merge"
    merges = True

    def start(self, state: RouteState) -> RouteState:
        size = torch.ones(state.valid.shape, dtype=state.hidden.dtype, device=state.hidden.device)  # (B, N)
        return RouteState(state.hidden, state.valid, state.positions, state.ids, size)

    def bias(self, state: RouteState) -> torch.Tensor | None:
        if not self.proportional_attention or state.size is None or not bool((state.size != 1).any()):
            return None
        return state.size.clamp_min(1e-6).log()  # (B, N): log(size), 0 for a token that stands for itself

    def targets(self, state: RouteState, keep: torch.Tensor, selection) -> torch.Tensor:
        given = getattr(selection, "merge_into", None) if selection is not None else None
        if given is None:
            return nearest_kept(state.hidden, state.valid, keep)
        return checked_targets(given, keep, state.valid)  # never into [CLS], never from a kept token or a pad

    def route(self, layer, num_layers, state, keep, targets):
        size = state.size if state.size is not None else torch.ones_like(state.valid, dtype=state.hidden.dtype)
        w = size * state.valid.to(size.dtype)  # (B, N)
        src = (targets >= 0) & state.valid & ~keep  # (B, N) tokens merged away
        tgt = targets.clamp_min(0)  # (B, N)
        wsrc = torch.where(src, w, torch.zeros_like(w))  # (B, N)
        weighted = state.hidden * w.unsqueeze(-1)  # (B, N, d)
        gathered = torch.zeros_like(state.hidden).scatter_add(
            1, tgt.unsqueeze(-1).expand_as(state.hidden), weighted * src.unsqueeze(-1).to(weighted.dtype))
        added = torch.zeros_like(w).scatter_add(1, tgt, wsrc)  # (B, N) size merged into each target
        new_size = torch.where(keep, w + added, w)  # (B, N): kept tokens grow, the others keep theirs
        receives = keep & (added > 0)
        merged = (weighted + gathered) / new_size.clamp_min(1e-6).unsqueeze(-1)  # size-weighted means
        hidden = torch.where(receives.unsqueeze(-1), merged, state.hidden)
        routed = RouteState(hidden, state.valid, state.positions, state.ids, new_size)
        return shrink(routed, keep), new_size

    def route_flops(self, n_alive: int, n_kept: int, hidden_size: int) -> float:
        # every alive state times its size (d), the merged ones added to their targets (d each), and the
        # targets divided by their new size (d each)
        return float(hidden_size) * (n_alive + 2 * (n_alive - n_kept))
