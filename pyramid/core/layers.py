"""One encoder layer, and the embeddings -> layers loop, through the model family's adapter.

Every place that runs the encoder layer by layer goes through here: the pyramid encoder
(:mod:`pyramid.core.encoder`) calls :func:`run_layer` between its selections; attributions, the trainers'
soft-removal forwards and rollouts call :func:`run_layers` with hooks before and after each layer
(docs/methods.md 0.3: own the layer loop). The family adapters (:mod:`pyramid.core.families`) know each
family's modules.
"""

from __future__ import annotations

from typing import Callable

import torch

from .families import family_of


def additive_mask(valid: torch.Tensor, dtype: torch.dtype, bias: torch.Tensor | None = None) -> torch.Tensor | None:
    """``(B, N)`` bool -> ``(B, 1, 1, N)`` additive attention mask (0 or the dtype's minimum), or
    None when nothing is padded and there is no bias.

    Args:
        bias: ``(B, N)`` added to the logits of every query towards each key (proportional attention's
            ``log(size)``, docs/methods.md 10.1), or None.
    """
    if bias is None and bool(valid.all()):
        return None
    mask = (~valid)[:, None, None, :].to(dtype) * torch.finfo(dtype).min
    if bias is not None:
        mask = mask + torch.where(valid, bias.to(dtype), torch.zeros_like(bias, dtype=dtype))[:, None, None, :]
    return mask


def embed(model, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None = None,
          attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """``(B, N)`` ids -> ``(B, N, d)`` the states entering layer 1 (the family's embeddings)."""
    return family_of(model.config).embed(model, input_ids, token_type_ids, attention_mask)


def run_layer(model, j: int, hidden: torch.Tensor, mask: torch.Tensor | None, positions: torch.Tensor | None = None,
              *, output_attention_probs: bool = False, significance_rows: torch.Tensor | None = None,
              include_self: bool = False, kv_hidden: torch.Tensor | None = None,
              kv_positions: torch.Tensor | None = None, output_keys: bool = False):
    """Layer ``j`` (1-based) of ``model`` on the given tokens.

    Args:
        model: a supported base model. hidden: ``(B, N, d)``. mask: ``(B, 1, 1, M)`` additive or None.
        positions: ``(B, N)`` original positions of the tokens (-1 for pads); default ``0..N-1``.
        output_attention_probs: also return ``(B, heads, N, N)`` probabilities.
        significance_rows: ``(B, N)`` bool valid query rows: return PoWER-BERT significance ``(B, N)``
            instead (chunked, without the probabilities, for BERT-layout families).
        include_self: the significance keeps the self-attention term (LTP's score).
        kv_hidden, kv_positions: a cross layer (Token Dropping's middle layer, docs/methods.md 4.1): the
            ``N`` rows of ``hidden`` are the queries, these ``M`` rows the keys and values.
        output_keys: return the attention's keys averaged over heads ``(B, N, head_dim)`` (ToMe).

    Returns:
        ``(output (B, N, d), extra)``: ``extra`` is the probabilities, the significance, the keys, or None.
    """
    if positions is None:
        B, N = hidden.shape[:2]
        positions = torch.arange(N, device=hidden.device).expand(B, N)
    return family_of(model.config).run_layer(
        model, j, hidden, mask, positions, output_attention_probs=output_attention_probs,
        significance_rows=significance_rows, include_self=include_self, kv_hidden=kv_hidden,
        kv_positions=kv_positions, output_keys=output_keys)


BeforeHook = Callable[[int, torch.Tensor], "torch.Tensor | None"]
AfterHook = Callable[[int, torch.Tensor, "torch.Tensor | None"], "torch.Tensor | None"]


def run_layers(model, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, *,
               token_type_ids: torch.Tensor | None = None, before: BeforeHook | None = None,
               after: AfterHook | None = None, output_attention_probs: bool = False) -> torch.Tensor:
    """Embeddings, then every encoder layer on every token, with optional hooks.

    Args:
        model: a supported base model.
        input_ids: ``(B, N)`` long, right padded.
        attention_mask: ``(B, N)`` 1 for real tokens; None = all real.
        token_type_ids: ``(B, N)`` or None.
        before: ``before(j, hidden)`` is called before layer ``j`` (1-based) with its input
            ``(B', N, d)``; it may return an additive mask ``(B', 1, 1, N)`` for this and later
            layers (soft removal, skipped tokens), or None to keep the current one.
        after: ``after(j, hidden, probs)`` is called with layer ``j``'s output (``j = 0``: the
            embedding output, ``probs`` None) and may return replacement states (for example
            detached ones that require grad, or a batch repeated K times), or None.
        output_attention_probs: pass each layer's ``(B, heads, N, N)`` probabilities to ``after``.

    Returns:
        ``(B', N, d)`` the last layer's output.
    """
    family = family_of(model.config)
    valid = attention_mask.bool() if attention_mask is not None else torch.ones_like(input_ids, dtype=torch.bool)
    hidden = family.embed(model, input_ids, token_type_ids, attention_mask)  # (B, N, d)
    mask = additive_mask(valid, hidden.dtype)
    if after is not None:
        replaced = after(0, hidden, None)
        hidden = hidden if replaced is None else replaced
    for j in range(1, family.num_layers(model) + 1):
        if before is not None:
            new_mask = before(j, hidden)
            mask = mask if new_mask is None else new_mask
        B, N = hidden.shape[:2]
        positions = torch.arange(N, device=hidden.device).expand(B, N)  # nothing is removed physically here
        hidden, probs = family.run_layer(model, j, hidden, mask, positions, output_attention_probs=output_attention_probs)
        if after is not None:
            replaced = after(j, hidden, probs)
            hidden = hidden if replaced is None else replaced
    return hidden
