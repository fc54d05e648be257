"""The selector interface: one class per method, one verb (:meth:`Selector.select`).

A selector is called after an encoder layer's output (docs/methods.md 6, checklist 1: one insertion
point for every selector) and answers which of the alive tokens go on to the next layer. It is
built once, in the captum mould.

The interface covers every method of docs/methods.md section 6:

* fixed-length selectors obey the schedule's lengths (``fixed_length = True``; core-set,
  attention, random, first-k): the encoder passes the target count ``k`` per example;
* per-example-length selectors decide the count themselves (``fixed_length = False``; AdapLeR's
  threshold eta/n, TR-BERT's pi >= 0.5, LTP's learned thresholds); they say where they act through
  :meth:`Selector.selects_after`, layer 0 meaning before the first layer (AdapLeR's CP_0);
* what a selector reads from the layer besides its output states is :attr:`Selector.reads`:
  ``"attention"`` (PoWER-BERT significance, or the probabilities ``(B, heads, N, N)`` when the caller
  asks for them), ``"attention_with_self"`` (LTP's significance with the self term) or ``"keys"`` (the
  attention's keys averaged over heads: ToMe's similarity);
* what happens to the tokens it does not keep is its :attr:`Selector.routing`, a name in
  :mod:`pyramid.core.routing`: ``"drop"`` (the default), ``"rejoin"`` (Token Dropping parks them and they
  rejoin before the last layer, docs/methods.md 4.1), ``"merge"`` (averaged into kept tokens, ToMe and
  core-set pooling, docs/methods.md 10); a merging selector may name each dropped token's target
  (:attr:`Selection.merge_into`);
* learned selectors (:class:`LearnedSelector`) carry their weights (an ``nn.Module``) and the head
  whose fine-tuned encoder they read. Where a selector runs (which encoder, which head predicts, whether it can
  run on a model at all) is deployment, not the algorithm: :mod:`pyramid.plan`.

A selector class is the algorithm only. How people see it (``label``, ``short``, ``description``) and
the artifacts it needs shipped per regime live in a :class:`Descriptor` beside the class in its file; the
registry (:mod:`pyramid.core.selectors`) joins them, with a ``color`` from its palette, into a
:class:`SelectorInfo`: the app and the command line take all of this from there, never from a list of
names.

[CLS] (slot 0) is always kept and pads are never kept: the encoder enforces both whatever a
selector answers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..artifacts import REGIMES


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
            attention without the probabilities, given instead of them to selectors that read
            ``"attention"`` (unless the caller asked for the probabilities).
        keys: ``(B, N, head_dim)`` this layer's attention keys averaged over heads, for selectors that
            read ``"keys"`` (ToMe).
        generator: a seeded ``torch.Generator`` for stochastic selectors.
        retention: the schedule's final retention ratio (None for explicit schedules), for
            selectors that read it as a keep fraction (Token Dropping).
        size: ``(B, N)`` how many original tokens each state stands for, under a merging routing
            (None otherwise).
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
    keys: torch.Tensor | None = None
    generator: torch.Generator | None = None
    retention: float | None = None
    size: torch.Tensor | None = None


@dataclass
class Selection:
    """A selector's answer.

    Attributes:
        keep: ``(B, N)`` bool, slots that go on to the next layer.
        scores: ``(B, N)`` float importance scores (higher = more worth keeping) where the method
            has them, for the app's comparisons; None otherwise.
        merge_into: ``(B, N)`` long, for a merging selector, the slot of the kept token each dropped
            token merges into (-1: none); None lets the routing choose (the nearest kept token).
    """

    keep: torch.Tensor
    scores: torch.Tensor | None = None
    merge_into: torch.Tensor | None = None


@dataclass(frozen=True)
class Descriptor:
    """How people see a selector and what it needs shipped, beside its class in its file (``DESCRIPTOR``).

    Attributes:
        label: full name for menus (``"Core-set (Pyramid-BERT, greedy k-center)"``).
        short: short name for legends and table columns (``"Core-set"``).
        description: one or two plain sentences: how it chooses tokens (the app's help text).
        artifacts: the shipped artifact (learned weights, a table) it loads in each regime, by name;
            empty for a rule-based selector.
        notice: what the app says when the selector is chosen (what differs from the schedule), a template with
            ``{short}``, ``{head}`` (the head its weights read) and ``{layer}`` (the first layer after which it
            selects); empty for none.
        score_name: the name of its score row after a layer in the saliency comparison, a template with
            ``{short}`` and ``{layer}``.
    """

    label: str
    short: str
    description: str
    artifacts: dict = field(default_factory=dict)
    notice: str = ""
    score_name: str = "{short} after L{layer}"


@dataclass(frozen=True)
class SelectorInfo:
    """A registered selector: its class, its :class:`Descriptor`, and its colour from the registry's palette.

    The algorithm's facts the app needs before building one (``fixed_length``, ``uses_retention``,
    ``uses_start_layer``, ``routing``, ``reads``) are read from the class. Calling it builds the selector.
    """

    name: str
    cls: type
    descriptor: Descriptor
    color: str

    label = property(lambda self: self.descriptor.label, doc="Full name for menus.")
    short = property(lambda self: self.descriptor.short, doc="Short name for legends.")
    description = property(lambda self: self.descriptor.description, doc="The app's help text.")
    artifacts = property(lambda self: dict(self.descriptor.artifacts), doc="Shipped artifact per regime.")
    fixed_length = property(lambda self: self.cls.fixed_length, doc="Obeys the schedule's lengths.")
    uses_retention = property(lambda self: self.cls.uses_retention, doc="The retention changes what it keeps.")
    uses_start_layer = property(lambda self: self.cls.uses_start_layer, doc="The start layer changes where.")
    routing = property(lambda self: self.cls.routing, doc="What happens to the tokens it does not keep.")
    reads = property(lambda self: self.cls.reads, doc="What it reads from the layer besides the states.")

    def __call__(self, *args, **kwargs):
        """A new selector of this kind (``regime=...``, or a learned selector's weights)."""
        return self.cls(*args, **kwargs)

    def score_row(self, layer: int) -> str:
        """The name of its score row after ``layer`` in the saliency comparison (``"AdapLeR CP0"``)."""
        return self.descriptor.score_name.format(short=self.short, layer=layer)

    def notice(self, selector: "Selector", num_layers: int) -> str | None:
        """The sentence the app shows when ``selector`` (of this kind) is chosen on an ``num_layers``-layer model,
        or None."""
        if not self.descriptor.notice:
            return None
        layer = next((j for j in range(num_layers) if selector.selects_after(j, num_layers)), 0)
        return self.descriptor.notice.format(short=self.short, head=selector.head, layer=layer)


class Selector:
    """Base class of token selectors.

    Class attributes:
        name: registry name (``"coreset"``...), the one used on the command line and in files.
        fixed_length: obeys the schedule's per-layer lengths.
        reads: what it needs from the layer besides its output: ``"states"`` (nothing more),
            ``"attention"`` (PoWER-BERT significance, or the probabilities when the caller asks),
            ``"attention_with_self"`` (significance with the self term: LTP), ``"keys"`` (ToMe).
        routing: what happens to the tokens it does not keep: a name in :mod:`pyramid.core.routing`
            (``"drop"``, ``"rejoin"``, ``"merge"``).
        uses_retention: the schedule's retention ratio changes what it keeps (False for the learned
            selectors, whose thresholds decide).
        uses_start_layer: the schedule's start layer changes where it drops.

    Args:
        regime: ``"inference"`` (the default: the selector on the full-length model) or ``"train-select"`` (on a
            model fine-tuned with it in the loop; :func:`pyramid.plan.plan_run` says which). A learned selector
            loads its weights of that regime.

    Raises:
        ValueError: an unknown regime.
    """

    name: str = "selector"
    fixed_length: bool = True
    reads: str = "states"
    routing: str = "drop"
    uses_retention: bool = True
    uses_start_layer: bool = True

    def __init__(self, regime: str = "inference"):
        if regime not in REGIMES:
            raise ValueError(f"unknown regime '{regime}'; choose one of: {', '.join(REGIMES)}")
        self.regime = regime

    @property
    def info(self) -> "SelectorInfo | None":
        """This selector's registry entry (descriptor and colour), or None for an unregistered one."""
        from . import SELECTORS

        return SELECTORS.get(self.name)

    @property
    def short(self) -> str:
        """Short display name (from the registry's descriptor; the name itself if unregistered)."""
        return self.info.short if self.info is not None else self.name

    @property
    def label(self) -> str:
        """Full display name (from the registry's descriptor; the name itself if unregistered)."""
        return self.info.label if self.info is not None else self.name

    @property
    def artifacts(self) -> dict:
        """The shipped artifact it loads in each regime (from its descriptor; empty when none)."""
        return self.info.artifacts if self.info is not None else {}

    @property
    def head(self) -> str | None:
        """The head whose fine-tuned encoder this selector's weights read (a learned selector's), or None: it runs
        on any encoder. Which encoder and head a selector runs with in a regime on a model is deployment, answered
        by :func:`pyramid.plan.plan_run`."""
        return None

    def selects_after(self, layer: int, num_layers: int) -> bool:
        """Whether to call :meth:`select` after layer ``layer`` (0 = embeddings, L-1 = last chance).

        Fixed-length selectors act wherever the schedule shortens the sequence (layers 1..L-1);
        per-example-length selectors override this.
        """
        return 1 <= layer <= num_layers - 1

    def select(self, ctx: SelectionContext) -> Selection:
        """Choose the tokens to keep. See :class:`SelectionContext` and :class:`Selection`."""
        raise NotImplementedError

    def selection_flops(self, n_alive: int, n_kept: int, hidden_size: int) -> float:
        """FLOPs of one selection on one example (``n_alive`` tokens in, ``n_kept`` out)."""
        return 0.0



LEARNED_NOTICE = ("{short} decides how many tokens each text keeps (learned thresholds, not a schedule), so the "
                  "retention ratio and start layer do not apply to it. It runs on the encoder of the head '{head}' its "
                  "weights were trained with.")
"""The notice of every learned selector (:attr:`Descriptor.notice`)."""


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


class LearnedSelector(Selector):
    """A selector with trained weights that belong to one sentiment head's fine-tuned encoder.

    Their descriptor names the shipped artifact of each regime (:attr:`Descriptor.artifacts`); subclasses
    set :meth:`load` (read one artifact: ``(weights, config)``); they hold ``self.weights`` (an ``nn.Module``) and
    ``self.config`` (with ``head``, ``base_model``, ``hidden_size``, ``num_layers``). They run on
    their head's encoder.

    Args:
        weights, config: the weights and their config; None to load the regime's shipped artifact.
        regime: which shipped artifact (ignored when ``weights`` is given).

    Raises:
        ValueError (a subclass per method): the shipped artifact is missing or corrupt.
    """

    fixed_length = False
    uses_retention = False
    uses_start_layer = False

    def __init__(self, weights=None, config=None, regime: str = "inference"):
        super().__init__(regime)
        if weights is None:
            weights, config = self.load(self.artifacts[regime])
        self.weights = weights
        self.config = config

    @classmethod
    def load(cls, name):
        """``(weights, config)`` of an artifact (a shipped name or a folder); raises a ``ValueError`` subclass."""
        raise NotImplementedError

    @property
    def head(self) -> str | None:
        """The classifier head whose encoder the weights were trained on (None if unknown)."""
        return self.config.head if self.config is not None else None

    def check_shape(self, ctx: SelectionContext, hidden_size: int, num_layers: int) -> None:
        """Raise ``ValueError`` when the context's encoder is not the shape the weights were trained for."""
        if ctx.hidden.shape[-1] != hidden_size or ctx.num_layers != num_layers:
            raise ValueError(
                f"the {self.label} weights were trained for a {num_layers}-layer, d={hidden_size} encoder; "
                f"this one has {ctx.num_layers} layers and d={ctx.hidden.shape[-1]}"
            )
