"""The attention kernel of the pyramid encoder, and PoWER-BERT significance.

The model is loaded with this project's attention function ``"pyramid"`` (registered through
``transformers.AttentionInterface``). It runs PyTorch SDPA, like transformers' default, and switches
to the eager softmax path only for the calls that pass ``output_attention_probs=True``, so that the
attention-based selectors get the probabilities while every other layer keeps the faster kernel.
A call that asks only for ``output_significance`` gets the significance vector computed in query
chunks, without the ``(B, heads, N, N)`` probabilities (:func:`_attention_with_significance`). All
paths compute the same function (tested against the plain ``BertModel``).

Significance (PoWER-BERT, Goyal et al., ICML 2020; docs/methods.md section 5.1, [code]): the
attention each token receives, ``sig(t) = (1/H) sum_h sum_{i valid, i != t} A_h[i, t]``.
"""

from __future__ import annotations

import threading

import torch

ATTN_IMPLEMENTATION = "pyramid"
"""Name under which :func:`register_attention` registers the kernel with transformers."""

_register_lock = threading.Lock()
_registered = False


def significance(probs: torch.Tensor, valid: torch.Tensor, include_self: bool = False) -> torch.Tensor:
    """PoWER-BERT significance: attention each token receives (docs/methods.md 5.1, [code, P1]).

    ``sig(t) = sum_{i != t} (1/H) sum_h A_h[i, t]`` over valid query rows i; with ``include_self``
    the diagonal counts too (LTP's score before its division by the length, docs/methods.md 5.2).

    Args:
        probs: ``(B, H, N, N)`` attention probabilities, rows are queries.
        valid: ``(B, N)`` bool.
        include_self: keep the self-attention term ``A_h[t, t]``.

    Returns:
        ``(B, N)`` float32 (keeps the graph when ``probs`` requires grad: LTP's soft masks train
        through it).
    """
    p = probs.float()
    B, H, N, _ = p.shape
    w = valid.to(p.dtype)  # (B, N) query-row weights: pad rows count 0
    # One pass over the probabilities: (B, 1, H*N) @ (B, H*N, N) sums the valid query rows of every head.
    received = torch.bmm(w.repeat(1, H).unsqueeze(1), p.reshape(B, H * N, N)).squeeze(1)  # (B, N)
    if include_self:
        return received / H  # (B, N), averaged over heads
    self_attention = torch.diagonal(p, dim1=2, dim2=3).sum(1) * w  # (B, N): A_h[t, t] summed over heads
    return (received - self_attention) / H  # (B, N), diagonal excluded, averaged over heads


def _eager_attention_with_probs(module, query, key, value, attention_mask, scaling=None, dropout=0.0):
    """Scaled dot-product attention that also returns its probabilities.

    Args:
        query, key, value: ``(batch, heads, seq, head_dim)``.
        attention_mask: additive mask broadcastable to ``(batch, heads, seq, seq)``, or None.

    Returns:
        ``(output, probs)``: output ``(batch, seq, heads, head_dim)`` (the layout HF attention
        functions return), probs ``(batch, heads, seq, seq)`` (rows are queries).
    """
    if scaling is None:
        scaling = query.size(-1) ** -0.5
    # Scale the (N, head_dim) queries rather than the (N, N) scores, and add the mask in place:
    # two fewer passes over the largest tensor.
    scores = torch.matmul(query * scaling, key.transpose(2, 3))  # (B, h, N, N)
    if attention_mask is not None:
        scores.add_(attention_mask)
    probs = torch.softmax(scores, dim=-1)
    del scores
    if dropout and module.training:
        probs = torch.nn.functional.dropout(probs, p=dropout)
    out = torch.matmul(probs, value).transpose(1, 2).contiguous()  # (B, N, h, hd)
    return out, probs


SIGNIFICANCE_CHUNK_ELEMENTS = 1 << 18
"""Score elements per chunk of :func:`_attention_with_significance` (1 MB of float32: one chunk's
scores and probabilities, 2 MB together, stay in a core's cache): one example at a time,
``c = SIGNIFICANCE_CHUNK_ELEMENTS // (h N)`` query rows (at least 32; 42 rows for MiniLM at 512
tokens). Measured on 2 cores, one MiniLM layer at 512 tokens, batch 1: +12% over the SDPA layer
with 1 << 18, +22% with 1 << 19, +32% with 1 << 20 (interleaved medians of 35 runs); equal at
batch 8. Whole MiniLM encoder, 512 tokens, rho = 0.3, batch 1: measured / FLOPs speedup 0.89 with
1 << 18, 0.74 with 1 << 19 (interleaved medians of 14 runs). ``python -m pyramid bench`` measures it."""


def _attention_with_significance(module, query, key, value, attention_mask, query_valid, scaling=None,
                                 include_self: bool = False):
    """Attention output and PoWER-BERT significance, computed in chunks of query rows.

    Same output as :func:`_eager_attention_with_probs`, but the ``(B, h, N, N)`` probabilities are
    never materialised: for each example and each chunk of ``c`` query rows the scores
    ``(h, c, N)`` are computed, soft-maxed, multiplied with V, and summed over heads and valid
    query rows into the attention each token receives. Significance (docs/methods.md 5.1, [code, P1]):
    ``sig(t) = (1/h) sum_h sum_{i valid, i != t} A_h[i, t]``.

    Args:
        query, key, value: ``(B, h, N, hd)``.
        attention_mask: additive ``(B, 1, 1, N)`` (or broadcastable) mask, or None.
        query_valid: ``(B, N)`` bool, the query rows that count (pads do not).
        include_self: keep the self-attention term (see :func:`significance`).

    Returns:
        ``(output (B, N, h, hd), significance (B, N) float32)``.
    """
    B, H, N, hd = query.shape
    if scaling is None:
        scaling = hd ** -0.5
    q = query * scaling  # (B, h, N, hd)
    k_t = key.transpose(2, 3)  # (B, h, hd, N)
    c = max(32, min(N, SIGNIFICANCE_CHUNK_ELEMENTS // max(1, H * N)))
    out = torch.empty(B, H, N, value.shape[-1], dtype=query.dtype, device=query.device)
    w = query_valid.to(query.dtype)  # (B, N) query-row weights
    received = torch.zeros(B, 1, N, dtype=query.dtype, device=query.device)
    for b in range(B):
        mask_b = attention_mask[b: b + 1] if attention_mask is not None and attention_mask.shape[0] == B else attention_mask
        for s in range(0, N, c):
            e = min(N, s + c)
            scores = torch.matmul(q[b: b + 1, :, s:e], k_t[b: b + 1])  # (1, h, c, N)
            if mask_b is not None:
                scores.add_(mask_b)
            probs = torch.softmax(scores, dim=-1)
            del scores
            out[b: b + 1, :, s:e] = torch.matmul(probs, value[b: b + 1])  # (1, h, c, hd)
            rows = w[b: b + 1, s:e].repeat(1, H).unsqueeze(1)  # (1, 1, h*c): head-major like the reshape below
            received[b: b + 1] += torch.bmm(rows, probs.reshape(1, H * (e - s), N))  # (1, 1, N)
            if not include_self:
                diag = torch.diagonal(probs[..., s:e], dim1=2, dim2=3).sum(1)  # (1, c): A_h[i, i] over heads
                received[b, 0, s:e] -= diag[0] * w[b, s:e]
    return out.transpose(1, 2).contiguous(), (received[:, 0] / H).float()


def _pyramid_attention(module, query, key, value, attention_mask, output_attention_probs=False,
                       output_significance=False, query_valid=None, significance_include_self=False,
                       output_keys=False, **kwargs):
    """The ``"pyramid"`` attention implementation: SDPA; eager when probabilities are asked for;
    chunked with significance (:func:`_attention_with_significance`) when only that is asked for; SDPA
    and the keys averaged over heads ``(B, N, head_dim)`` when ``output_keys`` (ToMe's similarity metric,
    docs/methods.md 10.2: they come free with the attention)."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    if output_keys:
        out, _ = sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
        return out, key.mean(1)  # (B, h, N, hd) -> (B, N, hd)

    if output_attention_probs:
        return _eager_attention_with_probs(
            module, query, key, value, attention_mask,
            scaling=kwargs.get("scaling"), dropout=kwargs.get("dropout", 0.0),
        )
    if output_significance and not (module.training and kwargs.get("dropout", 0.0)):
        if query_valid is None:
            query_valid = torch.ones(query.shape[0], query.shape[2], dtype=torch.bool, device=query.device)
        return _attention_with_significance(module, query, key, value, attention_mask, query_valid,
                                            scaling=kwargs.get("scaling"), include_self=significance_include_self)
    if output_significance:  # training with attention dropout: eager, significance from the probabilities
        out, probs = _eager_attention_with_probs(module, query, key, value, attention_mask,
                                                 scaling=kwargs.get("scaling"), dropout=kwargs.get("dropout", 0.0))
        valid = query_valid if query_valid is not None else torch.ones(probs.shape[0], probs.shape[2], dtype=torch.bool)
        return out, significance(probs, valid, include_self=significance_include_self)
    return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)


def register_attention() -> None:
    """Register the ``"pyramid"`` attention function with transformers (idempotent, thread-safe)."""
    global _registered
    with _register_lock:
        if _registered:
            return
        from transformers import AttentionInterface

        AttentionInterface.register(ATTN_IMPLEMENTATION, _pyramid_attention)
        _registered = True
