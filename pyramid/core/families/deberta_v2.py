"""DeBERTa-v2 (and v3): disentangled attention, content-to-position and position-to-content terms from
relative positions, optional log buckets, and a convolution after the first layer.

The relative positions are ``original query position - original key position`` of the tokens still
alive (bucketed as DeBERTa does), per example, so that removing tokens does not change the distances
between the ones that remain. The attention is written out here (DeBERTa's module expects one
relative-position matrix for the whole batch), from the module's own projections and relative
embeddings, and returns its probabilities or significance when asked."""

from __future__ import annotations

import math

import torch

from .base import Family, extra_from_probs


class DebertaV2Family(Family):
    """DeBERTa-v2/v3 (``model.embeddings``, ``model.encoder.layer``, ``model.encoder.rel_embeddings``)."""

    model_types = ("deberta-v2",)
    lora_targets = ("query_proj", "key_proj", "value_proj", "attention.output.dense", "intermediate.dense",
                    "output.dense")

    def embed(self, model, input_ids, token_type_ids=None, attention_mask=None):
        return model.embeddings(input_ids=input_ids, token_type_ids=token_type_ids, mask=attention_mask)

    def layer(self, model, j):
        return model.encoder.layer[j - 1]


    def run_layer(self, model, j, hidden, mask, positions, *, output_attention_probs=False, significance_rows=None,
                  include_self=False, kv_hidden=None, kv_positions=None, output_keys=False):
        from transformers.models.deberta_v2.modeling_deberta_v2 import make_log_bucket_position

        enc = model.encoder
        layer = self.layer(model, j)
        sa = layer.attention.self
        kv = hidden if kv_hidden is None else kv_hidden
        k_pos = positions if kv_positions is None else kv_positions
        B, N, _ = hidden.shape
        M = kv.shape[1]
        h = sa.num_attention_heads
        q = sa.transpose_for_scores(sa.query_proj(hidden), h)  # (B*h, N, hd)
        k = sa.transpose_for_scores(sa.key_proj(kv), h)  # (B*h, M, hd)
        v = sa.transpose_for_scores(sa.value_proj(kv), h)
        scale_factor = 1 + ("c2p" in sa.pos_att_type) + ("p2c" in sa.pos_att_type)
        scale = math.sqrt(q.size(-1) * scale_factor)
        scores = torch.bmm(q, k.transpose(-1, -2) / scale)  # (B*h, N, M)
        if sa.relative_attention:
            rel = positions.clamp_min(0)[:, :, None] - k_pos.clamp_min(0)[:, None, :]  # (B, N, M)
            if sa.position_buckets > 0:
                rel = make_log_bucket_position(rel, sa.position_buckets, sa.max_relative_positions)
            scores = scores + _disentangled_bias(sa, q, k, rel.long(), sa.pos_dropout(enc.get_rel_embedding()), scale, h)
        scores = scores.view(B, h, N, M)
        if mask is not None:
            scores = scores + mask
        probs = torch.softmax(scores, dim=-1)  # (B, h, N, M)
        probs_d = sa.dropout(probs)
        context = torch.bmm(probs_d.view(B * h, N, M), v).view(B, h, N, -1).permute(0, 2, 1, 3).reshape(B, N, -1)
        attention_output = layer.attention.output(context, hidden)
        out = layer.output(layer.intermediate(attention_output), attention_output)
        if j == 1 and enc.conv is not None and kv_hidden is None:
            valid = (positions >= 0).long()  # (B, N)
            out = enc.conv(hidden, out, valid)
        if kv_hidden is not None:
            return out, None
        return out, extra_from_probs(probs, output_attention_probs, significance_rows, include_self,
                                     k.view(B, h, M, -1) if output_keys else None, output_keys)

    def classification_logits(self, classifier, hidden):
        # DebertaV2ForSequenceClassification: ContextPooler (first token, dropout, dense, activation),
        # dropout, classifier
        pooled = classifier.pooler(hidden)  # (B, d)
        return classifier.classifier(classifier.dropout(pooled))  # (B, C)


def _disentangled_bias(sa, q: torch.Tensor, k: torch.Tensor, rel: torch.Tensor, rel_embeddings: torch.Tensor,
                       scale: float, h: int) -> torch.Tensor:
    """DeBERTa's c2p + p2c terms with one relative-position matrix per example.

    Args:
        q: ``(B*h, N, hd)``. k: ``(B*h, M, hd)``. rel: ``(B, N, M)`` (bucketed) query - key positions.
        rel_embeddings: ``(2 span, d)`` relative embeddings (after LayerNorm and dropout).

    Returns:
        ``(B*h, N, M)``.
    """
    span = sa.pos_ebd_size
    rel_embeddings = rel_embeddings[0: span * 2, :].unsqueeze(0)  # (1, 2 span, d)
    B = rel.shape[0]
    if sa.share_att_key:
        pos_query = sa.transpose_for_scores(sa.query_proj(rel_embeddings), h).repeat(B, 1, 1)  # (B*h, 2 span, hd)
        pos_key = sa.transpose_for_scores(sa.key_proj(rel_embeddings), h).repeat(B, 1, 1)
    else:
        pos_key = (sa.transpose_for_scores(sa.pos_key_proj(rel_embeddings), h).repeat(B, 1, 1)
                   if "c2p" in sa.pos_att_type else None)
        pos_query = (sa.transpose_for_scores(sa.pos_query_proj(rel_embeddings), h).repeat(B, 1, 1)
                     if "p2c" in sa.pos_att_type else None)
    index = torch.clamp(rel + span, 0, span * 2 - 1).repeat_interleave(h, dim=0)  # (B*h, N, M)
    score = 0
    if "c2p" in sa.pos_att_type:
        c2p = torch.bmm(q, pos_key.transpose(-1, -2))  # (B*h, N, 2 span)
        score = score + torch.gather(c2p, -1, index) / scale
    if "p2c" in sa.pos_att_type:
        p2c = torch.bmm(k, pos_query.transpose(-1, -2))  # (B*h, M, 2 span)
        score = score + torch.gather(p2c, -1, index.transpose(-1, -2)).transpose(-1, -2) / scale
    return score
