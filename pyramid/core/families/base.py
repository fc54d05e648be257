"""The layer adapter of one encoder family: how to embed, how many layers, how to run one of them.

The pyramid encoder owns the layer loop (docs/methods.md 0.3) and asks the model's family for the
pieces. A family runs one layer on the alive tokens only and, when asked, also returns the layer's
attention probabilities or PoWER-BERT significance (selectors that read attention), and can run a
cross layer (queries: the kept tokens; keys and values: every token; Token Dropping). Families with
relative positions (MPNet, DeBERTa) receive the kept tokens' *original* positions, so that distances
between surviving tokens are the ones in the text.
"""

from __future__ import annotations

import torch


class Family:
    """One encoder family's adapter (subclasses per family; one instance serves every model of it).

    Class attributes:
        model_types: the ``config.model_type`` values it serves.
        lora_targets: module names of every linear layer inside its layers (LoRA goes on all of them).
    """

    model_types: tuple[str, ...] = ()
    lora_targets: tuple[str, ...] = ()

    def embed(self, model, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None = None,
              attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """``(B, N)`` ids -> ``(B, N, d)`` the states entering layer 1."""
        raise NotImplementedError

    def num_layers(self, model) -> int:
        """L, the number of layers the loop runs."""
        return int(model.config.num_hidden_layers)

    def layer(self, model, j: int):
        """The module(s) of layer ``j`` (1-based)."""
        raise NotImplementedError

    def run_layer(self, model, j: int, hidden: torch.Tensor, mask: torch.Tensor | None, positions: torch.Tensor | None,
                  *, output_attention_probs: bool = False, significance_rows: torch.Tensor | None = None,
                  include_self: bool = False, kv_hidden: torch.Tensor | None = None,
                  kv_positions: torch.Tensor | None = None, output_keys: bool = False):
        """Run layer ``j`` on the alive tokens.

        Args:
            model: the base model. j: 1-based layer. hidden: ``(B, N, d)``.
            mask: additive ``(B, 1, 1, M)`` mask over the keys (``M = N``, or the cross layer's keys); it
                also carries proportional attention's ``log(size)`` (docs/methods.md 10.1).
            positions: ``(B, N)`` original positions of the query tokens (-1 for pads).
            output_attention_probs: also return ``(B, heads, N, N)`` probabilities.
            significance_rows: ``(B, N)`` valid query rows: return significance ``(B, N)`` instead.
            include_self: the significance keeps the self-attention term (LTP).
            kv_hidden, kv_positions: a cross layer's keys and values ``(B, M, d)`` and their positions.
            output_keys: return the attention's keys averaged over heads ``(B, N, head_dim)`` instead (ToMe).

        Returns:
            ``(output (B, N, d), extra)``: the probabilities, the significance, the keys, or None.
        """
        raise NotImplementedError


    def classification_logits(self, classifier, hidden: torch.Tensor) -> torch.Tensor:
        """The logits of a ``*ForSequenceClassification`` checkpoint of this family from the last layer's
        output, computed with the checkpoint's own head modules exactly as its transformers class does
        after its base model.

        Args:
            classifier: the transformers ``*ForSequenceClassification`` model (its base model is the
                encoder the pyramid ran).
            hidden: ``(B, N, d)`` last-layer states of the tokens still alive, the first token ([CLS]
                or ``<s>``) in slot 0; every head of these families reads that slot only.

        Returns:
            ``(B, C)`` logits.
        """
        raise NotImplementedError


def significance_of(probs: torch.Tensor, rows: torch.Tensor | None, include_self: bool) -> torch.Tensor:
    """PoWER-BERT significance from probabilities (families without the chunked kernel)."""
    from ..attention import significance

    valid = rows if rows is not None else torch.ones(probs.shape[0], probs.shape[2], dtype=torch.bool)
    return significance(probs, valid, include_self=include_self)


def softmax_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None,
                      bias: torch.Tensor | None, scale: float, dropout: float, training: bool):
    """Plain attention with an optional additive bias: ``softmax(q k^T scale + bias + mask) v``.

    Args:
        q: ``(B, h, N, hd)``. k, v: ``(B, h, M, hd)``. mask: ``(B, 1, 1, M)`` or None.
        bias: ``(B, h, N, M)`` or None (relative positions).

    Returns:
        ``(context (B, N, h*hd), probs (B, h, N, M))``.
    """
    scores = torch.matmul(q, k.transpose(-1, -2)) * scale  # (B, h, N, M)
    if bias is not None:
        scores = scores + bias
    if mask is not None:
        scores = scores + mask
    probs = torch.softmax(scores, dim=-1)
    if dropout and training:
        probs = torch.nn.functional.dropout(probs, p=dropout)
    context = torch.matmul(probs, v)  # (B, h, N, hd)
    B, h, N, hd = context.shape
    return context.transpose(1, 2).reshape(B, N, h * hd), probs


def kernel_kwargs(output_attention_probs: bool, significance_rows: torch.Tensor | None, include_self: bool,
                  output_keys: bool = False) -> dict:
    """What to ask the project's attention kernel (:mod:`pyramid.core.attention`) for: the probabilities, the
    chunked significance, the keys averaged over heads, or nothing extra."""
    if output_keys:
        return {"output_keys": True}
    if output_attention_probs:
        return {"output_attention_probs": True}
    if significance_rows is not None:
        return {"output_significance": True, "query_valid": significance_rows, "significance_include_self": include_self}
    return {}


def extra_from_probs(probs: torch.Tensor, output_attention_probs: bool, significance_rows: torch.Tensor | None,
                     include_self: bool, keys: torch.Tensor | None = None, output_keys: bool = False):
    """For families whose attention is written out: the probabilities, the significance or the keys averaged
    over heads (``keys (B, h, N, hd)`` -> ``(B, N, hd)``) asked for, or None."""
    if output_keys:
        return keys.mean(1)
    if output_attention_probs:
        return probs
    if significance_rows is not None:
        return significance_of(probs, significance_rows, include_self)
    return None
