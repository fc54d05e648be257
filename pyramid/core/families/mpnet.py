"""MPNet: a BERT-like layer with a relative position bias on the attention scores (T5-style buckets
shared by every layer). With tokens removed, the bias is computed from the kept tokens' *original*
positions (MPNet's ``relative_position_bucket`` on ``key_position - query_position``), so the
distances are those in the text. The attention is written out here (MPNet's module has no kernel
hook) and returns its probabilities or significance when asked."""

from __future__ import annotations

import math

import torch

from .base import Family, extra_from_probs, softmax_attention


class MPNetFamily(Family):
    """MPNet (``model.embeddings``, ``model.encoder.layer``, ``model.encoder.relative_attention_bias``)."""

    model_types = ("mpnet",)
    lora_targets = ("q", "k", "v", "o", "intermediate.dense", "output.dense")

    def embed(self, model, input_ids, token_type_ids=None, attention_mask=None):
        return model.embeddings(input_ids=input_ids)  # (B, N, d); positions from the ids, as MPNetModel does

    def layer(self, model, j):
        return model.encoder.layer[j - 1]


    @staticmethod
    def position_bias(model, q_pos: torch.Tensor, k_pos: torch.Tensor) -> torch.Tensor:
        """``(B, N)`` query and ``(B, M)`` key positions -> ``(B, h, N, M)`` bias (MPNetEncoder.compute_position_bias
        with given positions)."""
        enc = model.encoder
        relative = k_pos[:, None, :] - q_pos[:, :, None]  # (B, N, M): memory - context
        bucket = enc.relative_position_bucket(relative, num_buckets=32)  # what MPNetEncoder uses, whatever the config
        return enc.relative_attention_bias(bucket).permute(0, 3, 1, 2)  # (B, N, M, h) -> (B, h, N, M)

    def run_layer(self, model, j, hidden, mask, positions, *, output_attention_probs=False, significance_rows=None,
                  include_self=False, kv_hidden=None, kv_positions=None, output_keys=False):
        layer = self.layer(model, j)
        sa = layer.attention.attn
        kv = hidden if kv_hidden is None else kv_hidden
        k_pos = positions if kv_positions is None else kv_positions
        B, N, _ = hidden.shape
        M = kv.shape[1]
        hd = sa.attention_head_size
        q = sa.q(hidden).view(B, N, -1, hd).transpose(1, 2)  # (B, h, N, hd)
        k = sa.k(kv).view(B, M, -1, hd).transpose(1, 2)  # (B, h, M, hd)
        v = sa.v(kv).view(B, M, -1, hd).transpose(1, 2)
        bias = self.position_bias(model, positions.clamp_min(0), k_pos.clamp_min(0))
        context, probs = softmax_attention(q, k, v, mask, bias, 1.0 / math.sqrt(hd), sa.dropout.p, sa.training)
        attention_output = layer.attention.LayerNorm(layer.attention.dropout(sa.o(context)) + hidden)
        out = layer.output(layer.intermediate(attention_output), attention_output)
        if kv_hidden is not None:
            return out, None
        return out, extra_from_probs(probs, output_attention_probs, significance_rows, include_self, k, output_keys)

    def classification_logits(self, classifier, hidden):
        # MPNetForSequenceClassification: MPNetClassificationHead reads hidden[:, 0] itself
        return classifier.classifier(hidden)  # (B, C)
