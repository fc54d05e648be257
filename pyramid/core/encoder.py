"""The pyramid encoder: a BERT encoder that reduces tokens layer by layer.

It owns the loop over the Hugging Face layers (docs/methods.md 0.3): embeddings, then for each layer
``j = 1..L`` the layer (through the model family's adapter, :mod:`pyramid.core.families`), and, after its
output, the selector's choice of tokens to keep. What happens to the others is the selector's routing
(:mod:`pyramid.core.routing`: dropped, parked until they rejoin, or merged into kept tokens); the kept rows of
the hidden states, the padding mask, the original positions and the token ids are gathered into
physically shorter tensors, so the next layer really computes less.

Rules enforced whatever the selector answers: [CLS] (slot 0) is always kept; pads are never kept;
kept tokens stay in ascending original order (docs/methods.md 1.4). With retention 1.0 the output equals
the plain ``BertModel``'s (tested to < 1e-5).

Absolute position embeddings are added at the input, so BERT layers are permutation-equivariant over
the kept set; families with relative positions (MPNet, DeBERTa) receive each kept token's original
position, so distances between the tokens that remain are those in the text (docs/methods.md 1.4).

The loop itself is short (:meth:`PyramidEncoder.forward`): for each step, the routing's entry, the layer, the
selection, the routing's exit. Timing, FLOPs, hidden states, coverage and LayerDrop are observers it notifies
(:mod:`pyramid.core.observers`); what a layer hands the selector is one typed object (:class:`pyramid.core.observers.LayerReads`).
A selection before layer 1 (AdapLeR's CP_0) is the loop's first step, on the embedding output.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch

from .coverage import Coverage
from .layers import additive_mask
from .loading import LoadedEncoder
from .observers import (CoverageRadii, FlopsCounter, HiddenStates, LayerDrop, LayerReads, LayerStep, Observer, Timing,
                        layer_request)
from .routing import RouteState, make_routing
from .routing.base import Routing
from .schedule import Schedule
from .selectors.base import SelectionContext, Selector


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
        coverage: :class:`pyramid.core.coverage.Coverage` of ``keep`` over ``valid``, when asked for.
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



@dataclass
class EncoderRun:
    """What one forward pass carries from step to step (besides the tokens, which the loop holds).

    Attributes:
        selector, routing: the selector and a fresh routing of its kind.
        config: the encoder's config (for the FLOPs model). hidden_size: d.
        lengths: ``(B, L)`` long, the schedule's kept lengths after each layer.
        generator: seeded generator of stochastic selectors.
        retention: the schedule's final retention ratio (None for an explicit schedule).
        attention_probs: the caller asked for attention probabilities.
        out: the :class:`PyramidOutput` being filled.
    """

    selector: Selector
    routing: Routing
    config: object
    hidden_size: int
    lengths: torch.Tensor
    generator: torch.Generator
    retention: float | None
    attention_probs: bool
    out: PyramidOutput


class PyramidEncoder:
    """A BERT-family encoder whose sequence shrinks after each layer.

    Args:
        encoder: a :class:`pyramid.core.loading.LoadedEncoder`.
        selector: a :class:`pyramid.core.selectors.base.Selector`.
        schedule: a :class:`pyramid.core.schedule.Schedule` (used by fixed-length selectors).
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
        """Run the pyramid: per step (0 = the embedding output, when the selector chooses before layer 1; then
        layers 1..L) the routing's entry, the layer, the selection, the routing's exit, notifying the observers.

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
        observers = self.observers(output_hidden_states, output_coverage, skip_layers)
        run, state = self._begin(input_ids, attention_mask, token_type_ids, seed, output_attention_probs, observers)
        for j in range(self._first_step(), self.num_layers + 1):
            step = self._enter(run, j, state)
            _notify(observers, "before_layer", run, step)
            step.state, step.reads = self._layer(run, step, any(o.skips(step) for o in observers))
            _notify(observers, "after_layer", run, step)
            if step.selects:
                self._select(run, step)
            _notify(observers, "after_selection", run, step)
            _notify(observers, "end_step", run, step)
            state = self._exit(run, step)
        out = run.out
        out.last_hidden_state, out.positions, out.valid, out.size = state.hidden, state.positions, state.valid, state.size
        return out

    @staticmethod
    def observers(hidden_states: bool, coverage: bool, skip_layers: frozenset[int] = frozenset()) -> list[Observer]:
        """The observers of one pass, timing first (:mod:`pyramid.core.observers`)."""
        watch = [Timing(), FlopsCounter()]
        watch += [HiddenStates()] if hidden_states else []
        watch += [CoverageRadii()] if coverage else []
        return watch + ([LayerDrop(skip_layers)] if skip_layers else [])

    def _begin(self, input_ids, attention_mask, token_type_ids, seed, attention_probs, observers):
        """Check the batch, embed it and start the routing: ``(EncoderRun, RouteState)``."""
        if input_ids.dim() != 2:
            raise ValueError(f"input_ids must be (batch, seq), got {tuple(input_ids.shape)}")
        B, N = input_ids.shape
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        valid = attention_mask.bool()
        if not bool(valid[:, 0].all()):
            raise ValueError("every example must start with a real token ([CLS]); use right padding")
        hidden = self.encoder.family.embed(self.model, input_ids, token_type_ids, attention_mask)  # (B, N, d)
        arange = torch.arange(N, device=input_ids.device).expand(B, N)
        positions = torch.where(valid, arange, torch.full_like(arange, -1))  # (B, N)
        n_real = valid.sum(1)  # (B,)
        lengths = self.schedule_lengths(n_real)  # (B, L)
        out = PyramidOutput(last_hidden_state=hidden, positions=positions, valid=valid, lengths=lengths,
                            n_tokens=n_real, selection_flops=torch.zeros(B, dtype=torch.float64),
                            routing_flops=torch.zeros(B, dtype=torch.float64))
        routing = make_routing(self.selector.routing, proportional_attention=self.proportional_attention,
                               **self.routing_options)
        run = EncoderRun(self.selector, routing, self.encoder.config, int(hidden.shape[-1]), lengths,
                         torch.Generator().manual_seed(int(seed)),
                         float(self.schedule.retention) if self.schedule.is_geometric else None, attention_probs, out)
        _notify(observers, "begin", run, hidden)
        return run, routing.start(RouteState(hidden, valid, positions, input_ids))

    def _first_step(self) -> int:
        """0 when the selector chooses on the embedding output (a per-example-length selector acting before layer
        1: AdapLeR's CP_0), else 1."""
        sel = self.selector
        return 0 if not sel.fixed_length and sel.selects_after(0, self.num_layers) else 1

    def _enter(self, run: EncoderRun, j: int, state: RouteState) -> LayerStep:
        """The routing's entry into layer ``j`` (parked tokens rejoin; a cross layer's keys and values), whether
        the selector runs after it (for a fixed-length selector: where the schedule drops something) and what
        the layer must hand it."""
        L, sel = self.num_layers, self.selector
        kv = None
        if j > 0:
            state, kv = run.routing.enter(j, L, state)
        k, selects = None, j < L and sel.selects_after(j, L)
        if selects and sel.fixed_length:
            alive = state.valid.sum(1)
            k = torch.minimum(run.lengths[:, j - 1], alive)
            selects = bool((k < alive).any())
        field_, kwargs = layer_request(sel.reads, state.valid, run.attention_probs) if selects and j > 0 else (None, {})
        record = LayerOutput(layer=j, positions=state.positions, valid=state.valid, keep=state.valid, selected=selects)
        return LayerStep(j, state, kv, k, selects, field_, kwargs, record)

    def _layer(self, run: EncoderRun, step: LayerStep, skip: bool) -> tuple[RouteState, LayerReads]:
        """Layer ``step.layer`` on the alive tokens: its output state and what it hands the selector. Step 0 and a
        skipped layer hand on their input; a cross layer queries the kept tokens over the keys and values of every
        token before the last selection."""
        st, kv = step.state, step.kv
        if step.layer == 0 or skip:
            return st, LayerReads()
        family = self.encoder.family
        if kv is not None:
            mask = additive_mask(kv.valid, st.hidden.dtype, run.routing.bias(kv))
            hidden, _ = family.run_layer(self.model, step.layer, st.hidden, mask, st.positions,
                                         kv_hidden=kv.hidden, kv_positions=kv.positions)
            return replace(st, hidden=hidden), LayerReads()
        mask = additive_mask(st.valid, st.hidden.dtype, run.routing.bias(st))
        hidden, extra = family.run_layer(self.model, step.layer, st.hidden, mask, st.positions,
                                         **step.layer_kwargs)  # (B, N_j, d)
        reads = LayerReads(**{step.reads_field: extra}) if step.reads_field else LayerReads()
        return replace(st, hidden=hidden), reads

    def _select(self, run: EncoderRun, step: LayerStep) -> None:
        """The selector's choice after the step's layer, with the encoder's rules (only valid slots, [CLS] always)
        and the routing's merge targets, into ``step.record``."""
        st = step.state
        ctx = SelectionContext(hidden=st.hidden.detach(), valid=st.valid, positions=st.positions, input_ids=st.ids,
                               layer=step.layer, num_layers=self.num_layers, k=step.k, generator=run.generator,
                               retention=run.retention, size=st.size, **vars(step.reads))
        step.selection = run.selector.select(ctx)
        keep = step.selection.keep.to(torch.bool) & st.valid
        keep[:, 0] = st.valid[:, 0]
        r = step.record
        r.keep, r.scores = keep, step.selection.scores
        r.merged_into = run.routing.targets(st, keep, step.selection)
        r.attention_probs = step.reads.attention_probs

    def _exit(self, run: EncoderRun, step: LayerStep) -> RouteState:
        """Record the step and let the routing shorten the sequence to the kept tokens (dropping, parking or
        merging the others): the state entering the next layer."""
        r = step.record
        if step.layer == 0:
            run.out.embedding_selection = r
        else:
            run.out.layers.append(r)
        if step.selects:
            state, r.size = run.routing.route(step.layer, self.num_layers, step.state, r.keep, r.merged_into)
            return state
        if run.routing.merges:
            r.size = step.state.size
        return step.state


def _notify(observers: list[Observer], hook: str, run: EncoderRun, arg) -> None:
    """Call ``hook(run, arg)`` on every observer, in order."""
    for o in observers:
        getattr(o, hook)(run, arg)
