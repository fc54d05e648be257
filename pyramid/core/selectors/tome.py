"""ToMe, Token Merging (Bolya et al., "Token Merging: Your ViT But Faster", ICLR 2023; code
facebookresearch/ToMe, ``tome/merge.py``), on text: bipartite soft matching on the attention keys, and the
matched tokens merged (docs/methods.md 10.2).

After layer j the alive tokens are split alternately into two sets, A (slots 0, 2, 4, ...) and B (slots 1,
3, 5, ...). Each A token's best match in B is the one with the highest cosine similarity of the layer's
keys averaged over heads (``k.mean(1)`` in ``tome/patch/timm.py``); the ``r`` A tokens with the best matches
are merged into their B partners (the merge routing averages them by size, :mod:`pyramid.core.routing.merge`).
[CLS] is slot 0, in A, and its row of similarities is ``-inf``: it is never merged, and nothing merges into
it (ToMe's ``class_token``). ``r`` comes from the project's length schedule (``r = alive - k``), not ToMe's
constant ``r`` per layer.

ToMe merges at most half the tokens of a layer (one matching). Where the schedule asks a layer to lose
more, the matching is repeated on what is left, each round on the size-weighted mean keys of the merged
groups, until ``r`` tokens are gone (a project extension, docs/methods.md 10.2). When only [CLS] and one
token would remain and one more must go, that token is dropped (nothing may merge into [CLS]).

Differences from ToMe, stated in docs/methods.md 10.2: ToMe merges inside each block, after the attention
and before the MLP, with that block's keys; here the selection happens after the layer's output (the
insertion point of every selector, docs/methods.md 0.1), with the keys of the same layer's attention, so
the layer's MLP still runs on the tokens that are then merged.
"""

from __future__ import annotations

import numpy as np
import torch

from .base import Descriptor, Selection, SelectionContext, Selector


def bipartite_merge(metric: torch.Tensor, size: torch.Tensor, r: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Bipartite soft matching on one example, repeated until ``r`` tokens are merged away.

    Args:
        metric: ``(n, c)`` the alive tokens' keys (slot 0 is [CLS]). size: ``(n,)`` their sizes.
        r: tokens to remove (``0 <= r < n``).

    Returns:
        ``(target (n,) long, score (n,) float)``: the slot each token merges into (its own slot when it is
        kept; -1 when it is dropped without a target), and each token's distinctiveness in the first
        round, ``1 - `` its best cosine similarity to the other set (2.0 for [CLS]), the selector's scores.
    """
    target, score, _ = _bipartite_merge(metric.detach().float().cpu().numpy(), size.detach().float().cpu().numpy(), r)
    return torch.from_numpy(target), torch.from_numpy(score)


def _bipartite_merge(metric: np.ndarray, size: np.ndarray, r: int, order: np.ndarray | None = None,
                     authors_order: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`bipartite_merge` on NumPy arrays (``metric`` ``(n, c)`` float32, ``size`` ``(n,)``).

    ``order``: ``(n,)`` the slots in sequence order (default ``0 .. n-1``, the positional order; slot 0, [CLS],
    first); the alternating split into A and B follows it. ``authors_order``: after each round the sequence is
    ToMe's ``[unmerged A, all B]`` (``tome/merge.py`` ``merge``: ``torch.cat([unm, dst])``, ``unm_idx`` sorted
    so that [CLS] stays first), not the survivors in their previous order. Returns the targets, the scores and
    the survivors' slots in their sequence order after the merge (the next layer's ``order``).

    NumPy rather than torch: a matching is a few dozen operations on arrays of a few hundred rows, where
    torch's per-operation overhead was most of the time (0.44 ms of a 512-token layer's matching on one core,
    ``python -m pyramid bench --selectors tome``).
    """
    n = metric.shape[0]
    m = metric / np.maximum(np.linalg.norm(metric, axis=-1, keepdims=True), 1e-12)  # (n, c) unit keys
    s = size.astype(np.float32)  # a copy: sizes of the merged groups, for the later rounds
    owner = np.arange(n)
    identity = order is None or np.array_equal(order, owner)
    alive = owner.copy() if order is None else np.asarray(order, dtype=np.int64).copy()
    score = np.zeros(n, dtype=np.float32)
    first = True
    rounds = 0
    while r > 0:
        t = alive.size
        rr = min(r, (t - 1) // 2)  # at most half, [CLS] protected (ToMe: min(r, (t - protected) // 2))
        if rr <= 0:
            break
        a, b = alive[0::2], alive[1::2]
        # every token is alive, in slot order, in the first round of a positional order: views
        ma, mb = (m[0::2], m[1::2]) if first and identity else (m[a], m[b])
        # (|A|, |B|) cosine similarities; torch's matmul, which keeps to torch's threads (NumPy's BLAS starts its
        # own pool, which fought torch's for the cores: ~10x slower on a busy machine)
        sim = torch.mm(torch.from_numpy(np.ascontiguousarray(ma)), torch.from_numpy(np.ascontiguousarray(mb.T))).numpy()
        sim[0, :] = -np.inf  # alive[0] is [CLS]: never merged
        match = sim.argmax(axis=-1)  # (|A|,) each A token's partner in B (the first maximum)
        best = sim[np.arange(match.size), match]  # (|A|,) and its similarity
        if first:
            score[a] = 1.0 - best
            score[b] = 1.0 - sim[1:].max(axis=0) if a.size > 1 else 1.0
            score[0] = 2.0
            first = False
        rows = np.argsort(-best, kind="stable")[:rr]  # the rr best-matched A tokens (ties: the earlier first)
        src, dst = a[rows], b[match[rows]]  # and their partners
        owner[src] = dst
        r -= rr
        rounds += 1
        gone = np.zeros(n, dtype=bool)
        gone[src] = True
        # the survivors in sequence order: ToMe's [unmerged A, all B], or their order before the round
        alive = np.concatenate([a[~gone[a]], b]) if authors_order else alive[~gone[alive]]
        if r <= 0:
            break  # the last round: no keys to merge for another one
        weighted = m * s[:, None]  # size-weighted mean keys of the merged groups for the next round
        np.add.at(weighted, dst, weighted[src])
        np.add.at(s, dst, s[src])
        m = weighted / np.maximum(s, 1e-12)[:, None]
        m = m / np.maximum(np.linalg.norm(m, axis=-1, keepdims=True), 1e-12)
    target = owner
    while rounds > 1:  # a token merged into one that merged later: follow the chain to the final group
        nxt = target[target]
        if np.array_equal(nxt, target):
            break
        target = nxt
    if r > 0:  # only [CLS] and r tokens are left, and nothing merges into [CLS]: the rest is dropped
        rest = alive[1:1 + r]
        target = np.where(np.isin(target, rest), -1, target)
        alive = alive[~np.isin(alive, rest)]
    return target, score, alive


class TomeSelector(Selector):
    """ToMe: bipartite soft matching on the layer's keys; matched tokens merge into their partners
    (see the module docstring; docs/methods.md 10.2).

    Selection FLOPs: the cosine similarities of each matching round, ``2 (t/2)^2 c`` for ``t`` alive tokens
    and keys of width ``c`` (the head dimension), plus normalising the keys (``3 t c``).
    """

    name = "tome"
    reads = "keys"
    routing = "merge"
    ORDERS = ("positional", "authors")
    """Token orders the alternating A/B split follows (docs/methods.md 10.2): ``positional``, the survivors in the
    text's order (the project's default), or ``authors``, ToMe's ``[unmerged A, all B]`` after every merge."""

    def __init__(self, regime: str = "inference", order: str = "positional"):
        """Args:
            regime: ``inference`` or ``train-select``.
            order: one of :data:`ORDERS`. With ``authors`` the instance keeps each example's token order from one
                layer's selection to the next within a forward pass (reset when a pass starts again at an earlier
                layer): do not share such an instance between threads.

        Raises:
            ValueError: an unknown ``order``.
        """
        super().__init__(regime)
        if order not in self.ORDERS:
            raise ValueError(f"ToMe's token order must be one of {', '.join(self.ORDERS)}, not {order!r}")
        self.order = order
        self._key_width: int | None = None
        self._ranks: dict[int, dict[int, int]] = {}  # authors' order: example -> {position: place in the sequence}
        self._last_layer: int | None = None

    def _sequence_order(self, b: int, positions: np.ndarray) -> np.ndarray | None:
        """Example ``b``'s alive slots in ToMe's sequence order (None: positional, the slots' own order)."""
        ranks = self._ranks.get(b)
        if ranks is None:
            return None
        return np.argsort([ranks.get(int(p), len(ranks) + i) for i, p in enumerate(positions)], kind="stable")

    def select(self, ctx: SelectionContext) -> Selection:
        if ctx.keys is None:
            raise ValueError("ToMe needs the layer's attention keys (the encoder gives them when reads == 'keys')")
        B, N = ctx.valid.shape
        self._key_width = int(ctx.keys.shape[-1])
        keys = ctx.keys.detach().float().cpu().numpy()  # (B, N, c)
        size = (ctx.size.detach().float().cpu().numpy() if ctx.size is not None
                else np.ones((B, N), dtype=np.float32))
        valid = ctx.valid.cpu().numpy()
        n_valid, k = valid.sum(1), ctx.k.cpu().numpy()
        authors = self.order == "authors"
        if authors:
            if self._last_layer is None or ctx.layer <= self._last_layer:  # a new forward pass
                self._ranks = {}
            self._last_layer = ctx.layer
            positions = ctx.positions.cpu().numpy()
        keep = valid.copy()
        merge_into = np.full((B, N), -1, dtype=np.int64)
        scores = np.zeros((B, N), dtype=np.float32)
        for b in range(B):
            n = int(n_valid[b])
            r = n - int(k[b])
            if r <= 0:
                continue
            order = self._sequence_order(b, positions[b, :n]) if authors else None
            target, score, alive = _bipartite_merge(keys[b, :n], size[b, :n], r, order, authors_order=authors)
            if authors:
                self._ranks[b] = {int(positions[b, slot]): place for place, slot in enumerate(alive)}
            scores[b, :n] = score
            gone = target != np.arange(n)
            keep[b, :n] = ~gone
            merge_into[b, :n] = np.where(gone, target, -1)
        dev = ctx.valid.device
        return Selection(keep=torch.from_numpy(keep).to(dev), scores=torch.from_numpy(scores).to(dev),
                         merge_into=torch.from_numpy(merge_into).to(dev))

    def selection_flops(self, n_alive: int, n_kept: int, hidden_size: int) -> float:
        c = self._key_width or max(1, hidden_size // 12)
        flops, t, r = 0.0, n_alive, n_alive - n_kept
        while r > 0 and t > 2:
            rr = min(r, (t - 1) // 2)
            flops += 2.0 * (t / 2) ** 2 * c + 3.0 * t * c
            t, r = t - rr, r - rr
        return flops


DESCRIPTOR = Descriptor(
    label="ToMe (token merging, bipartite matching)",
    short="ToMe",
    description=("ToMe: tokens are split alternately into two sets; each token of the first set finds its most "
                 "similar token of the second (cosine of the attention keys), and the best-matched pairs are "
                 "merged into their size-weighted average instead of being dropped."),
)
"""How people see this selector (menus, legends, help) and what it needs shipped."""
