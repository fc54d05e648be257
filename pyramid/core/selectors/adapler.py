"""AdapLeR (Modarressi, Mohebbi and Pilehvar, ACL 2022; docs/methods.md section 2): per-layer
contribution predictors and the threshold ``eta_l / n_l``.

One contribution predictor (CP) per layer reads the hidden states *entering* that layer (CP_0 the
embedding output, CP_{L-1} the input of the last layer) and gives a distribution over [CLS] and the
alive tokens (2.3). At inference a non-[CLS] token stays iff its score ``p_i >= eta_l / n_l`` with
``n_l`` the alive count, [CLS] included (2.4); removed tokens never come back, so lengths differ per
example. Training (soft removal, distillation from saliency, learned eta) is in
:mod:`pyramid.training.adapler`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import torch
from torch import nn

from ..artifacts import ASSETS_DIR, JsonConfig, freeze, load_weights_artifact
from .base import Descriptor, LEARNED_NOTICE, LearnedSelector, Selection, SelectionContext

ADAPLER_DIR = ASSETS_DIR / "adapler"
DEFAULT_ADAPLER = "sst2-lora-adapler"
"""Shipped AdapLeR predictors of the inference-only regime (trained against the frozen ``sst2-lora``)."""
JOINT_ADAPLER = "sst2-lora-ts-adapler"
"""Shipped AdapLeR of the Train-Select regime (predictors, eta and LoRA trained jointly)."""
ETA_RANGE = (0.01, 1.0)
"""Clip range of the learned thresholds eta after every step (docs/methods.md 2.4, [code])."""


class AdaplerLoadError(ValueError):
    """An AdapLeR artifact is missing, incomplete, corrupt, or made for another model."""


@dataclass
class AdaplerConfig(JsonConfig):
    """How to rebuild the predictors, and how they were made (``adapler_config.json``).

    Attributes:
        name: artifact name.
        base_model: the encoder name (``DEFAULT_MODEL`` or a path/hub id).
        head: the classifier head whose fine-tuned encoder the CPs read and whose saliency they
            were distilled from.
        hidden_size, num_layers: of that encoder (checked at use).
        cp_hidden: width of each CP's hidden layer (32 in the paper).
        training: hyper-parameters, data, command, seconds.
        metrics: for instance dev accuracy and FLOPs speedup.
    """

    name: str
    base_model: str
    head: str
    hidden_size: int
    num_layers: int
    cp_hidden: int = 32
    training: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)


class ContributionPredictors(nn.Module):
    """The L contribution predictors and learned thresholds of AdapLeR (docs/methods.md 2.3, 2.4).

    CP_l: ``Linear(d -> cp_hidden) -> GELU -> Linear(cp_hidden -> 1)`` per token, then a softmax over
    the sequence restricted to [CLS] and the alive tokens.

    Args:
        hidden_size: d. num_layers: L. cp_hidden: 32 in the paper.
        eta_init: initial eta for every layer (0.25, [code]).

    Attributes:
        cps: ``nn.ModuleList`` of L predictors.
        eta: ``(L,)`` parameter, clipped to :data:`ETA_RANGE` by :meth:`clip_eta`.
    """

    def __init__(self, hidden_size: int, num_layers: int, cp_hidden: int = 32, eta_init: float = 0.25):
        super().__init__()
        self.hidden_size, self.num_layers, self.cp_hidden = hidden_size, num_layers, cp_hidden
        self.cps = nn.ModuleList(
            nn.Sequential(nn.Linear(hidden_size, cp_hidden), nn.GELU(), nn.Linear(cp_hidden, 1))
            for _ in range(num_layers)
        )
        self.eta = nn.Parameter(torch.full((num_layers,), float(eta_init)))

    def distribution(self, layer: int, hidden: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """CP_layer's distribution over tokens.

        ``p = softmax(logits) * w / sum(softmax(logits) * w)``, computed as
        ``softmax(logits + log w)`` (docs/methods.md 2.3: softmax times mask, renormalised).

        Args:
            layer: 0-based CP index (0 = the embedding output, entering layer 1).
            hidden: ``(B, N, d)`` states entering layer ``layer + 1``.
            weight: ``(B, N)`` keep weights: the 0/1 alive mask at inference, the soft keep-mask in
                training. [CLS] must have weight > 0.

        Returns:
            ``(B, N)`` float32 rows summing to 1, ~0 where ``weight`` is 0.
        """
        logits = self.cps[layer](hidden.float()).squeeze(-1)  # (B, N, 1) -> (B, N)
        return torch.softmax(logits + weight.float().clamp_min(1e-30).log(), dim=-1)

    def thresholds(self, layer: int, n_alive: torch.Tensor) -> torch.Tensor:
        """``delta = eta_layer / n`` (docs/methods.md 2.4) for ``n_alive (B,)`` counts ([CLS] included) -> ``(B,)``."""
        return self.eta[layer] / n_alive.float()

    @torch.no_grad()
    def clip_eta(self) -> None:
        """Clip eta to :data:`ETA_RANGE` (after every optimiser step, [code])."""
        self.eta.clamp_(*ETA_RANGE)

    def flops_per_token(self) -> float:
        """FLOPs of one CP on one token (both linears with biases, GELU ~8, softmax ~5)."""
        d, c = self.hidden_size, self.cp_hidden
        return 2.0 * d * c + c + 8.0 * c + 2.0 * c + 1 + 5.0


@lru_cache(maxsize=8)
def load_predictors(name: str | Path = DEFAULT_ADAPLER) -> tuple[ContributionPredictors, AdaplerConfig]:
    """Load an AdapLeR artifact (cached per name; eval mode, frozen).

    Args:
        name: a folder, or the name of a folder shipped in ``assets/adapler``.

    Raises:
        AdaplerLoadError: missing, incomplete or corrupt artifact.
    """
    def build(config: AdaplerConfig, state: dict) -> ContributionPredictors:
        pred = ContributionPredictors(config.hidden_size, config.num_layers, config.cp_hidden)
        pred.load_state_dict(state)
        return freeze(pred)

    return load_weights_artifact(name, shipped_dir=ADAPLER_DIR, what="AdapLeR predictors", command="python -m pyramid train-adapler",
                                 error=AdaplerLoadError, config_cls=AdaplerConfig, config_file="adapler_config.json",
                                 weights_file="predictors.safetensors", build=build)




class AdaplerSelector(LearnedSelector):
    """AdapLeR: per-layer contribution predictors with the threshold ``eta_l / n_l`` (docs/methods.md 2.4, 2.10).

    Before layer l+1 (l = 0..L-1, 0 = the embedding output) CP_l scores the alive tokens with a
    softmax over [CLS] and them; a token stays iff ``p_i >= eta_l / n_l``, ``n_l`` the alive count
    with [CLS]. Lengths differ per example; the schedule is ignored. Scores are the CP
    distribution. Selection FLOPs: every CP runs on every alive token (counted even where nothing
    is dropped).

    Args:
        weights: a :class:`ContributionPredictors`, or None for the regime's shipped artifact.
        config: its :class:`AdaplerConfig`.
        regime: ``inference`` (``sst2-lora-adapler``) or ``train-select`` (``sst2-lora-ts-adapler``).

    Raises:
        AdaplerLoadError: (when ``weights`` is None) the shipped artifact is missing or corrupt.
    """

    name = "adapler"

    @classmethod
    def load(cls, name):
        return load_predictors(name)

    @property
    def predictors(self) -> ContributionPredictors:
        """The :class:`ContributionPredictors`."""
        return self.weights

    def selects_after(self, layer: int, num_layers: int) -> bool:
        return 0 <= layer <= num_layers - 1

    @torch.inference_mode()
    def select(self, ctx: SelectionContext) -> Selection:
        pred = self.weights
        self.check_shape(ctx, pred.hidden_size, pred.num_layers)
        p = pred.distribution(ctx.layer, ctx.hidden, ctx.valid.float())  # (B, N)
        delta = pred.thresholds(ctx.layer, ctx.valid.sum(1)).unsqueeze(1)  # (B, 1)
        return Selection(keep=(p >= delta) & ctx.valid, scores=p)

    def selection_flops(self, n_alive: int, n_kept: int, hidden_size: int) -> float:
        return float(n_alive) * self.weights.flops_per_token()


DESCRIPTOR = Descriptor(
    label="AdapLeR (contribution predictors)",
    short="AdapLeR",
    description=("AdapLeR: small learned contribution predictors score every token before each layer; a token "
                 "stays if its predicted share of the saliency is at least eta/n. Each text gets its own lengths."),
    artifacts={"inference": DEFAULT_ADAPLER, "train-select": JOINT_ADAPLER},
    notice=LEARNED_NOTICE,
    score_name="AdapLeR CP{layer}",
)
"""How people see this selector (menus, legends, help) and what it needs shipped."""
