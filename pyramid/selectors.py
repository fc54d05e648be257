"""Token selectors: one interface for every method the pyramid encoder can run.

A selector is called after an encoder layer's output (methods.md 6, checklist 1: one insertion
point for every selector) and answers which of the alive tokens go on to the next layer. It is
built once and has one verb, :meth:`Selector.select`, in the captum mould.

The interface covers every method of methods.md section 6:

* fixed-length selectors obey the schedule's lengths (``fixed_length = True``; core-set,
  attention, random, first-k): the encoder passes the target count ``k`` per example;
* per-example-length selectors decide the count themselves (``fixed_length = False``; AdapLeR's
  threshold eta/n, TR-BERT's pi >= 0.5); they say where they act through
  :meth:`Selector.selects_after`, layer 0 meaning before the first layer (AdapLeR's CP_0);
* selectors that read attention set ``needs_attention_probs = True`` and receive the layer's
  probabilities ``(B, heads, N, N)``;
* learned selectors are also ``torch.nn.Module`` subclasses carrying their weights;
* routing where dropped tokens rejoin before the last layer (Token Dropping, methods.md 4.1) sets
  ``rejoin_at_last_layer = True``; the encoder parks dropped states and re-inserts them.

[CLS] (slot 0) is always kept and pads are never kept: the encoder enforces both whatever a
selector answers.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .coreset import greedy_k_center


@dataclass
class SelectionContext:
    """What a selector sees after layer ``layer``.

    Attributes:
        hidden: ``(B, N, d)`` the layer's output for the alive tokens (slot 0 is [CLS]).
        valid: ``(B, N)`` bool, real (non-pad) slots.
        positions: ``(B, N)`` long, index of each slot in the original token sequence (-1 for pads).
        input_ids: ``(B, N)`` long, vocabulary id of each slot (pad id for pads).
        layer: 1-based index of the layer whose output this is (0 = embedding output).
        num_layers: L.
        k: ``(B,)`` long target kept counts (fixed-length selectors), each <= the valid count;
            None for per-example-length selectors.
        attention_probs: ``(B, heads, N, N)`` this layer's attention probabilities (rows are
            queries) when the selector asked for them, else None.
        significance: ``(B, N)`` PoWER-BERT significance of this layer, computed inside the
            attention without the probabilities, given instead of them to selectors that set
            ``accepts_significance`` (unless the caller asked for the probabilities).
        generator: a seeded ``torch.Generator`` for stochastic selectors.
        retention: the schedule's final retention ratio (None for explicit schedules), for
            selectors that read it as a keep fraction (Token Dropping).
    """

    hidden: torch.Tensor
    valid: torch.Tensor
    positions: torch.Tensor
    input_ids: torch.Tensor
    layer: int
    num_layers: int
    k: torch.Tensor | None = None
    attention_probs: torch.Tensor | None = None
    significance: torch.Tensor | None = None
    generator: torch.Generator | None = None
    retention: float | None = None


@dataclass
class Selection:
    """A selector's answer.

    Attributes:
        keep: ``(B, N)`` bool, slots that go on to the next layer.
        scores: ``(B, N)`` float importance scores (higher = more worth keeping) where the method
            has them, for the app's comparisons; None otherwise.
    """

    keep: torch.Tensor
    scores: torch.Tensor | None = None


class Selector:
    """Base class of token selectors.

    Class attributes:
        name: registry name (``"coreset"``...).
        fixed_length: obeys the schedule's per-layer lengths.
        needs_attention_probs: wants the layer's attention probabilities.
        accepts_significance: can work from the significance vector alone (cheaper than the
            probabilities: no ``(B, heads, N, N)`` tensor).
        rejoin_at_last_layer: dropped tokens are re-inserted before the last layer.
        uses_retention: the schedule's retention ratio changes what it keeps (False for the learned
            selectors, whose thresholds decide).
    """

    name: str = "selector"
    label: str = "Selector"
    fixed_length: bool = True
    needs_attention_probs: bool = False
    accepts_significance: bool = False
    rejoin_at_last_layer: bool = False
    uses_retention: bool = True

    def selects_after(self, layer: int, num_layers: int) -> bool:
        """Whether to call :meth:`select` after layer ``layer`` (0 = embeddings, L-1 = last chance).

        Fixed-length selectors act wherever the schedule shortens the sequence (layers 1..L-1);
        per-example-length selectors override this.
        """
        return 1 <= layer <= num_layers - 1

    def select(self, ctx: SelectionContext) -> Selection:
        """Choose the tokens to keep. See :class:`SelectionContext` and :class:`Selection`."""
        raise NotImplementedError

    @classmethod
    def unavailable(cls, model_name: str | None = None) -> str | None:
        """Why this selector cannot run on the model ``model_name`` (None: it can; rule-based ones always can)."""
        return None

    def selection_flops(self, n_alive: int, n_kept: int, hidden_size: int) -> float:
        """FLOPs of one selection on one example (``n_alive`` tokens in, ``n_kept`` out)."""
        return 0.0


def keep_top_k(scores: torch.Tensor, valid: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Keep [CLS] plus the highest-scoring valid tokens, ``k`` per example in all.

    Args:
        scores: ``(B, N)`` float, higher = keep.
        valid: ``(B, N)`` bool.
        k: ``(B,)`` long, kept count per example ([CLS] included).

    Returns:
        ``(B, N)`` bool keep mask; ties go to the earlier position.
    """
    s = scores.detach().float().masked_fill(~valid, float("-inf"))
    s[:, 0] = float("inf")  # [CLS] first
    order = torch.argsort(s, dim=1, descending=True, stable=True)  # (B, N)
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(s.shape[1], device=s.device).expand_as(order))
    return (rank < k.unsqueeze(1)) & valid


class CoresetSelector(Selector):
    """Pyramid-BERT's core-set selection: greedy k-center on the layer's output (methods.md 1.2).

    Euclidean distance on the post-LayerNorm hidden states, [CLS] as the first centre, each next
    centre the token furthest from the centres chosen so far; pads never chosen. The distance and
    the [CLS] rule are the project defaults ([UNCONFIRMED] in the paper). Scores are the order in
    which tokens became centres (earlier = higher), so the app can rank them.

    Selection cost counted in FLOPs: the Gram matrix ``2 n^2 d`` plus ``~3 n`` per centre.
    """

    name = "coreset"
    label = "Core-set (Pyramid-BERT, greedy k-center)"

    def select(self, ctx: SelectionContext) -> Selection:
        result = greedy_k_center(ctx.hidden, ctx.valid, ctx.k)
        B, N = ctx.valid.shape
        scores = torch.zeros(B, N, dtype=torch.float32, device=ctx.hidden.device)
        rank = torch.arange(N, 0, -1, dtype=torch.float32, device=scores.device).expand(B, N)  # N..1
        idx = result.order.clamp_min(0)
        scores.scatter_(1, idx, torch.where(result.order >= 0, rank, torch.zeros_like(rank)))
        return Selection(keep=result.keep, scores=scores)

    def selection_flops(self, n_alive: int, n_kept: int, hidden_size: int) -> float:
        return 2.0 * n_alive * n_alive * hidden_size + 3.0 * n_alive * n_kept


def significance(probs: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """PoWER-BERT significance: attention each token receives (methods.md 5.1, [code, P1]).

    ``sig(t) = sum_{i != t} (1/H) sum_h A_h[i, t]`` over valid query rows i.

    Args:
        probs: ``(B, H, N, N)`` attention probabilities, rows are queries.
        valid: ``(B, N)`` bool.

    Returns:
        ``(B, N)`` float32.
    """
    p = probs.detach().float()
    B, H, N, _ = p.shape
    w = valid.to(p.dtype)  # (B, N) query-row weights: pad rows count 0
    # One pass over the probabilities: (B, 1, H*N) @ (B, H*N, N) sums the valid query rows of every head.
    received = torch.bmm(w.repeat(1, H).unsqueeze(1), p.reshape(B, H * N, N)).squeeze(1)  # (B, N)
    self_attention = torch.diagonal(p, dim1=2, dim2=3).sum(1) * w  # (B, N): A_h[t, t] summed over heads
    return (received - self_attention) / H  # (B, N), diagonal excluded, averaged over heads


class AttentionSelector(Selector):
    """Attention-based selection: [CLS] plus the top tokens by PoWER-BERT significance.

    Uses the attention of the layer whose output is being reduced; selection happens after the
    layer's output like every other selector (methods.md 6, checklist 1), not between attention
    and FFN as in PoWER-BERT's own code.
    """

    name = "attention"
    label = "Attention (PoWER-BERT significance)"
    needs_attention_probs = True
    accepts_significance = True

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


class RandomSelector(Selector):
    """[CLS] plus a uniform random subset of the valid tokens (methods.md 1.7, project definition).

    Drawn from the generator the encoder passes (seeded per forward pass, so a trace is
    reproducible for a given seed).
    """

    name = "random"
    label = "Random"

    def select(self, ctx: SelectionContext) -> Selection:
        scores = torch.rand(ctx.valid.shape, generator=ctx.generator, device="cpu").to(ctx.hidden.device)
        return Selection(keep=keep_top_k(scores, ctx.valid, ctx.k), scores=scores)


class FirstKSelector(Selector):
    """The first ``k`` valid positions, [CLS] included: truncation (methods.md 1.7)."""

    name = "first-k"
    label = "First-k (truncation)"

    def select(self, ctx: SelectionContext) -> Selection:
        positions = ctx.positions.float()
        scores = -positions  # earlier = higher
        return Selection(keep=keep_top_k(scores, ctx.valid, ctx.k), scores=scores)


def _artifact_unavailable(load, model_name: str | None, made_for: str) -> str | None:
    """Why a selector's shipped artifact cannot serve ``model_name``: it does not load (the loader's
    message), or it was made for another base model; None when it can."""
    from .loading import DEFAULT_MODEL

    try:
        _, config = load()
    except ValueError as exc:
        return str(exc)
    if model_name is not None and config.base_model != (model_name or DEFAULT_MODEL):
        return f"{made_for} '{config.base_model}', not '{model_name}'"
    return None


class LearnedSelector(Selector):
    """A selector with trained weights that belong to one sentiment head's fine-tuned encoder.

    Subclasses set :meth:`load_default` (the shipped artifact) and hold ``self.weights`` (an
    ``nn.Module``) and ``self.config`` (its config, with ``head``, ``base_model``, ``hidden_size``,
    ``num_layers``). They run on the head's encoder (:func:`pyramid.classifier.encoder_for_selector`).
    """

    fixed_length = False
    uses_retention = False

    def __init__(self, weights=None, config=None):
        if weights is None:
            weights, config = self.load_default()
        self.weights = weights
        self.config = config

    @classmethod
    def load_default(cls):
        """``(weights, config)`` of the shipped artifact; raises a ``ValueError`` subclass if missing."""
        raise NotImplementedError

    @classmethod
    def unavailable(cls, model_name: str | None = None) -> str | None:
        return _artifact_unavailable(cls.load_default, model_name, f"the {cls.label} weights were trained on")

    @property
    def head(self) -> str | None:
        """The classifier head whose encoder the weights were trained on (None if unknown)."""
        return self.config.head if self.config is not None else None

    def _check(self, ctx: SelectionContext, hidden_size: int, num_layers: int) -> None:
        if ctx.hidden.shape[-1] != hidden_size or ctx.num_layers != num_layers:
            raise ValueError(
                f"the {self.label} weights were trained for a {num_layers}-layer, d={hidden_size} encoder; "
                f"this one has {ctx.num_layers} layers and d={ctx.hidden.shape[-1]}"
            )


class AdaplerSelector(LearnedSelector):
    """AdapLeR: per-layer contribution predictors with the threshold ``eta_l / n_l`` (methods.md 2.4, 2.10).

    Before layer l+1 (l = 0..L-1, 0 = the embedding output) CP_l scores the alive tokens with a
    softmax over [CLS] and them; a token stays iff ``p_i >= eta_l / n_l``, ``n_l`` the alive count
    with [CLS]. Lengths differ per example; the schedule is ignored. Scores are the CP
    distribution. Selection FLOPs: every CP runs on every alive token (counted even where nothing
    is dropped).

    Args:
        predictors: a :class:`pyramid.adapler.ContributionPredictors`, or None for the shipped
            artifact (``assets/adapler/sst2-lora-adapler``).
        config: its :class:`pyramid.adapler.AdaplerConfig` (read with the shipped artifact).

    Raises:
        AdaplerLoadError: (when ``predictors`` is None) the shipped artifact is missing or corrupt.
    """

    name = "adapler"
    label = "AdapLeR (contribution predictors)"

    @classmethod
    def load_default(cls):
        from .adapler import load_predictors

        return load_predictors()

    @property
    def predictors(self):
        """The :class:`pyramid.adapler.ContributionPredictors`."""
        return self.weights

    def selects_after(self, layer: int, num_layers: int) -> bool:
        return 0 <= layer <= num_layers - 1

    @torch.inference_mode()
    def select(self, ctx: SelectionContext) -> Selection:
        pred = self.weights
        self._check(ctx, pred.hidden_size, pred.num_layers)
        p = pred.distribution(ctx.layer, ctx.hidden, ctx.valid.float())  # (B, N)
        delta = pred.thresholds(ctx.layer, ctx.valid.sum(1)).unsqueeze(1)  # (B, 1)
        return Selection(keep=(p >= delta) & ctx.valid, scores=p)

    def selection_flops(self, n_alive: int, n_kept: int, hidden_size: int) -> float:
        return float(n_alive) * self.weights.flops_per_token()


class TrbertSelector(LearnedSelector):
    """TR-BERT: a policy network after layer 1 and after layer L/2; a token stays iff ``pi_i >= 0.5``
    (methods.md 3.1, 3.4). [CLS] always stays; lengths differ per example; the schedule is ignored.
    Scores are the keep probabilities. Selection FLOPs: the policy on every alive token at its points.

    Args:
        policy: a :class:`pyramid.trbert.PolicyNetworks`, or None for the shipped artifact
            (``assets/trbert/sst2-lora-trbert``).
        config: its :class:`pyramid.trbert.TrbertConfig`.

    Raises:
        TrbertLoadError: (when ``policy`` is None) the shipped artifact is missing or corrupt.
    """

    name = "trbert"
    label = "TR-BERT (policy network)"

    @classmethod
    def load_default(cls):
        from .trbert import load_policy

        return load_policy()

    def selects_after(self, layer: int, num_layers: int) -> bool:
        return layer in self.weights.points

    @torch.inference_mode()
    def select(self, ctx: SelectionContext) -> Selection:
        self._check(ctx, self.weights.hidden_size, self.config.num_layers if self.config else ctx.num_layers)
        pi = self.weights.keep_probability(ctx.layer, ctx.hidden, ctx.valid)  # (B, N)
        return Selection(keep=(pi >= 0.5) & ctx.valid, scores=pi)

    def selection_flops(self, n_alive: int, n_kept: int, hidden_size: int) -> float:
        return float(n_alive) * self.weights.flops_per_token()


class TokenDroppingSelector(Selector):
    """Token Dropping's routing (methods.md 4.1, 4.2): after layer ``L/2 - 1`` keep the ``ceil(rho n)``
    tokens with the highest importance ``I[input_id]`` (the EMA of each vocabulary id's MLM loss;
    [CLS], [SEP], [UNK], [MASK] always), skip the others through the middle layers, and re-insert
    them with their states from that layer before the last layer, which sees every token.

    ``rho`` is the schedule's retention (0.5, the authors' 256 of 512, for explicit schedules).
    A pre-training method used at inference here (a project adaptation, methods.md 4 "Scope").
    Selection FLOPs: one table look-up per token (counted as n).

    Args:
        table: ``(V,)`` importance per vocabulary id, or None for the shipped table.
        config: its :class:`pyramid.token_dropping.TokenDroppingConfig`.
    """

    name = "token-dropping"
    label = "Token Dropping (MLM-loss importance, rejoin)"
    fixed_length = False
    rejoin_at_last_layer = True

    def __init__(self, table=None, config=None):
        if table is None:
            from .token_dropping import load_importance

            table, config = load_importance()
        self.table = table
        self.config = config

    @classmethod
    def unavailable(cls, model_name: str | None = None) -> str | None:
        from .token_dropping import load_importance

        return _artifact_unavailable(load_importance, model_name, "the importance table was built for")

    def selects_after(self, layer: int, num_layers: int) -> bool:
        from .token_dropping import drop_layer

        return num_layers >= 3 and layer == drop_layer(num_layers)

    def select(self, ctx: SelectionContext) -> Selection:
        if int(ctx.input_ids.max()) >= self.table.shape[0]:
            raise ValueError("the importance table is for another vocabulary than this tokenizer's")
        scores = self.table[ctx.input_ids].float()  # (B, N)
        rho = 0.5 if ctx.retention is None else float(ctx.retention)
        k = torch.ceil(rho * ctx.valid.sum(1).float()).long().clamp_min(1)  # (B,)
        return Selection(keep=keep_top_k(scores, ctx.valid, k), scores=scores)

    def selection_flops(self, n_alive: int, n_kept: int, hidden_size: int) -> float:
        return float(n_alive)


SELECTORS: dict[str, type[Selector]] = {
    cls.name: cls for cls in (CoresetSelector, AttentionSelector, RandomSelector, FirstKSelector, AdaplerSelector,
                              TrbertSelector, TokenDroppingSelector)
}
"""Registry of selectors by name."""


def get_selector(name: str) -> Selector:
    """Build the selector registered under ``name``.

    Raises:
        KeyError: unknown name (the message lists the known ones).
    """
    if name not in SELECTORS:
        raise KeyError(f"unknown selector '{name}'; choose one of: {', '.join(SELECTORS)}")
    return SELECTORS[name]()


def full_length_selector() -> Selector:
    """A fixed-length selector for full-length runs: with ``Schedule(retention=1.0)`` it drops nothing.

    (A per-example-length selector such as AdapLeR ignores the schedule, so it cannot stand in.)
    """
    return FirstKSelector()


def unavailable_reason(name: str, model_name: str | None = None) -> str | None:
    """Why the registered selector ``name`` cannot run on the model ``model_name`` (None when it can).

    Only learned selectors can be unavailable: AdapLeR and TR-BERT need their shipped weights,
    which belong to one base model.
    """
    return SELECTORS[name].unavailable(model_name)


def usable_selectors(model_name: str | None = None) -> list[str]:
    """Registry names of the selectors that can run on ``model_name``, in registry order."""
    return [name for name in SELECTORS if unavailable_reason(name, model_name) is None]
