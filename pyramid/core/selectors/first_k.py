"""First-k selection: truncation (docs/methods.md 1.7, project definition)."""

from __future__ import annotations

from .base import Descriptor, Selection, SelectionContext, Selector, keep_top_k


class FirstKSelector(Selector):
    """The first ``k`` valid positions, [CLS] included: truncation."""

    name = "first-k"

    def select(self, ctx: SelectionContext) -> Selection:
        scores = -ctx.positions.float()  # earlier = higher
        return Selection(keep=keep_top_k(scores, ctx.valid, ctx.k), scores=scores)

DESCRIPTOR = Descriptor(
    label="First-k (truncation)",
    short="First-k",
    description="Keep the first tokens of the text and cut the rest (truncation).",
)
"""How people see this selector (menus, legends, help) and what it needs shipped."""
