"""The pyramid encoder: a BERT encoder that reduces tokens layer by layer.

It owns the loop over the Hugging Face layers (docs/methods.md 0.3): embeddings, then for each layer
``j = 1..L`` the layer (through the model family's adapter, :mod:`pyramid.families`), and, after its
output, the selector's choice of tokens to keep. What happens to the others is the selector's routing
(:mod:`pyramid.routing`: dropped, parked until they rejoin, or merged into kept tokens); the kept rows of
the hidden states, the padding mask, the original positions and the token ids are gathered into
physically shorter tensors, so the next layer really computes less.

Rules enforced whatever the selector answers: [CLS] (slot 0) is always kept; pads are never kept;
kept tokens stay in ascending original order (docs/methods.md 1.4). With retention 1.0 the output equals
the plain ``BertModel``'s (tested to < 1e-5).

Absolute position embeddings are added at the input, so BERT layers are permutation-equivariant over
the kept set; families with relative positions (MPNet, DeBERTa) receive each kept token's original
position, so distances between the tokens that remain are those in the text (docs/methods.md 1.4).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch

from .coverage import Coverage, coverage
from .layers import additive_mask
from .loading import LoadedEncoder
from .routing import RouteState, make_routing
from .schedule import Schedule, config_dims, cross_layer_flops, layer_flops
from .selectors.base import Selection, SelectionContext, Selector


@dataclass
class LayerOutput:
    """What happened at one layer (1-based ``layer``), for a batch.

    Attributes:
        layer: 1..L.
        positions: ``(B, N_j)`` long, original token index of each slot entering the layer
            (-1 for pads); ascending within the valid slots.
        valid: ``(B, N_j)`` bool.
        keep: ``(B, N_j)`` bool, slots kept after this layer (equal to ``valid`` at the last layer
            or where nothing is dropped).
        hidden: ``(B, N_j, d)`` the layer's output, when asked for.
        coverage: :class:`pyramid.coverage.Coverage` of ``keep`` over ``valid``, when asked for.
        scores: ``(B, N_j)`` the selector's scores, when it made a selection here.
        attention_probs: ``(B, heads, N_j, N_j)`` when the selector asked for them.
        selection_seconds: wall time of the selector's ``select`` call and its merge targets (seconds;
            0.0 if none).
        selected: the selector ran after this layer.
        layer_seconds: wall time of the layer's forward (seconds).
        merged_into: ``(B, N_j)`` long, the slot each token merged into at this selection (-1: kept, or
            dropped without a target), for a merging routing; None otherwise.
        size: ``(B, N_j)`` float, how many original tokens each slot stands for after this layer's routing
            (a kept token's grown size; a merged token's own), for a merging routing; None otherwise.
    """

    layer: int
    positions: torch.Tensor
    valid: torch.Tensor
    keep: torch.Tensor
    hidden: torch.Tensor | None = None
    coverage: Coverage | None = None
    scores: torch.Tensor | None = None
    attention_probs: torch.Tensor | None = None
    selection_seconds: float = 0.0
    layer_seconds: float = 0.0
    selected: bool = False
    merged_into: torch.Tensor | None = None
    size: torch.Tensor | None = None


@dataclass
class PyramidOutput:
    """Output of :meth:`PyramidEncoder.forward`.

    Attributes:
        last_hidden_state: ``(B, N_L, d)`` output of the last layer for its alive tokens.
        positions: ``(B, N_L)`` their original indices (-1 for pads).
        valid: ``(B, N_L)`` bool.
        embedding_output: ``(B, N, d)`` when hidden states were asked for.
        layers: one :class:`LayerOutput` per layer, in order.
        lengths: ``(B, L)`` long, tokens kept after each layer (the schedule actually applied).
        n_tokens: ``(B,)`` long, real tokens of each input ([CLS] and [SEP] included).
        embedding_selection: a :class:`LayerOutput` with ``layer = 0`` when the selector chose
            tokens on the embedding output, before layer 1 (AdapLeR's CP_0); None otherwise.
        selection_flops: ``(B,)`` float64, FLOPs the selector itself spent on each example
            (:meth:`Selector.selection_flops` of the selector that ran, summed over its selections).
        routing_flops: ``(B,)`` float64, FLOPs of the layers beyond what the alive counts say: a
            cross layer's keys and values over the tokens before the selection (Token Dropping), and a
            merging routing's weighted sums.
        size: ``(B, N_L)`` float, how many original tokens each last-layer state stands for (merging
            routings), or None.
    """

    last_hidden_state: torch.Tensor
    positions: torch.Tensor
    valid: torch.Tensor
    layers: list[LayerOutput] = field(default_factory=list)
    embedding_output: torch.Tensor | None = None
    lengths: torch.Tensor | None = None
    n_tokens: torch.Tensor | None = None
    embedding_selection: LayerOutput | None = None
    selection_flops: torch.Tensor | None = None
    routing_flops: torch.Tensor | None = None
    size: torch.Tensor | None = None

    @property
    def cls_hidden(self) -> torch.Tensor:
        """``(B, d)`` the [CLS] state after the last layer (what a classifier reads)."""
        return self.last_hidden_state[:, 0]

    def alive_counts(self) -> torch.Tensor:
        """``(B, L)`` long: tokens entering each layer (for the FLOPs model)."""
        return torch.stack([lo.valid.sum(1) for lo in self.layers], dim=1)


class PyramidEncoder:
    """A BERT-family encoder whose sequence shrinks after each layer.

    Args:
        encoder: a :class:`pyramid.loading.LoadedEncoder`.
        selector: a :class:`pyramid.selectors.base.Selector`.
        schedule: a :class:`pyramid.schedule.Schedule` (used by fixed-length selectors).
        proportional_attention: with a merging routing, add ``log(size)`` to the attention logits of every
            later layer (ToMe's ``prop_attn``, docs/methods.md 10.1; default on).
        routing_options: further options of the selector's routing (``{"detach_parked": True}`` for the
            rejoin routing), or None.

    Example::

        enc = load_encoder()
        pyr = PyramidEncoder(enc, get_selector("coreset"), Schedule(retention=0.3))
        batch = enc.tokenizer(["a fine film"], return_tensors="pt")
        out = pyr(batch["input_ids"], batch["attention_mask"])
        out.cls_hidden  # (1, 384)
    """

    def __init__(self, encoder: LoadedEncoder, selector: Selector, schedule: Schedule | None = None, *,
                 proportional_attention: bool = True, routing_options: dict | None = None):
        self.encoder = encoder
        self.model = encoder.model
        self.selector = selector
        self.schedule = schedule or Schedule(retention=1.0)
        self.num_layers = encoder.num_layers
        self.proportional_attention = proportional_attention
        self.routing_options = dict(routing_options or {})
        self.schedule.validate(self.num_layers)

    def __call__(self, *args, **kwargs) -> PyramidOutput:
        return self.forward(*args, **kwargs)

    def schedule_lengths(self, n: torch.Tensor) -> torch.Tensor:
        """``(B,)`` real-token counts -> ``(B, L)`` kept lengths after each layer."""
        rows = [self.schedule.lengths(int(x), self.num_layers) for x in n.tolist()]
        return torch.tensor(rows, dtype=torch.long, device=n.device)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        *,
        output_hidden_states: bool = False,
        output_coverage: bool = False,
        output_attention_probs: bool = False,
        seed: int = 0,
        skip_layers: frozenset[int] = frozenset(),
    ) -> PyramidOutput:
        """Run the pyramid.

        Not wrapped in ``no_grad``: selection runs on detached states, and gradients flow through
        the gathered (and merged) rows (docs/methods.md 1.2), so the same forward fine-tunes with the
        pyramid in the loop. Wrap calls in ``torch.inference_mode()`` for inference.

        Args:
            input_ids: ``(B, N)`` long, [CLS] first (as the tokenizer gives it).
            attention_mask: ``(B, N)`` 1 for real tokens, 0 for pads (right padding); all ones if None.
            token_type_ids: ``(B, N)`` or None.
            output_hidden_states: keep every layer's output and the embedding output.
            output_coverage: compute the coverage radius of every layer's kept set (for a merge, over the
                merge targets).
            output_attention_probs: keep the probabilities a selector asked for.
            seed: seed of the generator passed to stochastic selectors.
            skip_layers: layers to skip (their output is their input): LayerDrop in training
                (docs/methods.md 8.5). A layer the selector must read (attention, keys) after it selects,
                and a cross layer, always run.

        Returns:
            :class:`PyramidOutput`.

        Raises:
            ValueError: ``input_ids`` is not 2-D or the first slot is a pad.
        """
        if input_ids.dim() != 2:
            raise ValueError(f"input_ids must be (batch, seq), got {tuple(input_ids.shape)}")
        B, N = input_ids.shape
        device = input_ids.device
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        valid = attention_mask.bool()
        if not bool(valid[:, 0].all()):
            raise ValueError("every example must start with a real token ([CLS]); use right padding")
        L = self.num_layers
        selector = self.selector
        routing = make_routing(selector.routing, proportional_attention=self.proportional_attention,
                               **self.routing_options)
        generator = torch.Generator().manual_seed(int(seed))
        retention = float(self.schedule.retention) if self.schedule.is_geometric else None

        family = self.encoder.family
        hidden = family.embed(self.model, input_ids, token_type_ids, attention_mask)  # (B, N, d)
        arange = torch.arange(N, device=device).expand(B, N)
        positions = torch.where(valid, arange, torch.full_like(arange, -1))  # (B, N)
        n_real = valid.sum(1)  # (B,)
        lengths = self.schedule_lengths(n_real)  # (B, L)
        state = routing.start(RouteState(hidden, valid, positions, input_ids))

        out = PyramidOutput(last_hidden_state=hidden, positions=positions, valid=valid, lengths=lengths,
                            n_tokens=n_real, selection_flops=torch.zeros(B, dtype=torch.float64),
                            routing_flops=torch.zeros(B, dtype=torch.float64))
        d = int(hidden.shape[-1])
        if output_hidden_states:
            out.embedding_output = hidden

        if not selector.fixed_length and selector.selects_after(0, L):
            ctx = SelectionContext(hidden=state.hidden.detach(), valid=state.valid, positions=state.positions,
                                   input_ids=state.ids, layer=0, num_layers=L, generator=generator,
                                   retention=retention, size=state.size)
            t0 = time.perf_counter()
            selection = selector.select(ctx)
            keep = self._enforce(selection.keep, state.valid)
            targets = routing.targets(state, keep, selection)
            seconds = time.perf_counter() - t0
            self._count_flops(out, routing, state.valid, keep, None, d)
            record = LayerOutput(layer=0, positions=state.positions, valid=state.valid, keep=keep,
                                 scores=selection.scores, selection_seconds=seconds, selected=True,
                                 hidden=state.hidden if output_hidden_states else None, merged_into=targets)
            state, record.size = routing.route(0, L, state, keep, targets)
            out.embedding_selection = record

        for j in range(1, L + 1):
            state, kv = routing.enter(j, L, state)
            valid = state.valid
            k = None
            will_select = False
            if j < L and selector.selects_after(j, L):
                if selector.fixed_length:
                    k = torch.minimum(lengths[:, j - 1], valid.sum(1))
                    will_select = bool((k < valid.sum(1)).any())
                else:
                    will_select = True
            request = self._request(will_select, output_attention_probs, valid)

            t0 = time.perf_counter()
            if j in skip_layers and kv is None and not request:  # LayerDrop: the layer is the identity
                hidden, extra = state.hidden, None
            elif kv is not None:  # a cross layer: queries the kept tokens, keys and values every token before
                mask = additive_mask(kv.valid, state.hidden.dtype, routing.bias(kv))
                hidden, extra = family.run_layer(self.model, j, state.hidden, mask, state.positions,
                                                 kv_hidden=kv.hidden, kv_positions=kv.positions)
                self._count_cross(out.routing_flops, valid, kv.valid)
            else:
                mask = additive_mask(valid, state.hidden.dtype, routing.bias(state))
                hidden, extra = family.run_layer(self.model, j, state.hidden, mask, state.positions,
                                                 **request)  # (B, N_j, d)
            state = RouteState(hidden, valid, state.positions, state.ids, state.size)
            t1 = time.perf_counter()

            selection: Selection | None = None
            targets = None
            if will_select:
                ctx = SelectionContext(hidden=hidden.detach(), valid=valid, positions=state.positions,
                                       input_ids=state.ids, layer=j, num_layers=L, k=k,
                                       attention_probs=extra if request.get("output_attention_probs") else None,
                                       significance=extra if request.get("significance_rows") is not None else None,
                                       keys=extra if request.get("output_keys") else None,
                                       generator=generator, retention=retention, size=state.size)
                selection = selector.select(ctx)
                keep = self._enforce(selection.keep, valid)
                targets = routing.targets(state, keep, selection)
                t2 = time.perf_counter()  # the selection's time ends here; the FLOPs bookkeeping is not in it
                self._count_flops(out, routing, valid, keep, k, d)
            else:
                keep = valid
                t2 = t1

            record = LayerOutput(
                layer=j, positions=state.positions, valid=valid, keep=keep,
                hidden=hidden if output_hidden_states else None,
                scores=selection.scores if selection is not None else None,
                attention_probs=extra if output_attention_probs and request.get("output_attention_probs") else None,
                selection_seconds=(t2 - t1) if will_select else 0.0,
                layer_seconds=t1 - t0, selected=will_select, merged_into=targets,
            )
            if output_coverage:
                record.coverage = coverage(hidden, valid, keep, assign=targets)
            out.layers.append(record)

            if will_select:
                state, record.size = routing.route(j, L, state, keep, targets)
            elif routing.merges:
                record.size = state.size

        out.last_hidden_state, out.positions, out.valid, out.size = state.hidden, state.positions, state.valid, state.size
        return out

    def _request(self, will_select: bool, output_attention_probs: bool, valid: torch.Tensor) -> dict:
        """What the layer must return for the selector (:attr:`Selector.reads`): nothing, the attention
        probabilities (eager; only when the caller asked for them), PoWER-BERT significance (chunked,
        without the probabilities) or the keys averaged over heads."""
        reads = self.selector.reads
        if not will_select or reads == "states":
            return {}
        if reads == "keys":
            return {"output_keys": True}
        if output_attention_probs:
            return {"output_attention_probs": True}
        return {"significance_rows": valid, "include_self": reads == "attention_with_self"}

    def _count_flops(self, out: PyramidOutput, routing, valid: torch.Tensor, keep: torch.Tensor,
                     k: torch.Tensor | None, d: int) -> None:
        """Add one selection's FLOPs per example: the selector's own cost model on the alive and kept counts
        to ``out.selection_flops``, the routing's (a merge's weighted sums) to ``out.routing_flops``. A
        fixed-length selector costs nothing where it had nothing to drop (``k`` equal to the alive count); a
        per-example selector scores every alive token."""
        alive = valid.sum(1)  # (B,)
        active = (k < alive).tolist() if k is not None else [True] * len(alive)
        pairs = list(zip(alive.tolist(), keep.sum(1).tolist(), active))
        cost = [self.selector.selection_flops(int(na), int(nk), d) if on else 0.0 for na, nk, on in pairs]
        out.selection_flops += torch.tensor(cost, dtype=out.selection_flops.dtype)  # one add, not one per example
        if routing.merges:
            extra = [routing.route_flops(int(na), int(nk), d) if on else 0.0 for na, nk, on in pairs]
            out.routing_flops += torch.tensor(extra, dtype=out.routing_flops.dtype)

    def _count_cross(self, total: torch.Tensor, q_valid: torch.Tensor, kv_valid: torch.Tensor) -> None:
        """Add a cross layer's extra FLOPs per example (over a layer on the queries alone) to ``total (B,)``."""
        dims = config_dims(self.encoder.config)
        for b, (mq, mkv) in enumerate(zip(q_valid.sum(1).tolist(), kv_valid.sum(1).tolist())):
            total[b] += cross_layer_flops(mq, mkv, *dims) - layer_flops(mq, *dims)

    @staticmethod
    def _enforce(keep: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """Apply the encoder's rules: only valid slots, [CLS] always."""
        keep = keep.to(torch.bool) & valid
        keep[:, 0] = valid[:, 0]
        return keep
