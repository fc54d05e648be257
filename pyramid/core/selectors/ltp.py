"""LTP, Learned Token Pruning (Kim et al., KDD 2022; docs/methods.md 5.2 and 8.4): per-layer learned
thresholds on the attention a token receives.

Score of token t after layer j (docs/methods.md 5.2, [code, L1]): the mean attention it receives,

    s_j(t) = (1 / (H * N_ref)) * sum_h sum_{i valid} A_h[i, t]        (self-attention included)

A token stays iff ``s_j(t) >= theta_j``; pruned tokens never come back, so lengths differ per example.
Since every attention row sums to 1, the scores of the alive tokens average to ``1 / N_ref`` whatever
their number: with LTP's fixed padding ``N_ref`` is the padded length (64 in the SST-2 recipe of
docs/methods.md 8.4); the pyramid encoder removes tokens physically and pads per batch, so ``N_ref`` is
kept as a fixed reference length in the config, and the thresholds mean the same at every text length
(project choice, stated in the model card).

Thresholds (docs/methods.md 5.2, [code]): ``theta_j = max(1e-5, theta_final * (j - 1) / L + offset_j)``
with ``j`` 1-based (the authors' 0-based ``i = j - 1``), ``offset_j`` learned (initialised to 0). The
first layer's base threshold is 0 and the authors' pruner never trains it, so LTP acts after layers
2..L-1 here (after layer L nothing is dropped: the classifier reads [CLS]). [CLS] is always kept by the
encoder (LTP does not force it; it survives in practice). Training (soft masks with temperature, then
hard masks) is in :mod:`pyramid.training.ltp`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import torch
from torch import nn

from ..artifacts import ASSETS_DIR, JsonConfig, freeze, load_weights_artifact
from .base import Descriptor, LEARNED_NOTICE, LearnedSelector, Selection, SelectionContext

LTP_DIR = ASSETS_DIR / "ltp"
INFERENCE_LTP = "sst2-lora-ltp"
"""The Train-Select thresholds applied to the full-length ``sst2-lora`` model (inference-only regime)."""
JOINT_LTP = "sst2-lora-ts-ltp"
"""Shipped LTP of the Train-Select regime (thresholds and LoRA trained together)."""
THRESHOLD_FLOOR = 1e-5
"""The effective threshold's floor in hard mode (docs/methods.md 5.2, [code])."""


class LtpLoadError(ValueError):
    """An LTP artifact is missing, incomplete or corrupt."""


@dataclass
class LtpConfig(JsonConfig):
    """How to rebuild the thresholds, and how they were made (``ltp_config.json``).

    Attributes:
        name, base_model, head: artifact name; encoder; the head whose encoder the thresholds belong to.
        hidden_size, num_layers: of that encoder. theta_final: the last layer's base threshold.
        reference_length: ``N_ref`` of the score (tokens). temperature: T of the soft masks in training.
        training: hyper-parameters, data, command, seconds. metrics: dev accuracy and FLOPs speedup.
    """

    name: str
    base_model: str
    head: str
    hidden_size: int
    num_layers: int
    theta_final: float = 0.02
    reference_length: int = 64
    temperature: float = 1e-3
    training: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)


class LtpThresholds(nn.Module):
    """LTP's per-layer thresholds (docs/methods.md 5.2): ``theta_j = theta_final (j - 1) / L + offset_j``.

    Args:
        num_layers: L. theta_final: base threshold of layer L. reference_length: ``N_ref``.

    Attributes:
        offset: ``(L,)`` learned offsets, initialised to 0.
        base: ``(L,)`` buffer ``theta_final (j - 1) / L`` for j = 1..L.
    """

    def __init__(self, num_layers: int, theta_final: float = 0.02, reference_length: int = 64):
        super().__init__()
        self.num_layers, self.theta_final, self.reference_length = num_layers, float(theta_final), int(reference_length)
        self.register_buffer("base", torch.arange(num_layers, dtype=torch.float32) * (self.theta_final / num_layers))
        self.offset = nn.Parameter(torch.zeros(num_layers))

    def threshold(self, layer: int, floor: bool = True) -> torch.Tensor:
        """``theta_layer`` (0-dim), layer 1-based; floored at :data:`THRESHOLD_FLOOR` unless ``floor`` is False."""
        t = self.base[layer - 1] + self.offset[layer - 1]
        return t.clamp_min(THRESHOLD_FLOOR) if floor else t

    def scores(self, received: torch.Tensor) -> torch.Tensor:
        """``(B, N)`` head-averaged attention received (self included) -> LTP scores ``/ N_ref``."""
        return received / float(self.reference_length)

    def flops_per_token(self, n_alive: int) -> float:
        """FLOPs of scoring one token: summing its received attention over ``n_alive`` rows, one compare."""
        return float(n_alive) + 2.0


class LtpSelector(LearnedSelector):
    """LTP: keep a token after layer j iff its mean received attention ``s_j(t) >= theta_j``
    (docs/methods.md 5.2). Acts after layers 2..L-1; lengths differ per example. Scores are ``s_j``.
    Selection FLOPs: summing the received attention (``n^2``) at every layer where it acts.

    Args:
        weights: :class:`LtpThresholds`, or None for the regime's shipped artifact.
        config: its :class:`LtpConfig`.
        regime: ``train-select`` (``sst2-lora-ts-ltp``: thresholds and LoRA trained together) or
            ``inference`` (``sst2-lora-ltp``: the same thresholds on the full-length ``sst2-lora``).

    Raises:
        LtpLoadError: (when ``weights`` is None) the shipped artifact is missing or corrupt.
    """

    name = "ltp"
    reads = "attention_with_self"

    @classmethod
    def load(cls, name):
        return load_thresholds(name)

    def selects_after(self, layer: int, num_layers: int) -> bool:
        return 2 <= layer <= num_layers - 1

    @torch.inference_mode()
    def select(self, ctx: SelectionContext) -> Selection:
        from ..attention import significance

        self.check_shape(ctx, self.config.hidden_size if self.config else ctx.hidden.shape[-1], self.weights.num_layers)
        if ctx.significance is not None:
            received = ctx.significance.float()
        elif ctx.attention_probs is not None:
            received = significance(ctx.attention_probs, ctx.valid, include_self=True)
        else:
            raise ValueError("LTP needs the layer's attention probabilities or significance")
        s = self.weights.scores(received)  # (B, N)
        return Selection(keep=(s >= self.weights.threshold(ctx.layer)) & ctx.valid, scores=s)

    def selection_flops(self, n_alive: int, n_kept: int, hidden_size: int) -> float:
        return float(n_alive) * self.weights.flops_per_token(n_alive)



@lru_cache(maxsize=8)
def load_thresholds(name: str | Path = JOINT_LTP) -> tuple[LtpThresholds, LtpConfig]:
    """Load an LTP artifact (cached; eval mode, frozen).

    Args:
        name: a folder, or the name of a folder shipped in ``assets/ltp``.

    Raises:
        LtpLoadError: missing, incomplete or corrupt artifact.
    """
    def build(config: LtpConfig, state: dict) -> LtpThresholds:
        weights = LtpThresholds(config.num_layers, config.theta_final, config.reference_length)
        weights.load_state_dict(state)
        return freeze(weights)

    return load_weights_artifact(name, shipped_dir=LTP_DIR, what="LTP thresholds", command="python -m pyramid train-ltp",
                                 error=LtpLoadError, config_cls=LtpConfig, config_file="ltp_config.json",
                                 weights_file="thresholds.safetensors", build=build)

DESCRIPTOR = Descriptor(
    label="LTP (learned attention thresholds)",
    short="LTP",
    description=("Learned Token Pruning: after each layer a token stays if the attention it receives is above a "
                 "learned threshold for that layer; each text gets its own lengths."),
    artifacts={"inference": INFERENCE_LTP, "train-select": JOINT_LTP},
    notice=LEARNED_NOTICE,
    score_name="LTP score after L{layer}",
)
"""How people see this selector (menus, legends, help) and what it needs shipped."""
