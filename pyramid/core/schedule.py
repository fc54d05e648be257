"""Sequence-length schedules and the analytic FLOPs model.

A schedule says how many tokens survive after each encoder layer. Layer ``j`` (1-based) receives
``alive_{j}`` tokens, computes its output, and the selector keeps ``lengths[j-1]`` of them; the next
layer's input is what was kept. Nothing is dropped after the last layer, so
``lengths[L-1] == lengths[L-2]``.

Geometric schedule (Pyramid-BERT, docs/methods.md 1.3: "exponentially decaying retention"; the paper's
exact parametrisation is [UNCONFIRMED], this is the project default):

    l_j = n                                                      for j < s
    l_j = max(l_min, ceil(n * rho ** ((j - s + 1) / (L - s))))   for s <= j <= L - 1

with ``n`` the example's own number of real tokens ([CLS] and [SEP] included), ``rho`` the final
retention ratio and ``s`` the start layer (the first layer after whose output selection happens).
The per-layer retention is ``r = rho ** (1 / (L - s))`` and the last layer receives ``ceil(rho n)``
tokens, so rho is literally the final retention. This is the convention that reproduces the FLOPs
table of docs/methods.md 1.3 (its "selection from after layer 1" row); the formula printed just above
that table divides the exponent by ``L - s + 1`` and so never reaches rho -- we follow the table.
Lengths depend on each example's own ``n`` (docs/methods.md 1.3 "per-example n", the more faithful
choice); shorter examples are padded in a batch and the pads are masked.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence


class ScheduleError(ValueError):
    """Raised for an invalid schedule (retention outside (0, 1], bad start layer, increasing lengths)."""


@dataclass(frozen=True)
class Schedule:
    """A token-retention schedule for an encoder of ``L`` layers.

    Exactly one of two forms:

    * geometric: ``retention`` (final retention ratio rho in (0, 1]) and ``start_layer`` s
      (1 <= s <= L - 1 selects; s = L means nothing is ever dropped);
    * explicit: ``explicit_lengths``, the number of tokens kept after layers 1..L-1 (or 1..L, the
      last equal to the one before), non-increasing, each >= 1. An example shorter than a length
      keeps all its tokens.

    Attributes:
        retention: final retention ratio rho (geometric form); 1.0 keeps everything.
        start_layer: first layer (1-based) after whose output selection happens.
        min_length: l_min >= 1, the floor on every length ([CLS] always survives).
        explicit_lengths: the explicit form, or None.
    """

    retention: float = 0.5
    start_layer: int = 1
    min_length: int = 1
    explicit_lengths: tuple[int, ...] | None = field(default=None)

    def __post_init__(self) -> None:
        if self.explicit_lengths is None:
            if not (0.0 < float(self.retention) <= 1.0) or math.isnan(float(self.retention)):
                raise ScheduleError(f"retention must be in (0, 1], got {self.retention}")
            if int(self.start_layer) < 1:
                raise ScheduleError(f"start_layer must be >= 1, got {self.start_layer}")
        else:
            lengths = tuple(int(x) for x in self.explicit_lengths)
            if not lengths:
                raise ScheduleError("explicit lengths are empty")
            if any(x < 1 for x in lengths):
                raise ScheduleError(f"every length must be >= 1 (keep at least [CLS]): {lengths}")
            if any(b > a for a, b in zip(lengths, lengths[1:])):
                raise ScheduleError(f"lengths must be non-increasing: {lengths}")
            object.__setattr__(self, "explicit_lengths", lengths)
        if int(self.min_length) < 1:
            raise ScheduleError(f"min_length must be >= 1, got {self.min_length}")

    @classmethod
    def explicit(cls, lengths: Sequence[int]) -> "Schedule":
        """A schedule with explicit per-layer kept lengths (see class docstring)."""
        return cls(explicit_lengths=tuple(int(x) for x in lengths))

    @property
    def is_geometric(self) -> bool:
        """True for the geometric form."""
        return self.explicit_lengths is None

    def validate(self, num_layers: int) -> None:
        """Check the schedule fits an encoder of ``num_layers`` layers.

        Raises:
            ScheduleError: start layer past the last layer, or explicit lengths of the wrong count.
        """
        L = int(num_layers)
        if self.is_geometric:
            if self.start_layer > L:
                raise ScheduleError(f"start_layer {self.start_layer} is past the last layer ({L})")
            return
        lengths = self.explicit_lengths
        if len(lengths) == L:
            if lengths[-1] != lengths[-2] if L >= 2 else False:
                raise ScheduleError("nothing is dropped after the last layer: lengths[L-1] must equal lengths[L-2]")
        elif len(lengths) != L - 1:
            raise ScheduleError(f"explicit lengths need {L - 1} entries (after layers 1..{L - 1}), got {len(lengths)}")

    def lengths(self, n: int, num_layers: int) -> list[int]:
        """Kept lengths after each layer for an example of ``n`` real tokens.

        Args:
            n: number of real tokens ([CLS] and [SEP] included), >= 1.
            num_layers: L.

        Returns:
            ``L`` ints, ``lengths[j-1]`` = tokens kept after layer j; non-increasing, ``<= n``,
            the last equal to the one before.

        Raises:
            ScheduleError: see :meth:`validate`; ``n < 1``.
        """
        L = int(num_layers)
        n = int(n)
        if n < 1:
            raise ScheduleError(f"an example needs at least one token, got n={n}")
        self.validate(L)
        if self.is_geometric:
            s, rho = int(self.start_layer), float(self.retention)
            out = []
            for j in range(1, L):
                if j < s:
                    out.append(n)
                else:
                    target = math.ceil(n * rho ** ((j - s + 1) / (L - s)) - 1e-9)
                    out.append(min(n, max(int(self.min_length), target)))
        else:
            out = [min(n, x) for x in self.explicit_lengths[: L - 1]]
        out = out[: L - 1]
        # Non-increasing by construction; keep it so under floors and clipping.
        for i in range(1, len(out)):
            out[i] = min(out[i], out[i - 1])
        last = out[-1] if out else n
        return out + [last]

    def alive_lengths(self, n: int, num_layers: int) -> list[int]:
        """Tokens entering each layer: ``[n, lengths[0], ..., lengths[L-2]]`` (L ints)."""
        kept = self.lengths(n, num_layers)
        return [int(n)] + kept[:-1]


# --------------------------------------------------------------------------------------------
# FLOPs
# --------------------------------------------------------------------------------------------


def layer_flops(m: float, hidden: int, intermediate: int, heads: int) -> float:
    """FLOPs of one BERT layer on ``m`` tokens (multiply and add counted separately).

    Terms, for hidden size d, FFN size f, h heads:

    * Q, K, V and output projections: ``4 * 2 m d^2`` (+ ``4 m d`` biases);
    * scores ``Q K^T`` and ``P V``: ``2 * 2 m^2 d``; scaling, mask, softmax: ``~5 h m^2``;
    * FFN: ``2 * 2 m d f`` (+ ``m (d + f)`` biases), GELU ``~8 m f``;
    * two residual adds and LayerNorms: ``~2 * 6 m d``.

    For BERT-base (d=768, f=3072, h=12) this is ``3132 m^2 + 14.19e6 m``, within 1% of AdapLeR's
    published per-layer model ``3156 m^2 + 14,233,554 m`` (docs/methods.md 0.3, [code, A4]).

    Returns:
        FLOPs (float).
    """
    d, f, h = float(hidden), float(intermediate), float(heads)
    linear = m * (8 * d * d + 4 * d * f) + m * (4 * d + d + f)
    attention = 4 * m * m * d + 5 * h * m * m
    pointwise = 8 * m * f + 12 * m * d
    return linear + attention + pointwise


def cross_layer_flops(m_q: float, m_kv: float, hidden: int, intermediate: int, heads: int) -> float:
    """FLOPs of one layer whose ``m_q`` queries attend to ``m_kv`` keys and values (Token Dropping's
    cross layer, docs/methods.md 4.1): Q and output projections and the FFN on ``m_q`` tokens, K and V
    projections on ``m_kv``, scores and ``P V`` on ``m_q x m_kv`` (terms as in :func:`layer_flops`)."""
    d, f, h = float(hidden), float(intermediate), float(heads)
    linear = m_q * (4 * d * d + 4 * d * f) + m_kv * (4 * d * d) + m_q * (2 * d + d + f) + m_kv * (2 * d)
    attention = 4 * m_q * m_kv * d + 5 * h * m_q * m_kv
    pointwise = 8 * m_q * f + 12 * m_q * d
    return linear + attention + pointwise


def config_dims(config) -> tuple[int, int, int]:
    """``(hidden d, FFN width f, heads h)`` of a Hugging Face encoder config, whatever the family calls
    them (DistilBERT: ``dim``, ``hidden_dim``, ``n_heads``)."""
    d = int(config.hidden_size)
    f = getattr(config, "intermediate_size", None) or getattr(config, "hidden_dim", None) or 4 * d
    return d, int(f), int(config.num_attention_heads)


def encoder_flops(alive: Sequence[float], config) -> float:
    """FLOPs of the encoder layers when layer j receives ``alive[j-1]`` tokens.

    Args:
        alive: L numbers, tokens entering each layer.
        config: a Hugging Face BERT config (``hidden_size``, ``intermediate_size``,
            ``num_attention_heads``).
    """
    d, f, h = config_dims(config)
    return float(sum(layer_flops(m, d, f, h) for m in alive))


@dataclass(frozen=True)
class FlopsEstimate:
    """Analytic FLOPs of one pyramid run on one example (docs/methods.md 0.3 and 1.3).

    Attributes:
        full: FLOPs of the full-length encoder on the example (every layer sees ``n`` tokens).
        encoder: FLOPs of the pyramid's encoder layers (layer j sees ``alive[j-1]`` tokens).
        selection: FLOPs the selector itself spent (Gram matrix of k-center, predictors' MLPs...).
    """

    full: float
    encoder: float
    selection: float = 0.0

    @property
    def speedup(self) -> float:
        """``full / (encoder + selection)``: the honest FLOPs speedup (selector cost included)."""
        return self.full / (self.encoder + self.selection)

    @property
    def encoder_speedup(self) -> float:
        """``full / encoder``: the figure papers usually report (selector cost left out)."""
        return self.full / self.encoder


def estimate_flops(n: int, alive: Sequence[float], config, selection_flops: float = 0.0) -> FlopsEstimate:
    """FLOPs of a pyramid over the full encoder for one example of ``n`` tokens.

    Args:
        n: real tokens of the example ([CLS] and [SEP] included).
        alive: L numbers, tokens entering each layer (the full encoder gets ``n`` everywhere).
        config: a Hugging Face BERT config.
        selection_flops: the selector's own cost, counted so that the speedup is honest.
    """
    L = len(alive)
    return FlopsEstimate(full=encoder_flops([n] * L, config), encoder=encoder_flops(alive, config),
                         selection=float(selection_flops))


def flops_speedup(n: int, alive: Sequence[float], config, selection_flops: float = 0.0) -> float:
    """Analytic FLOPs speedup of a pyramid over the full encoder for one example.

    ``speedup = sum_j c(n) / (sum_j c(alive_j) + selection_flops)`` (docs/methods.md 1.3), where
    ``selection_flops`` is the selectors' own cost (for example the Gram matrix of greedy k-center,
    or a contribution predictor's MLP), counted so that the figure is honest. The one speedup
    formula of the project: evaluation, traces and benchmarks all come here.
    """
    return estimate_flops(n, alive, config, selection_flops).speedup
