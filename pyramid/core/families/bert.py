"""BERT and its same-layout relatives: RoBERTa, XLM-RoBERTa, CamemBERT, ELECTRA.

Each layer is self-attention (``attention.self``, through the project's attention kernel, so the
probabilities or the chunked significance come out when asked), ``attention.output`` (Add &
LayerNorm) and the FFN (``feed_forward_chunk``). ELECTRA's embeddings may be narrower than its
layers; its ``embeddings_project`` maps them up.
"""

from __future__ import annotations

import torch

from .base import Family, kernel_kwargs, softmax_attention


class BertFamily(Family):
    """BERT-layout encoders (``model.embeddings``, ``model.encoder.layer``)."""

    model_types = ("bert", "roberta", "xlm-roberta", "camembert", "electra")
    lora_targets = ("query", "key", "value", "attention.output.dense", "intermediate.dense", "output.dense")

    def embed(self, model, input_ids, token_type_ids=None, attention_mask=None):
        hidden = model.embeddings(input_ids=input_ids, token_type_ids=token_type_ids)  # (B, N, e)
        project = getattr(model, "embeddings_project", None)  # ELECTRA with embedding_size != hidden_size
        return project(hidden) if project is not None else hidden

    def layer(self, model, j):
        return model.encoder.layer[j - 1]


    def run_layer(self, model, j, hidden, mask, positions, *, output_attention_probs=False, significance_rows=None,
                  include_self=False, kv_hidden=None, kv_positions=None, output_keys=False):
        layer = self.layer(model, j)
        if kv_hidden is not None:
            context = cross_attention(layer.attention.self, hidden, kv_hidden, mask)  # (B, N, d)
            return layer.feed_forward_chunk(layer.attention.output(context, hidden)), None
        kwargs = kernel_kwargs(output_attention_probs, significance_rows, include_self, output_keys)
        context, extra = layer.attention.self(hidden, attention_mask=mask, **kwargs)  # (B, N, d)
        attention_output = layer.attention.output(context, hidden)  # (B, N, d)
        return layer.feed_forward_chunk(attention_output), extra

    def classification_logits(self, classifier, hidden):
        if classifier.config.model_type == "bert":
            # BertForSequenceClassification: BertPooler (dense + tanh on the first token), dropout, linear
            pooled = classifier.bert.pooler(hidden)  # (B, d)
            return classifier.classifier(classifier.dropout(pooled))  # (B, C)
        # RoBERTa, XLM-RoBERTa, CamemBERT, ELECTRA: a classification head that reads hidden[:, 0] itself
        return classifier.classifier(hidden)  # (B, C)


def cross_attention(sa, hidden_q: torch.Tensor, hidden_kv: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Multi-head attention of a BERT self-attention module with queries from ``hidden_q (B, N, d)`` and
    keys and values from ``hidden_kv (B, M, d)``; ``mask (B, 1, 1, M)`` additive. Returns ``(B, N, d)``."""
    B, N, _ = hidden_q.shape
    M = hidden_kv.shape[1]
    hd = sa.attention_head_size
    q = sa.query(hidden_q).view(B, N, -1, hd).transpose(1, 2)  # (B, h, N, hd)
    k = sa.key(hidden_kv).view(B, M, -1, hd).transpose(1, 2)  # (B, h, M, hd)
    v = sa.value(hidden_kv).view(B, M, -1, hd).transpose(1, 2)
    context, _ = softmax_attention(q, k, v, mask, None, sa.scaling, sa.dropout.p, sa.training)
    return context
