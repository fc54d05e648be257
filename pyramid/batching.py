"""Tokenising many texts and cutting them into right-padded batches (shared by training,
evaluation and benchmarks)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Sequence

import torch

from .core.loading import LoadedEncoder


@dataclass
class Batch:
    """One padded batch.

    Attributes:
        index: ``(B,)`` long, rows of the original list.
        input_ids: ``(B, N)`` long, right padded with the pad id.
        attention_mask: ``(B, N)`` long, 1 for real tokens.
    """

    index: torch.Tensor
    input_ids: torch.Tensor
    attention_mask: torch.Tensor

    def to(self, device: torch.device | str) -> "Batch":
        """The ids and mask on ``device`` (``index`` stays on the CPU: it indexes CPU result tables)."""
        return Batch(self.index, self.input_ids.to(device), self.attention_mask.to(device))


def encode_texts(encoder: LoadedEncoder, texts: Sequence[str], max_length: int | None = None) -> list[list[int]]:
    """Token ids of every text, [CLS] first and [SEP] last, truncated to ``max_length`` tokens
    (the model's limit when None). Empty texts become ``[CLS] [SEP]``."""
    limit = encoder.max_length if max_length is None else min(int(max_length), encoder.max_length)
    enc = encoder.tokenizer(list(texts), add_special_tokens=True, truncation=True, max_length=limit)
    return [list(ids) for ids in enc["input_ids"]]


def pad_batch(rows: Sequence[Sequence[int]], pad_id: int, index: Sequence[int] | None = None) -> Batch:
    """Right-pad token-id lists into a :class:`Batch` of width ``max(len(row))``."""
    n = max(len(r) for r in rows)
    ids = torch.full((len(rows), n), int(pad_id), dtype=torch.long)
    mask = torch.zeros((len(rows), n), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, :len(r)] = torch.tensor(r, dtype=torch.long)
        mask[i, :len(r)] = 1
    idx = torch.tensor(list(index) if index is not None else range(len(rows)), dtype=torch.long)
    return Batch(idx, ids, mask)


def length_sorted_batches(ids: Sequence[Sequence[int]], batch_size: int, pad_id: int) -> Iterator[Batch]:
    """Batches of texts of similar length (longest first), so that little compute goes to padding.
    Every row appears once; ``Batch.index`` maps rows back."""
    order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
    for s in range(0, len(order), batch_size):
        chunk = order[s:s + batch_size]
        yield pad_batch([ids[i] for i in chunk], pad_id, chunk)


def pad_id_of(encoder: LoadedEncoder) -> int:
    """The tokenizer's pad id (0 when it has none)."""
    pid = encoder.tokenizer.pad_token_id
    return 0 if pid is None else int(pid)
