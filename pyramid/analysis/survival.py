"""Every method on one text: how deep each word gets in each selector's pyramid, and where merged words went.

One row per run (a selector's trace of the same text, schedule and regime), one column per word (or token):
the **depth** of a word is the last layer it enters without a break from the start, the deepest of its pieces
(0: dropped by a selection on the embedding output, before layer 1; L: it reaches the last layer). A word a
merging selector folded into another carries the layer after which it merged and the word it went into; a word
Token Dropping parked and rejoined carries the layer it rejoined at. The full-length classifier's gradient x
input saliency, summed over each word's pieces and scaled to the text's largest, marks the words that carry the
prediction (as in docs/methods.md 12, the full-length model's saliency).

No Streamlit and no plotting here: :func:`pyramid.present.figures.survival_figure` draws a :class:`Survival`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

from ..trace import Trace
from ..words import Groups


@dataclass
class Survival:
    """How deep every word gets under every run of one text.

    Attributes:
        runs: ``[S]`` display names of the runs, in row order.
        selectors: ``[S]`` their selectors' registry names.
        words: ``[W]`` the words (or tokens) of the text, in order.
        num_layers: L.
        depth: ``(S, W)`` int, the last layer each word enters without a break from the start (0..L).
        merged_after: ``(S, W)`` int, the layer after which the word's deepest piece merged into another token
            (0: never merged).
        merged_into: ``[S][W]`` the word it merged into (index into ``words``), or None.
        rejoined_at: ``(S, W)`` int, the layer at which a parked word came back (Token Dropping; 0: never).
        saliency: ``[W]`` the full-length classifier's saliency per word, scaled so that the largest over the
            text's real words is 1 (special tokens 0), or None without a classifier.
        top: the ``k`` words the saliency ranks highest (indices into ``words``), most salient first.
    """

    runs: list[str]
    selectors: list[str]
    words: list[str]
    num_layers: int
    depth: np.ndarray
    merged_after: np.ndarray
    merged_into: list[list[int | None]]
    rejoined_at: np.ndarray
    saliency: list[float] | None = None
    top: list[int] = field(default_factory=list)

    def kept_by_all(self) -> list[int]:
        """Words every run carries to the last layer (indices into ``words``)."""
        return [w for w in range(len(self.words)) if bool((self.depth[:, w] == self.num_layers).all())]

    def kept_only_by(self, rows: Sequence[int]) -> list[int]:
        """Words that reach the last layer in every one of ``rows`` and in no other row."""
        rows = set(rows)
        full = self.depth == self.num_layers
        return [w for w in range(len(self.words))
                if all(full[r, w] for r in rows) and not any(full[r, w] for r in range(len(self.runs)) if r not in rows)]


def token_depths(trace: Trace) -> tuple[list[int], dict[int, tuple[int, int]], dict[int, int]]:
    """Per token of a trace: the last layer it enters without a break (0..L), the merges ``{token: (layer,
    target token)}`` of tokens whose run ended in a merge, and ``{token: layer}`` of tokens that came back
    after being dropped (Token Dropping's rejoin).

    Returns:
        ``(depth [N], merges, rejoins)``.
    """
    n = trace.n_tokens
    depth = [0] * n
    running = set(range(n)) if trace.embedding_kept is None else set(trace.embedding_kept)
    ended: set[int] = set(range(n)) - running
    merges: dict[int, tuple[int, int]] = {}
    rejoins: dict[int, int] = {}
    for lt in trace.layers:
        alive = set(lt.alive)
        for i in alive - running:
            if i in ended and i not in rejoins:
                rejoins[i] = lt.layer
        for i in running & alive:
            depth[i] = lt.layer
        for i, target in lt.merged.items():
            if i in running and target is not None:
                merges[i] = (lt.layer, target)
        gone = (running & alive) - set(lt.kept) if lt.layer < trace.num_layers else set()
        gone |= running - alive
        ended |= gone
        running -= gone
    return depth, merges, rejoins


def survival(traces: Mapping[str, Trace], groups: Groups, *, saliency: Sequence[float] | None = None,
             top_k: int = 5) -> Survival:
    """Every run's depth for every word of one text.

    Args:
        traces: display name -> trace, all of the same text (the same tokens), in row order.
        groups: how tokens group into words (:func:`pyramid.words.trace_groups`; one group per token for
            word pieces).
        saliency: ``[N]`` per-token saliency of the full-length classifier (e.g. gradient x input), or None.
        top_k: how many of the most salient words to mark.

    Returns:
        :class:`Survival`.

    Raises:
        ValueError: no trace, or traces of different texts or depths.
    """
    if not traces:
        raise ValueError("survival needs at least one trace")
    first = next(iter(traces.values()))
    for name, tr in traces.items():
        if tr.tokens != first.tokens or tr.num_layers != first.num_layers:
            raise ValueError(f"the run '{name}' traced another text or model than the first run")
    S, W = len(traces), len(groups)
    depth = np.zeros((S, W), dtype=int)
    merged_after = np.zeros((S, W), dtype=int)
    rejoined_at = np.zeros((S, W), dtype=int)
    merged_into: list[list[int | None]] = []
    for s, tr in enumerate(traces.values()):
        tok_depth, merges, rejoins = token_depths(tr)
        row_into: list[int | None] = [None] * W
        for g, members in enumerate(groups.members):
            deepest = max(members, key=lambda i: (tok_depth[i], i not in merges))
            depth[s, g] = tok_depth[deepest]
            if deepest in merges:
                merged_after[s, g], target = merges[deepest]
                row_into[g] = groups.of_token[target]
            back = [rejoins[i] for i in members if i in rejoins]
            if back:
                rejoined_at[s, g] = min(back)
        merged_into.append(row_into)
    sal, top = None, []
    if saliency is not None:
        per_word = np.asarray(groups.sum(saliency), dtype=float)
        special = [len(m) == 1 and _is_special(first, m[0]) for m in groups.members]
        per_word[np.asarray(special, dtype=bool)] = 0.0
        peak = per_word.max() if per_word.size else 0.0
        per_word = per_word / peak if peak > 0 else per_word
        sal = per_word.tolist()
        order = np.argsort(-per_word, kind="stable")
        top = [int(w) for w in order[:top_k] if per_word[w] > 0]
    return Survival(runs=list(traces), selectors=[tr.selector for tr in traces.values()], words=list(groups.labels),
                    num_layers=first.num_layers, depth=depth, merged_after=merged_after, merged_into=merged_into,
                    rejoined_at=rejoined_at, saliency=sal, top=top)


def _is_special(trace: Trace, i: int) -> bool:
    """Token ``i`` is a special token ([CLS], [SEP], <s>...): no word id from the tokenizer, or, without word ids,
    a bracketed piece."""
    if trace.word_ids:
        return trace.word_ids[i] is None
    token = trace.tokens[i]
    return len(token) > 2 and ((token[0] == "[" and token[-1] == "]") or (token[0] == "<" and token[-1] == ">"))
