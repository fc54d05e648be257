"""Token Dropping (Hou et al., ACL 2022; docs/methods.md section 4): importance per vocabulary id from
the MLM loss; drop in the middle layers, rejoin at the last.

A **pre-training** method: here it is used at inference on a fine-tuned model (a project
adaptation, docs/methods.md 4), and in the Train-Select regime a sentiment head is
fine-tuned with the routing active.

* Importance (4.2): a table ``I`` over the vocabulary, the EMA of each id's masked-LM loss (built by
  :mod:`pyramid.training.token_dropping`); [UNK], [CLS], [SEP], [MASK] always kept, [PAD] never.
* Routing (4.1), for L layers: the first ``L/2 - 1`` layers see every token; after layer
  ``L/2 - 1`` the ``ceil(rho n)`` most important tokens by ``I[input_id]`` stay (rho = the keep
  fraction, the schedule's retention); the next layer (``L/2``) is a cross layer: the important tokens
  are its queries and every token its keys and values; the middle layers after it see only the
  important tokens; before the last layer the dropped tokens rejoin with their states from the output
  of layer ``L/2 - 1``, and the last layer sees the full sequence.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import torch

from ..artifacts import ASSETS_DIR, JsonConfig, load_weights_artifact
from .base import Descriptor, Selection, SelectionContext, Selector, keep_top_k

TOKEN_DROPPING_DIR = ASSETS_DIR / "token_dropping"
DEFAULT_TOKEN_DROPPING = "minilm-mlm-importance"
BETA = 0.995
INIT_VALUE = 10.0
ALWAYS_KEEP = 1e4
ALWAYS_DROP = -1e4


class TokenDroppingLoadError(ValueError):
    """A Token Dropping artifact is missing, incomplete or corrupt."""


def drop_layer(num_layers: int) -> int:
    """The layer after whose output tokens are dropped: ``L/2 - 1`` (at least 1); docs/methods.md 4.1."""
    return max(1, num_layers // 2 - 1)


@dataclass
class TokenDroppingConfig(JsonConfig):
    """The importance table's provenance (``token_dropping_config.json``)."""

    name: str
    base_model: str
    vocab_size: int
    training: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)


@lru_cache(maxsize=8)
def load_importance(name: str | Path = DEFAULT_TOKEN_DROPPING) -> tuple[torch.Tensor, TokenDroppingConfig]:
    """Load an importance table ``(V,)`` and its config (cached).

    Args:
        name: a folder, or the name of a folder shipped in ``assets/token_dropping``.

    Raises:
        TokenDroppingLoadError: missing, incomplete or corrupt artifact.
    """
    def build(config: TokenDroppingConfig, state: dict) -> torch.Tensor:
        table = state["importance"].float()
        if table.shape != (config.vocab_size,):
            raise TokenDroppingLoadError(f"'{name}': the table has shape {tuple(table.shape)}, "
                                         f"expected ({config.vocab_size},)")
        return table

    return load_weights_artifact(name, shipped_dir=TOKEN_DROPPING_DIR, what="Token Dropping table", command="python -m pyramid train-token-dropping",
                                 error=TokenDroppingLoadError, config_cls=TokenDroppingConfig, config_file="token_dropping_config.json",
                                 weights_file="importance.safetensors", build=build)


class TokenDroppingSelector(Selector):
    """Token Dropping's routing (docs/methods.md 4.1, 4.2): after layer ``L/2 - 1`` keep the
    ``ceil(rho n)`` tokens with the highest importance ``I[input_id]`` ([CLS], [SEP], [UNK], [MASK]
    always); layer ``L/2`` lets them (queries) attend to every token (keys and values), the next
    middle layers see them alone, and the others rejoin with their states from layer ``L/2 - 1``
    before the last layer, which sees every token.

    ``rho`` is the schedule's retention (0.5, the authors' 256 of 512, for explicit schedules).
    Selection FLOPs: one table look-up per token (counted as n).

    Args:
        table: ``(V,)`` importance per vocabulary id, or None for the shipped table.
        config: its :class:`TokenDroppingConfig`.
        regime: ``inference`` or ``train-select`` (the same table; the head differs).

    Raises:
        TokenDroppingLoadError: (when ``table`` is None) the shipped table is missing or corrupt.
    """

    name = "token-dropping"
    fixed_length = False
    routing = "rejoin"
    uses_start_layer = False

    def __init__(self, table=None, config=None, regime: str = "inference"):
        super().__init__(regime)
        if table is None:
            table, config = load_importance()
        self.table = table
        self.config = config

    def selects_after(self, layer: int, num_layers: int) -> bool:
        return num_layers >= 3 and layer == drop_layer(num_layers)

    def select(self, ctx: SelectionContext) -> Selection:
        if int(ctx.input_ids.max()) >= self.table.shape[0]:
            raise ValueError("the importance table is for another vocabulary than this tokenizer's")
        scores = self.table.to(ctx.input_ids.device)[ctx.input_ids].float()  # (B, N)
        rho = 0.5 if ctx.retention is None else float(ctx.retention)
        k = torch.ceil(rho * ctx.valid.sum(1).float()).long().clamp_min(1)  # (B,)
        return Selection(keep=keep_top_k(scores, ctx.valid, k), scores=scores)

    def selection_flops(self, n_alive: int, n_kept: int, hidden_size: int) -> float:
        return float(n_alive)

DESCRIPTOR = Descriptor(
    label="Token Dropping (MLM-loss importance, rejoin)",
    short="Token Dropping",
    description=("Token Dropping: through the middle layers keep the share rho of tokens whose words are hardest "
                 "to predict (highest masked-LM loss); the others skip them and rejoin before the last layer."),
    artifacts={"inference": DEFAULT_TOKEN_DROPPING, "train-select": DEFAULT_TOKEN_DROPPING},
    notice=("Token Dropping is a pre-training method (Hou et al., 2022), used here on a fine-tuned model: after layer "
            "{layer} it keeps the share rho of tokens whose words are hardest to predict (highest masked-LM loss), "
            "skips the others through the middle layers, and brings them back before the last layer (green in the "
            "pyramid). The start layer does not apply."),
)
"""How people see this selector (menus, legends, help) and what it needs shipped."""
