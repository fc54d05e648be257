"""What watches the pyramid encoder's loop without changing what it computes (docs/architecture.md).

The loop (:meth:`pyramid.core.encoder.PyramidEncoder.forward`) notifies each observer at four points of every step
(:class:`LayerStep`): before the layer, after it, after the selection and at the end of the step; and asks them
once per step whether the layer is skipped. The way ``transformers`` exposes forward hooks and optional outputs:
the loop computes, the observers time, count and keep.

* :class:`Timing`: wall time of each layer and of each selection (seconds).
* :class:`FlopsCounter`: the selector's own FLOPs and the routing's extra FLOPs per example (docs/methods.md 0.4).
* :class:`HiddenStates`: the embedding output and every layer's output.
* :class:`CoverageRadii`: the coverage of every layer's kept set (docs/methods.md 2).
* :class:`LayerDrop`: layers skipped in training (docs/methods.md 8.5).

A new kind of bookkeeping is one observer here and one line in
:meth:`pyramid.core.encoder.PyramidEncoder.observers`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch

from .coverage import coverage
from .routing import RouteState
from .schedule import config_dims, cross_layer_flops, layer_flops
from .selectors.base import Selection


@dataclass
class LayerReads:
    """What a layer hands its selector besides its output states: one field per kind of
    :attr:`pyramid.core.selectors.base.Selector.reads` (filled only for the kind the selector reads).

    Attributes:
        attention_probs: ``(B, heads, N, N)`` attention probabilities (rows are queries), when the caller asked
            for them and the selector reads attention.
        significance: ``(B, N)`` PoWER-BERT significance, computed inside the attention without the probabilities
            (``"attention"``; ``"attention_with_self"`` with the self term, LTP).
        keys: ``(B, N, head_dim)`` the attention's keys averaged over heads (``"keys"``: ToMe's similarity).
    """

    attention_probs: torch.Tensor | None = None
    significance: torch.Tensor | None = None
    keys: torch.Tensor | None = None


def layer_request(reads: str, valid: torch.Tensor, attention_probs: bool) -> tuple[str | None, dict]:
    """What a layer must compute for a selector that reads ``reads``: ``(field of LayerReads it fills, keyword
    arguments of the family's ``run_layer``)``.

    Args:
        reads: :attr:`Selector.reads` (``"states"``, ``"attention"``, ``"attention_with_self"``, ``"keys"``).
        valid: ``(B, N)`` bool, the query rows of a significance.
        attention_probs: the caller asked for the probabilities (eager attention) instead of the chunked
            significance.

    Raises:
        ValueError: an unknown ``reads``.
    """
    if reads == "states":
        return None, {}
    if reads == "keys":
        return "keys", {"output_keys": True}
    if reads not in ("attention", "attention_with_self"):
        raise ValueError(f"unknown reads kind '{reads}'")
    if attention_probs:
        return "attention_probs", {"output_attention_probs": True}
    return "significance", {"significance_rows": valid, "include_self": reads == "attention_with_self"}


@dataclass
class LayerStep:
    """One step of the encoder's loop: layer ``layer`` (0: the embedding output, when the selector chooses before
    layer 1), then the selection after it.

    Attributes:
        layer: 0..L.
        state: the tokens entering the layer; after it, its output (``state.hidden (B, N_j, d)``).
        kv: a cross layer's keys and values (every token before the last selection: Token Dropping), or None.
        k: ``(B,)`` long target kept counts of a fixed-length selector, or None.
        selects: the selector runs after this layer.
        reads_field, layer_kwargs: what the layer computes for the selector (:func:`layer_request`).
        reads: what it handed over (:class:`LayerReads`).
        record: the step's :class:`pyramid.core.encoder.LayerOutput`, filled as the step goes.
        selection: the selector's answer, or None.
    """

    layer: int
    state: RouteState
    kv: RouteState | None
    k: torch.Tensor | None
    selects: bool
    reads_field: str | None
    layer_kwargs: dict
    record: object
    reads: LayerReads = field(default_factory=LayerReads)
    selection: Selection | None = None


class Observer:
    """Base observer: every hook does nothing. Each hook takes the encoder's :class:`pyramid.core.encoder.EncoderRun`
    first, then the step (or, for ``begin``, the embedding output)."""

    def begin(self, run, embedding_output: torch.Tensor) -> None:
        """The embeddings ``(B, N, d)`` were computed."""

    def skips(self, step: LayerStep) -> bool:
        """Whether the step's layer is skipped (its output is its input)."""
        return False

    def before_layer(self, run, step: LayerStep) -> None:
        """The layer is about to run."""

    def after_layer(self, run, step: LayerStep) -> None:
        """The layer ran: ``step.state.hidden`` is its output."""

    def after_selection(self, run, step: LayerStep) -> None:
        """The selection (if any) and its merge targets are in ``step.record``."""

    def end_step(self, run, step: LayerStep) -> None:
        """The step's record is complete (before the routing shortens the sequence)."""


class Timing(Observer):
    """Wall time of the layer (``record.layer_seconds``) and of the selection with its merge targets
    (``record.selection_seconds``; 0.0 where none ran), in seconds. First among the observers, so no other's work
    is in the times."""

    def before_layer(self, run, step):
        """Start the layer's clock."""
        self._t = time.perf_counter()

    def after_layer(self, run, step):
        """The layer's time; start the selection's clock."""
        now = time.perf_counter()
        step.record.layer_seconds = now - self._t
        self._t = now

    def after_selection(self, run, step):
        """The selection's time (with its merge targets), where one ran."""
        if step.selection is not None:
            step.record.selection_seconds = time.perf_counter() - self._t


class FlopsCounter(Observer):
    """Per example, into the output's ``selection_flops`` the selector's own cost model on the alive and kept
    counts (:meth:`Selector.selection_flops`; nothing where a fixed-length selector had nothing to drop, ``k``
    equal to the alive count), and into ``routing_flops`` a merge's weighted sums and a cross layer's extra cost
    over a layer on its queries alone (docs/methods.md 0.4)."""

    def end_step(self, run, step):
        """Add this step's cross-layer, selection and merge FLOPs per example."""
        out = run.out
        if step.kv is not None:
            dims = config_dims(run.config)
            q, kv = step.state.valid.sum(1).tolist(), step.kv.valid.sum(1).tolist()
            for b, (mq, mkv) in enumerate(zip(q, kv)):
                out.routing_flops[b] += cross_layer_flops(mq, mkv, *dims) - layer_flops(mq, *dims)
        if step.selection is None:
            return
        alive = step.state.valid.sum(1)  # (B,)
        active = (step.k < alive).tolist() if step.k is not None else [True] * len(alive)
        pairs = list(zip(alive.tolist(), step.record.keep.sum(1).tolist(), active))
        d = run.hidden_size
        cost = [run.selector.selection_flops(int(na), int(nk), d) if on else 0.0 for na, nk, on in pairs]
        out.selection_flops += torch.tensor(cost, dtype=out.selection_flops.dtype)  # one add, not one per example
        if run.routing.merges:
            extra = [run.routing.route_flops(int(na), int(nk), d) if on else 0.0 for na, nk, on in pairs]
            out.routing_flops += torch.tensor(extra, dtype=out.routing_flops.dtype)


class HiddenStates(Observer):
    """The embedding output (``out.embedding_output``) and every step's output states (``record.hidden``)."""

    def begin(self, run, embedding_output):
        """Keep the embedding output."""
        run.out.embedding_output = embedding_output

    def end_step(self, run, step):
        """Keep the step's output states."""
        step.record.hidden = step.state.hidden


class CoverageRadii(Observer):
    """The coverage of every layer's kept set over its alive tokens (for a merge, over the merge targets:
    docs/methods.md 10.4), in ``record.coverage``; not of a selection on the embeddings."""

    def end_step(self, run, step):
        """The coverage of the step's kept set (layers 1..L)."""
        if step.layer > 0:
            r = step.record
            r.coverage = coverage(step.state.hidden, r.valid, r.keep, assign=r.merged_into)


class LayerDrop(Observer):
    """Skip the given layers (LayerDrop in training, docs/methods.md 8.5), except a layer the selector must read
    (attention, keys) and a cross layer, which always run."""

    def __init__(self, layers: frozenset[int]):
        """``layers``: 1-based indices of the layers to skip."""
        self.layers = frozenset(layers)

    def skips(self, step):
        """Skip a listed layer the selector does not read and that is not a cross layer."""
        return step.layer in self.layers and step.kv is None and not step.layer_kwargs
