"""DistilBERT: BERT's layer with its own names (``q_lin`` ... ``out_lin``, ``sa_layer_norm``, ``ffn``,
``output_layer_norm``), no token types; the self-attention runs through the project's kernel."""

from __future__ import annotations

import torch

from .base import Family, kernel_kwargs, softmax_attention


class DistilBertFamily(Family):
    """DistilBERT (``model.embeddings``, ``model.transformer.layer``)."""

    model_types = ("distilbert",)
    lora_targets = ("q_lin", "k_lin", "v_lin", "out_lin", "lin1", "lin2")

    def embed(self, model, input_ids, token_type_ids=None, attention_mask=None):
        return model.embeddings(input_ids)  # (B, N, d)

    def num_layers(self, model) -> int:
        return int(model.config.n_layers)

    def layer(self, model, j):
        return model.transformer.layer[j - 1]


    def run_layer(self, model, j, hidden, mask, positions, *, output_attention_probs=False, significance_rows=None,
                  include_self=False, kv_hidden=None, kv_positions=None, output_keys=False):
        layer = self.layer(model, j)
        sa = layer.attention
        extra = None
        if kv_hidden is not None:
            B, N, _ = hidden.shape
            M = kv_hidden.shape[1]
            hd = sa.attention_head_size
            q = sa.q_lin(hidden).view(B, N, -1, hd).transpose(1, 2)  # (B, h, N, hd)
            k = sa.k_lin(kv_hidden).view(B, M, -1, hd).transpose(1, 2)  # (B, h, M, hd)
            v = sa.v_lin(kv_hidden).view(B, M, -1, hd).transpose(1, 2)
            context, _ = softmax_attention(q, k, v, mask, None, sa.scaling, sa.dropout.p, sa.training)
            attn = sa.out_lin(context)
        else:
            kwargs = kernel_kwargs(output_attention_probs, significance_rows, include_self, output_keys)
            attn, extra = sa(hidden, attention_mask=mask, **kwargs)  # (B, N, d), out_lin applied
        attention_output = layer.sa_layer_norm(attn + hidden)
        return layer.output_layer_norm(layer.ffn(attention_output) + attention_output), extra

    def classification_logits(self, classifier, hidden):
        # DistilBertForSequenceClassification: first token, pre_classifier, ReLU, dropout, classifier
        pooled = torch.relu(classifier.pre_classifier(hidden[:, 0]))  # (B, d)
        return classifier.classifier(classifier.dropout(pooled))  # (B, C)
