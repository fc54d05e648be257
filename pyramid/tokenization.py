"""Text -> tokens as the model sees them: cleaning, truncation to the model's limit, word grouping.

Every place that turns a user's text into token ids for one trace goes through :func:`tokenize` (the
command line, the app, the Python API); batches of many texts use :func:`pyramid.batching.encode_texts`.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field

from .core.loading import LoadedEncoder


class EmptyTextError(ValueError):
    """Raised when the text is empty or holds only whitespace or control characters."""


@dataclass
class TokenizedText:
    """A text as the model sees it.

    Attributes:
        input_ids: word-piece ids, [CLS] first and [SEP] last.
        tokens: the word pieces.
        truncated: the text was longer than ``max_length`` tokens and was cut.
        original_length: its length in tokens before truncation ([CLS], [SEP] included).
        max_length: the limit applied.
        word_ids: for each token, the index of the word it belongs to (the tokenizer's own
            ``word_ids()``), None for [CLS], [SEP] and other special tokens.
        words: the text of each word, cut from the (cleaned) text with the tokenizer's offsets.
    """

    input_ids: list[int]
    tokens: list[str]
    truncated: bool
    original_length: int
    max_length: int
    word_ids: list[int | None] = field(default_factory=list)
    words: list[str] = field(default_factory=list)


def clean_text(text: str | None) -> str:
    """Drop control characters (keeping newlines and tabs as spaces) and surrounding whitespace.

    Raises:
        EmptyTextError: nothing readable is left.
    """
    if text is None:
        raise EmptyTextError("The text is empty: paste or type some text first.")
    chars = []
    for ch in str(text):
        if ch in "\n\r\t":
            chars.append(" ")
        elif unicodedata.category(ch) in ("Cc", "Cs"):
            continue
        else:
            chars.append(ch)
    cleaned = "".join(chars).strip()
    if not cleaned:
        raise EmptyTextError("The text is empty: paste or type some text first.")
    return cleaned


def tokenize(encoder: LoadedEncoder, text: str, max_length: int | None = None) -> TokenizedText:
    """Tokenize ``text`` for ``encoder``, truncating it to the model's limit.

    Args:
        encoder: the loaded model.
        text: any Unicode text.
        max_length: limit in tokens, [CLS] and [SEP] included; None for the model's own (512 for
            BERT). Values above the model's limit are lowered to it.

    Raises:
        EmptyTextError: see :func:`clean_text`, or the text has no token the tokenizer keeps.
    """
    text = clean_text(text)
    limit = encoder.max_length if max_length is None else max(3, min(int(max_length), encoder.max_length))
    tok = encoder.tokenizer
    enc = tok(text, add_special_tokens=True, truncation=False, return_offsets_mapping=True)  # once per text
    full = enc["input_ids"]
    if len(full) <= 2:
        raise EmptyTextError("The text has no token the model can read.")
    keep = _truncated(len(full), limit, getattr(tok, "truncation_side", "right"))
    ids = [full[i] for i in keep]
    word_ids, words = _words(enc, keep, text)
    return TokenizedText(
        input_ids=ids, tokens=tok.convert_ids_to_tokens(ids), truncated=len(full) > limit,
        original_length=len(full), max_length=limit, word_ids=word_ids, words=words,
    )


def _truncated(n: int, limit: int, side: str) -> list[int]:
    """The token indices truncation to ``limit`` keeps of ``n`` (the first and last are the special tokens), as the
    tokenizer's own truncation of one sequence: the first pieces (``side`` ``"right"``) or the last (``"left"``)."""
    if n <= limit:
        return list(range(n))
    if side == "left":
        return [0] + list(range(n - limit + 1, n))
    return list(range(limit - 1)) + [n - 1]


def _words(enc, keep: list[int], text: str) -> tuple[list[int | None], list[str]]:
    """Word index per kept token (``keep``: indices into ``enc``'s tokens) and the text of each word (fast tokenizers
    only; otherwise one word per non-special token, its piece)."""
    try:
        raw = enc.word_ids()
    except (ValueError, AttributeError):  # a slow tokenizer has no word ids
        raw = None
    if raw is None:
        return [None] + list(range(len(keep) - 2)) + [None], []
    raw = [raw[i] for i in keep]
    offsets = [enc["offset_mapping"][i] for i in keep]
    spans: dict[int, list[int]] = {}
    for (start, end), w in zip(offsets, raw):
        if w is not None:
            span = spans.setdefault(w, [start, end])
            span[0], span[1] = min(span[0], start), max(span[1], end)
    order = sorted(spans)
    index = {w: i for i, w in enumerate(order)}  # truncation can leave a word's later pieces out
    return [None if w is None else index[w] for w in raw], [text[spans[w][0]: spans[w][1]] for w in order]
