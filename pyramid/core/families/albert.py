"""ALBERT: factorised embeddings (mapped up to the hidden size before layer 1) and layers shared in
groups: layer j runs group ``floor((j - 1) / (L / G))``, each group one or more ``AlbertLayer``s. A
selection after layer j sees the output of that group; the significance is that of its last inner
layer."""

from __future__ import annotations

from .base import Family, kernel_kwargs, softmax_attention


class AlbertFamily(Family):
    """ALBERT (``model.embeddings``, ``model.encoder.albert_layer_groups``)."""

    model_types = ("albert",)
    lora_targets = ("query", "key", "value", "dense", "ffn", "ffn_output")

    def embed(self, model, input_ids, token_type_ids=None, attention_mask=None):
        hidden = model.embeddings(input_ids, token_type_ids=token_type_ids)  # (B, N, e)
        return model.encoder.embedding_hidden_mapping_in(hidden)  # (B, N, d)

    def layer(self, model, j):
        cfg = model.config
        group = int((j - 1) / (cfg.num_hidden_layers / cfg.num_hidden_groups))
        return model.encoder.albert_layer_groups[group]


    def run_layer(self, model, j, hidden, mask, positions, *, output_attention_probs=False, significance_rows=None,
                  include_self=False, kv_hidden=None, kv_positions=None, output_keys=False):
        inner = list(self.layer(model, j).albert_layers)
        if kv_hidden is not None and len(inner) > 1:
            raise NotImplementedError("a cross layer over an ALBERT group of several inner layers")
        extra = None
        for i, layer in enumerate(inner):
            att = layer.attention
            last = i == len(inner) - 1
            if kv_hidden is not None and i == 0:
                B, N, _ = hidden.shape
                M = kv_hidden.shape[1]
                hd = att.attention_head_size
                q = att.query(hidden).view(B, N, -1, hd).transpose(1, 2)
                k = att.key(kv_hidden).view(B, M, -1, hd).transpose(1, 2)
                v = att.value(kv_hidden).view(B, M, -1, hd).transpose(1, 2)
                context, _ = softmax_attention(q, k, v, mask, None, att.scaling, att.attention_dropout.p, att.training)
                attention_output = att.LayerNorm(hidden + att.output_dropout(att.dense(context)))
            else:
                kwargs = kernel_kwargs(output_attention_probs, significance_rows, include_self, output_keys) if last else {}
                attention_output, probs = att(hidden, mask, **kwargs)
                if kwargs:
                    extra = probs
            hidden = layer.full_layer_layer_norm(layer.ff_chunk(attention_output) + attention_output)
        return hidden, extra

    def classification_logits(self, classifier, hidden):
        # AlbertModel's pooler (linear + tanh on the first token), then AlbertForSequenceClassification's
        # dropout and classifier
        base = classifier.albert
        pooled = base.pooler_activation(base.pooler(hidden[:, 0]))  # (B, d)
        return classifier.classifier(classifier.dropout(pooled))  # (B, C)
