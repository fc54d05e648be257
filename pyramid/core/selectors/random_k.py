"""Random selection: the baseline every selector must beat (docs/methods.md 1.7, project definition)."""

from __future__ import annotations

import torch

from .base import Descriptor, Selection, SelectionContext, Selector, keep_top_k


class RandomSelector(Selector):
    """[CLS] plus a uniform random subset of the valid tokens.

    Drawn from the generator the encoder passes (seeded per forward pass, so a trace is
    reproducible for a given seed).
    """

    name = "random"

    def select(self, ctx: SelectionContext) -> Selection:
        scores = torch.rand(ctx.valid.shape, generator=ctx.generator, device="cpu").to(ctx.hidden.device)
        return Selection(keep=keep_top_k(scores, ctx.valid, ctx.k), scores=scores)

DESCRIPTOR = Descriptor(
    label="Random",
    short="Random",
    description="A seeded uniform random draw of tokens: the baseline a selector must beat.",
)
"""How people see this selector (menus, legends, help) and what it needs shipped."""
