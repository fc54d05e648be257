"""One encoder layer, and the embeddings -> layers loop, as thin adapters over Hugging Face modules.

Every place that runs the encoder layer by layer goes through here: the pyramid encoder
(:mod:`pyramid.encoder`) calls :func:`run_layer` between its selections; attributions, the
trainers' soft-removal forwards and rollouts call :func:`run_layers` with hooks before and after
each layer (docs/methods.md 0.3: own the layer loop).
"""

from __future__ import annotations

from typing import Callable

import torch


def additive_mask(valid: torch.Tensor, dtype: torch.dtype) -> torch.Tensor | None:
    """``(B, N)`` bool -> ``(B, 1, 1, N)`` additive attention mask (0 or the dtype's minimum), or
    None when nothing is padded."""
    if bool(valid.all()):
        return None
    return (~valid)[:, None, None, :].to(dtype) * torch.finfo(dtype).min


def run_layer(layer, hidden: torch.Tensor, mask: torch.Tensor | None, output_attention_probs: bool = False,
              significance_rows: torch.Tensor | None = None, include_self: bool = False,
              kv_hidden: torch.Tensor | None = None):
    """One BERT layer: self-attention, Add & LayerNorm, FFN, Add & LayerNorm.

    A thin adapter over the layer's own sub-modules (``attention.self``, ``attention.output``,
    ``feed_forward_chunk``) so that attention probabilities can be returned when asked, which
    transformers 5's ``BertLayer.forward`` discards.

    Args:
        layer: a ``BertLayer`` (or a RoBERTa-family layer of the same layout).
        hidden: ``(B, N, d)``.
        mask: ``(B, 1, 1, N)`` additive mask or None.
        output_attention_probs: return ``(B, heads, N, N)`` probabilities (eager path).
        significance_rows: ``(B, N)`` bool valid query rows: return PoWER-BERT significance
            ``(B, N)`` instead, computed in query chunks without materialising the probabilities
            (:mod:`pyramid.attention`). Ignored with ``output_attention_probs``.
        include_self: the significance keeps the self-attention term (LTP's score).
        kv_hidden: ``(B, M, d)``: a cross layer (Token Dropping's middle layer, docs/methods.md 4.1):
            the ``N`` rows of ``hidden`` are the queries, these ``M`` rows the keys and values, and
            ``mask`` (``(B, 1, 1, M)``) masks them. Returns no probabilities.

    Returns:
        ``(output (B, N, d), extra)``: ``extra`` is the probabilities, the significance, or None.
    """
    if kv_hidden is not None:
        context = _cross_attention(layer.attention.self, hidden, kv_hidden, mask)  # (B, N, d)
        return layer.feed_forward_chunk(layer.attention.output(context, hidden)), None
    if output_attention_probs:
        kwargs = {"output_attention_probs": True}
    elif significance_rows is not None:
        kwargs = {"output_significance": True, "query_valid": significance_rows,
                  "significance_include_self": include_self}
    else:
        kwargs = {}
    context, extra = layer.attention.self(hidden, attention_mask=mask, **kwargs)  # (B, N, d)
    attention_output = layer.attention.output(context, hidden)  # (B, N, d)
    return layer.feed_forward_chunk(attention_output), extra


def _cross_attention(sa, hidden_q: torch.Tensor, hidden_kv: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Multi-head attention of a BERT self-attention module with queries from ``hidden_q (B, N, d)``
    and keys and values from ``hidden_kv (B, M, d)``; ``mask (B, 1, 1, M)`` additive. Returns ``(B, N, d)``."""
    B, N, _ = hidden_q.shape
    M = hidden_kv.shape[1]
    hd = sa.attention_head_size
    q = sa.query(hidden_q).view(B, N, -1, hd).transpose(1, 2)  # (B, h, N, hd)
    k = sa.key(hidden_kv).view(B, M, -1, hd).transpose(1, 2)  # (B, h, M, hd)
    v = sa.value(hidden_kv).view(B, M, -1, hd).transpose(1, 2)
    out = torch.nn.functional.scaled_dot_product_attention(
        q, k, v, attn_mask=mask, dropout_p=sa.dropout.p if sa.training else 0.0, scale=sa.scaling)  # (B, h, N, hd)
    return out.transpose(1, 2).reshape(B, N, -1)


BeforeHook = Callable[[int, torch.Tensor], "torch.Tensor | None"]
AfterHook = Callable[[int, torch.Tensor, "torch.Tensor | None"], "torch.Tensor | None"]


def run_layers(model, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, *,
               token_type_ids: torch.Tensor | None = None, before: BeforeHook | None = None,
               after: AfterHook | None = None, output_attention_probs: bool = False) -> torch.Tensor:
    """Embeddings, then every encoder layer on every token, with optional hooks.

    Args:
        model: a BERT-family base model (``.embeddings``, ``.encoder.layer``).
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
    hidden = model.embeddings(input_ids=input_ids, token_type_ids=token_type_ids)  # (B, N, d)
    valid = attention_mask.bool() if attention_mask is not None else torch.ones_like(input_ids, dtype=torch.bool)
    mask = additive_mask(valid, hidden.dtype)
    if after is not None:
        replaced = after(0, hidden, None)
        hidden = hidden if replaced is None else replaced
    for j, layer in enumerate(model.encoder.layer, start=1):
        if before is not None:
            new_mask = before(j, hidden)
            mask = mask if new_mask is None else new_mask
        hidden, probs = run_layer(layer, hidden, mask, output_attention_probs)
        if after is not None:
            replaced = after(j, hidden, probs)
            hidden = hidden if replaced is None else replaced
    return hidden
