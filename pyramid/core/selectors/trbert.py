"""TR-BERT (Ye, Lin, Huang, Sun; NAACL 2021; docs/methods.md section 3): policy networks that keep or
skip tokens at two points of the encoder.

A policy network per selection point (``Linear(d -> 32) -> GELU -> Linear(32 -> 1) -> sigmoid``)
gives each token the probability ``pi_i`` of staying; [CLS] always stays (3.1). Selection points:
after layer 1 and after layer ``L // 2`` (3.1; after layers 1 and 3 for the 6-layer default model).
At inference a token stays iff ``pi_i >= 0.5`` (3.4); skipped tokens never come back (3.5,
classification). Training (REINFORCE, then the joint phase) is in :mod:`pyramid.training.trbert`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from ..artifacts import ASSETS_DIR, JsonConfig, freeze, load_weights_artifact
from .base import Descriptor, LEARNED_NOTICE, LearnedSelector, Selection, SelectionContext

TRBERT_DIR = ASSETS_DIR / "trbert"
DEFAULT_TRBERT = "sst2-lora-trbert"
"""Shipped TR-BERT policy of the inference-only regime (RL phase against the frozen ``sst2-lora``)."""
JOINT_TRBERT = "sst2-lora-ts-trbert"
"""Shipped TR-BERT of the Train-Select regime (after the joint phase)."""


class TrbertLoadError(ValueError):
    """A TR-BERT artifact is missing, incomplete or corrupt."""


def selection_points(num_layers: int) -> tuple[int, int]:
    """Layers after whose output TR-BERT selects: ``(1, L // 2)`` (docs/methods.md 3.1)."""
    return 1, max(2, num_layers // 2)


@dataclass
class TrbertConfig(JsonConfig):
    """How to rebuild the policy, and how it was made (``trbert_config.json``).

    Attributes:
        name, base_model, head: artifact name; encoder; the head whose encoder the policy reads.
        hidden_size, num_layers: of that encoder. policy_hidden: 32. points: layers after which it selects.
        training: hyper-parameters, data, command, seconds. metrics: dev accuracy and FLOPs speedup.
    """

    name: str
    base_model: str
    head: str
    hidden_size: int
    num_layers: int
    points: list[int]
    policy_hidden: int = 32
    training: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)


class PolicyNetworks(nn.Module):
    """One keep-probability network per selection point (docs/methods.md 3.1).

    Args:
        hidden_size: d. points: the layers after which the policies act. policy_hidden: 32.

    Attributes:
        policies: ``nn.ModuleDict`` keyed by the layer number as a string.
    """

    def __init__(self, hidden_size: int, points: Sequence[int], policy_hidden: int = 32):
        super().__init__()
        self.hidden_size, self.points, self.policy_hidden = hidden_size, tuple(int(p) for p in points), policy_hidden
        self.policies = nn.ModuleDict({
            str(p): nn.Sequential(nn.Linear(hidden_size, policy_hidden), nn.GELU(), nn.Linear(policy_hidden, 1))
            for p in self.points
        })

    def keep_probability(self, layer: int, hidden: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """``pi = sigmoid(policy(h))`` per token, 1 for [CLS] (slot 0), 0 on pads.

        Args:
            layer: a selection point. hidden: ``(B, N, d)`` that layer's output. valid: ``(B, N)`` bool.

        Returns:
            ``(B, N)`` float32 in [0, 1].
        """
        pi = torch.sigmoid(self.policies[str(layer)](hidden.float()).squeeze(-1))  # (B, N, 1) -> (B, N)
        pi = pi * valid.float()
        cls = torch.zeros_like(pi)
        cls[:, 0] = 1.0
        return torch.where(cls.bool(), cls, pi)

    def flops_per_token(self) -> float:
        """FLOPs of one policy on one token (two linears with biases, GELU ~8, sigmoid ~4)."""
        d, c = self.hidden_size, self.policy_hidden
        return 2.0 * d * c + c + 8.0 * c + 2.0 * c + 1 + 4.0


@lru_cache(maxsize=8)
def load_policy(name: str | Path = DEFAULT_TRBERT) -> tuple[PolicyNetworks, TrbertConfig]:
    """Load a TR-BERT artifact (cached; eval mode, frozen).

    Args:
        name: a folder, or the name of a folder shipped in ``assets/trbert``.

    Raises:
        TrbertLoadError: missing, incomplete or corrupt artifact.
    """
    def build(config: TrbertConfig, state: dict) -> PolicyNetworks:
        policy = PolicyNetworks(config.hidden_size, config.points, config.policy_hidden)
        policy.load_state_dict(state)
        return freeze(policy)

    return load_weights_artifact(name, shipped_dir=TRBERT_DIR, what="TR-BERT policy", command="python -m pyramid train-trbert",
                                 error=TrbertLoadError, config_cls=TrbertConfig, config_file="trbert_config.json",
                                 weights_file="policy.safetensors", build=build)


class TrbertSelector(LearnedSelector):
    """TR-BERT: a policy network after layer 1 and after layer L/2; a token stays iff ``pi_i >= 0.5``
    (docs/methods.md 3.1, 3.4). [CLS] always stays; lengths differ per example; the schedule is
    ignored. Scores are the keep probabilities. Selection FLOPs: the policy on every alive token at
    its points.

    Args:
        weights: a :class:`PolicyNetworks`, or None for the regime's shipped artifact.
        config: its :class:`TrbertConfig`.
        regime: ``inference`` (``sst2-lora-trbert``) or ``train-select`` (``sst2-lora-ts-trbert``).

    Raises:
        TrbertLoadError: (when ``weights`` is None) the shipped artifact is missing or corrupt.
    """

    name = "trbert"

    @classmethod
    def load(cls, name):
        return load_policy(name)

    def selects_after(self, layer: int, num_layers: int) -> bool:
        return layer in self.weights.points

    @torch.inference_mode()
    def select(self, ctx: SelectionContext) -> Selection:
        self.check_shape(ctx, self.weights.hidden_size, self.config.num_layers if self.config else ctx.num_layers)
        pi = self.weights.keep_probability(ctx.layer, ctx.hidden, ctx.valid)  # (B, N)
        return Selection(keep=(pi >= 0.5) & ctx.valid, scores=pi)

    def selection_flops(self, n_alive: int, n_kept: int, hidden_size: int) -> float:
        return float(n_alive) * self.weights.flops_per_token()


DESCRIPTOR = Descriptor(
    label="TR-BERT (policy network)",
    short="TR-BERT",
    description=("TR-BERT: a small policy network, trained with reinforcement learning, gives each token a "
                 "probability of staying after layer 1 and after the middle layer; it stays if that is >= 0.5."),
    artifacts={"inference": DEFAULT_TRBERT, "train-select": JOINT_TRBERT},
    notice=LEARNED_NOTICE,
    score_name="TR-BERT π after L{layer}",
)
"""How people see this selector (menus, legends, help) and what it needs shipped."""
