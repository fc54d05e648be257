"""What happens to the tokens a selector does not keep: the routing interface, and the state it routes.

The pyramid encoder (:mod:`pyramid.core.encoder`) owns the layer loop and calls a :class:`Routing` at three
points (docs/methods.md 0.3): before a layer (:meth:`Routing.enter`: which states the layer runs on, and a
cross layer's keys and values), for the attention's additive bias (:meth:`Routing.bias`: proportional
attention), and after a selection (:meth:`Routing.targets` then :meth:`Routing.route`: drop, park, merge).
A selector names the routing its method uses (:attr:`pyramid.core.selectors.base.Selector.routing`); the
registry in :mod:`pyramid.core.routing` maps the name to the class, so a new routing style is one file plus one
line there.

Rules enforced by the encoder whatever the routing: [CLS] (slot 0) is always kept; pads are never kept;
kept tokens stay in ascending original order.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class RouteState:
    """The tokens alive between two layers.

    Attributes:
        hidden: ``(B, N, d)`` states. valid: ``(B, N)`` bool, real (non-pad) slots.
        positions: ``(B, N)`` long, original token index of each slot (-1 for pads), ascending.
        ids: ``(B, N)`` long, vocabulary id of each slot.
        size: ``(B, N)`` float, how many original tokens each state stands for (merging routings), or None.
    """

    hidden: torch.Tensor
    valid: torch.Tensor
    positions: torch.Tensor
    ids: torch.Tensor
    size: torch.Tensor | None = None


def gather_rows(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """``x (B, N, ...)`` gathered along dim 1 with ``idx (B, M)`` -> ``(B, M, ...)``.

    Whole rows are copied with one ``index_select`` on the flattened ``(B * N, ...)`` view: an
    element-wise ``gather`` with the index expanded over the hidden size took ~8x longer on CPU
    (115 against 15 microseconds for 512 x 384 states). Differentiable like ``gather``.
    """
    if x.dim() == 2:
        return x.gather(1, idx)
    B, N = x.shape[:2]
    flat = (idx + torch.arange(B, device=idx.device).unsqueeze(1) * N).reshape(-1)  # (B * M,) rows of the flat view
    return x.reshape(B * N, *x.shape[2:]).index_select(0, flat).view(B, idx.shape[1], *x.shape[2:])


def compact(keep: torch.Tensor) -> torch.Tensor:
    """Slots to gather so that kept slots come first, in ascending order.

    Args:
        keep: ``(B, N)`` bool.

    Returns:
        ``(B, M)`` long with ``M = max kept count``; rows with fewer kept slots are filled with
        dropped slots, which the gathered ``keep`` marks as pads.
    """
    if keep.shape[0] == 1 and bool(keep.any()):
        return keep[0].nonzero().reshape(1, -1)  # (1, M): one example, no sort needed
    m = int(keep.sum(1).max())
    order = torch.argsort((~keep).to(torch.int8), dim=1, stable=True)  # kept first, ascending
    return order[:, :max(m, 1)]


def shrink(state: RouteState, keep: torch.Tensor) -> RouteState:
    """The kept slots of ``state`` gathered into physically shorter tensors (docs/methods.md 0.2); the state
    itself when everything valid is kept."""
    if bool((keep == state.valid).all()):
        return state
    idx = compact(keep)  # (B, M)
    valid = keep.gather(1, idx)
    positions = torch.where(valid, state.positions.gather(1, idx), torch.full_like(idx, -1))
    size = None
    if state.size is not None:  # pads (the filler slots of shorter rows) stand for nothing
        size = torch.where(valid, state.size.gather(1, idx), torch.zeros_like(idx, dtype=state.size.dtype))
    return RouteState(gather_rows(state.hidden, idx), valid, positions, state.ids.gather(1, idx), size)


class Routing:
    """Base routing: dropped tokens leave the sequence for good (Pyramid-BERT, PoWER-BERT, AdapLeR, TR-BERT,
    LTP; docs/methods.md 0.2). Subclasses override the hooks they change.

    One instance serves one forward pass (it may hold per-pass state, such as parked tokens).

    Args:
        proportional_attention: a merging routing adds ``log(size)`` to the attention logits of every later
            layer (ToMe's ``prop_attn``, docs/methods.md 10.1); ignored by routings without sizes.
    """

    name = "drop"
    merges = False
    """The routing merges dropped tokens into kept ones (the trace records targets and sizes)."""

    def __init__(self, proportional_attention: bool = True):
        self.proportional_attention = proportional_attention

    def start(self, state: RouteState) -> RouteState:
        """The state entering layer 1 (after the embeddings); may set up per-pass bookkeeping."""
        return state

    def enter(self, layer: int, num_layers: int, state: RouteState) -> tuple[RouteState, RouteState | None]:
        """``(the states layer ``layer`` runs on, a cross layer's keys and values or None)``."""
        return state, None

    def bias(self, state: RouteState) -> torch.Tensor | None:
        """``(B, N)`` additive bias on the attention logits towards each key, or None."""
        return None

    def targets(self, state: RouteState, keep: torch.Tensor, selection) -> torch.Tensor | None:
        """``(B, N)`` long: the slot each dropped token merges into (-1: none), or None when nothing merges."""
        return None

    def route(self, layer: int, num_layers: int, state: RouteState, keep: torch.Tensor,
              targets: torch.Tensor | None) -> tuple[RouteState, torch.Tensor | None]:
        """Apply a selection made after ``layer``: ``(the next state, the size of every slot after routing
        (B, N) or None)``."""
        return shrink(state, keep), None

    def route_flops(self, n_alive: int, n_kept: int, hidden_size: int) -> float:
        """FLOPs the routing itself spends on one example at one selection (merging's weighted sums)."""
        return 0.0
