"""Words, not word pieces: group a trace's tokens by the tokenizer's own word ids.

A word is *alive* at a layer if any of its pieces is, and *kept* if any of its pieces is kept; its
score (saliency, a selector's score) is the sum of its pieces' scores. [CLS], [SEP] and other special
tokens stay groups of their own. Word boundaries come from the fast tokenizer's ``word_ids()`` and the
word's text from its character offsets (:func:`pyramid.trace.tokenize`), never from string heuristics
on the pieces (BERT's ``##``, RoBERTa's ``Ġ``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence


@dataclass
class Groups:
    """How tokens map to words.

    Attributes:
        labels: ``[W]`` the text of each group (a word, or a special token's piece).
        of_token: ``[N]`` the group of each token.
        members: ``[W]`` the token indices of each group, ascending.
    """

    labels: list[str]
    of_token: list[int]
    members: list[list[int]]

    def __len__(self) -> int:
        return len(self.labels)

    def of(self, token_indices: Sequence[int]) -> list[int]:
        """The groups of some tokens: sorted, without repeats (a word counts if any piece is there)."""
        return sorted({self.of_token[i] for i in token_indices})

    def sum(self, values: Sequence[float]) -> list[float]:
        """``[N]`` per-token values -> ``[W]`` per-group sums."""
        out = [0.0] * len(self.labels)
        for i, v in enumerate(values):
            out[self.of_token[i]] += float(v)
        return out


def word_groups(tokens: Sequence[str], word_ids: Sequence[int | None], words: Sequence[str]) -> Groups:
    """Group tokens into words (``word_ids[i]`` indexes ``words``; None = a special token of its own).

    With no word information (``word_ids`` empty) every token is its own group.
    """
    if not word_ids or not words:
        return Groups(labels=list(tokens), of_token=list(range(len(tokens))), members=[[i] for i in range(len(tokens))])
    labels: list[str] = []
    of_token: list[int] = []
    members: list[list[int]] = []
    seen: dict[int, int] = {}
    for i, (tok, w) in enumerate(zip(tokens, word_ids)):
        if w is None or w >= len(words):
            g = len(labels)
            labels.append(tok)
            members.append([i])
        elif w in seen:
            g = seen[w]
            members[g].append(i)
        else:
            g = seen[w] = len(labels)
            labels.append(words[w])
            members.append([i])
        of_token.append(g)
    return Groups(labels=labels, of_token=of_token, members=members)


def trace_groups(trace, words: bool) -> Groups:
    """The groups of a :class:`pyramid.trace.Trace`: words when ``words``, else one group per token."""
    if words:
        return word_groups(trace.tokens, trace.word_ids, trace.words)
    return word_groups(trace.tokens, [], [])


def word_rows(trace, groups: Groups) -> list[dict]:
    """The trace as rows per (layer, alive group): ``layer, index, text, pieces, kept, kept_pieces``.

    ``layer`` 0 rows exist only for a selection on the embedding output (AdapLeR). ``kept`` is True when
    any piece of the group is kept after that layer; ``kept_pieces`` counts them.
    """
    rows = []
    layers = []
    if trace.embedding_kept is not None:
        layers.append((0, list(range(trace.n_tokens)), trace.embedding_kept))
    layers += [(lt.layer, lt.alive, lt.kept) for lt in trace.layers]
    for layer, alive, kept in layers:
        alive_set, kept_set = set(alive), set(kept)
        for g in groups.of(alive):
            pieces = [i for i in groups.members[g] if i in alive_set]
            n_kept = sum(1 for i in pieces if i in kept_set)
            rows.append({"layer": layer, "index": g, "text": groups.labels[g], "pieces": len(pieces),
                         "kept": n_kept > 0, "kept_pieces": n_kept})
    return rows
