"""Park and rejoin, with a cross layer: Token Dropping's routing (Hou et al., ACL 2022; docs/methods.md 4.1).

Dropped tokens skip the middle layers: their states are parked where they left (as they were after the
layer that dropped them) and rejoin the sequence before the last layer, which runs on every token. The
layer right after a selection is a cross layer: its queries are the kept tokens, its keys and values every
token before the selection (the authors' ``MaskedLM`` routing keeps the dropped tokens visible to that
one layer).
"""

from __future__ import annotations

import torch

from .base import RouteState, Routing, shrink


class RejoinRouting(Routing):
    """Park dropped tokens, run a cross layer after each selection, rejoin everyone at the last layer.

    Args:
        detach_parked: parked states carry no gradient to the layers before they left (the project's first
            version); by default they keep it, as in the authors' code (docs/methods.md 4.1).
    """

    name = "rejoin"

    def __init__(self, proportional_attention: bool = True, detach_parked: bool = False):
        super().__init__(proportional_attention)
        self.detach_parked = detach_parked
        self.full: RouteState | None = None
        self.parked: torch.Tensor | None = None
        self.cross: RouteState | None = None

    def start(self, state: RouteState) -> RouteState:
        self.full = state
        self.parked = torch.zeros_like(state.hidden)  # (B, N, d): dropped states, where they left
        return state

    def enter(self, layer, num_layers, state):
        if layer == num_layers:  # every dropped token rejoins; kept rows hold their current states
            b, slot = state.valid.nonzero(as_tuple=True)
            full = self.parked.clone()  # (B, N, d)
            full[b, state.positions[b, slot]] = state.hidden[b, slot]
            f = self.full
            return RouteState(full, f.valid, f.positions, f.ids), None
        cross, self.cross = self.cross, None
        return state, cross

    def route(self, layer, num_layers, state, keep, targets):
        b, slot = (state.valid & ~keep).nonzero(as_tuple=True)
        parked = state.hidden[b, slot]
        self.parked[b, state.positions[b, slot]] = parked.detach() if self.detach_parked else parked
        if layer < num_layers - 1:
            self.cross = state  # the next layer's keys and values: every token before this selection
        return shrink(state, keep), None
