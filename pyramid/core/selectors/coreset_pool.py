"""Core-set pooling: Pyramid-BERT's core-set, with each dropped token merged into the kept token that covers
it (the idea of Token Pooling, Marin et al., WACV 2023, which clusters tokens and averages each cluster;
docs/methods.md 10.3).

The kept set is the greedy k-center's (:class:`~pyramid.core.selectors.coreset.CoresetSelector`); every dropped
token then merges into its nearest centre other than [CLS], the k-center assignment of the centre that
covers it, read from the Gram matrix the selection already computed. The merge routing averages each
cluster by size (:mod:`pyramid.core.routing.merge`). So the kept token stands for its whole cluster instead of
only itself.
"""

from __future__ import annotations

from .base import Descriptor, Selection, SelectionContext
from .coreset import CoresetSelector, greedy_k_center


class CoresetPoolSelector(CoresetSelector):
    """Core-set selection, each dropped token merged into the centre that covers it (see the module docstring).

    Selection FLOPs: the core-set's, plus the assignment's distances to the centres (``3 n k``).
    """

    name = "coreset-pool"
    routing = "merge"

    def select(self, ctx: SelectionContext) -> Selection:
        result = greedy_k_center(ctx.hidden, ctx.valid, ctx.k, assign=True)
        return Selection(keep=result.keep, scores=result.rank, merge_into=result.nearest)

    def selection_flops(self, n_alive: int, n_kept: int, hidden_size: int) -> float:
        return super().selection_flops(n_alive, n_kept, hidden_size) + 3.0 * n_alive * n_kept


DESCRIPTOR = Descriptor(
    label="Core-set pooling (k-center clusters merged)",
    short="Core-set pool",
    description=("Core-set selection, then each dropped token is averaged into the kept token that covers it "
                 "(its nearest k-center centre), so every kept token stands for its cluster."),
)
"""How people see this selector (menus, legends, help) and what it needs shipped."""
