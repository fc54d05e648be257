"""Attention-based selection (PoWER-BERT significance; Goyal et al., ICML 2020; docs/methods.md 5.1)."""

from __future__ import annotations

from ..attention import significance
from .base import Descriptor, Selection, SelectionContext, Selector, keep_top_k


class AttentionSelector(Selector):
    """[CLS] plus the top tokens by PoWER-BERT significance, the attention each token receives.

    ``sig(t) = (1/H) sum_h sum_{i != t} A_h[i, t]`` over valid query rows (docs/methods.md 5.1,
    [code, P1]). Uses the attention of the layer whose output is being reduced; selection happens
    after the layer's output like every other selector (docs/methods.md 6, checklist 1), not between
    attention and FFN as in PoWER-BERT's own code.

    Raises:
        ValueError: (from :meth:`select`) the context has neither probabilities nor significance.
    """

    name = "attention"
    reads = "attention"

    def select(self, ctx: SelectionContext) -> Selection:
        if ctx.significance is not None:
            scores = ctx.significance.float()
        elif ctx.attention_probs is not None:
            scores = significance(ctx.attention_probs, ctx.valid)
        else:
            raise ValueError("the attention selector needs the layer's attention probabilities or significance")
        return Selection(keep=keep_top_k(scores, ctx.valid, ctx.k), scores=scores)

    def selection_flops(self, n_alive: int, n_kept: int, hidden_size: int) -> float:
        return float(n_alive * n_alive)  # summing received attention; the probabilities exist anyway

DESCRIPTOR = Descriptor(
    label="Attention (PoWER-BERT significance)",
    short="Attention",
    description=("PoWER-BERT: keep the tokens that receive the most attention from the other tokens "
                 "(significance), averaged over the layer's heads."),
)
"""How people see this selector (menus, legends, help) and what it needs shipped."""
