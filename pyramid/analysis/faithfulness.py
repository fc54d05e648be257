"""Is the kept set faithful? ERASER's comprehensiveness and sufficiency (DeYoung et al., ACL 2020, "ERASER: A
Benchmark to Evaluate Rationalized NLP Models", section 4.2; docs/methods.md 12) for the tokens a
selector keeps to the last layer, beside same-size top-k sets of gradient x input and integrated gradients and a
random same-size set.

For a text x, the full-length classifier's predicted class j and a set r of word pieces:

* **comprehensiveness** = p_j(x) - p_j(x \\ r): the probability drop when r is deleted from the input;
* **sufficiency** = p_j(x) - p_j(r): the drop when only r is given.

How removal is done here: the pieces are deleted from the token sequence (not masked), [CLS] first and [SEP]
last are always kept, and the remaining pieces keep their order; the shorter sequence runs at full length
through the same classifier with its own positions 0..n'-1 (the positions are those of a text that never had
the removed pieces, as ERASER's deletion). The set a selector keeps to the last layer is the tokens that enter
every layer without a break (:func:`pyramid.analysis.survival.token_depths`: a merging selector's surviving targets; Token
Dropping's tokens that never left, not the ones it rejoins), special tokens left out. Edge cases, each defined:
an empty set (a selector that keeps only [CLS]) deletes nothing, so comprehensiveness is 0, and sufficiency is
the drop to [CLS] [SEP] alone; every piece kept (rho = 1) gives sufficiency 0 and comprehensiveness the drop to
[CLS] [SEP]; a one-word text and a text of [UNK]s follow the same rules. ERASER's AOPC averages over bins of k;
here k is the selector's own kept count (and the references take the same k), as ../shared/docs/methods.md 11 asks.

Cost: two full-length passes per set and text (all sets of a text run as one padded batch).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import numpy as np
import torch

from ..classifier import Classifier
from .stats import mean_interval, paired_difference
from .survival import token_depths
from ..trace import Trace

REFERENCES = ("grad_x_input", "integrated_gradients", "random")
"""The reference sets of every selector's size: the top-k tokens of two saliency methods, and a random set."""
REFERENCE_LABELS = {"grad_x_input": "gradient × input", "integrated_gradients": "integrated gradients",
                    "random": "random"}
"""How the references are named for people (tables, captions)."""


def kept_to_the_end(trace: Trace) -> list[int]:
    """Token indices a trace carries to the last layer without a break (special tokens left out: the first and
    the last piece, [CLS] and [SEP]), ascending."""
    depth, _, _ = token_depths(trace)
    n = trace.n_tokens
    return [i for i in range(1, n - 1) if depth[i] == trace.num_layers]


def removal_inputs(input_ids: Sequence[int], kept: Sequence[int]) -> tuple[list[int], list[int]]:
    """``(without, only)``: the token ids with the pieces ``kept`` deleted, and with only them ([CLS] first and
    [SEP] last stay in both; ``kept`` are indices into ``input_ids``, never 0 or the last)."""
    ids = list(input_ids)
    inside = set(int(i) for i in kept if 0 < int(i) < len(ids) - 1)
    without = [ids[0]] + [t for i, t in enumerate(ids[1:-1], start=1) if i not in inside] + [ids[-1]]
    only = [ids[0]] + [ids[i] for i in sorted(inside)] + [ids[-1]]
    return without, only


@torch.inference_mode()
def class_probabilities(classifier: Classifier, sequences: Sequence[Sequence[int]], batch_size: int = 64) -> torch.Tensor:
    """``(S, C)`` full-length class probabilities of several token sequences (each [CLS] ... [SEP]), right-padded
    into batches of ``batch_size``."""
    from ..batching import pad_id_of
    from ..core.schedule import Schedule
    from ..core.selectors import full_length_selector

    pad = pad_id_of(classifier.encoder)
    out = []
    selector, full = full_length_selector(), Schedule(retention=1.0)
    for start in range(0, len(sequences), batch_size):
        chunk = sequences[start:start + batch_size]
        width = max(len(s) for s in chunk)
        ids = torch.full((len(chunk), width), pad, dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for r, s in enumerate(chunk):
            ids[r, :len(s)] = torch.tensor(list(s), dtype=torch.long)
            mask[r, :len(s)] = 1
        probs, _ = classifier.predict(ids, mask, selector, full)
        out.append(probs)
    return torch.cat(out, 0)


def top_k_set(scores: Sequence[float], k: int) -> list[int]:
    """The ``k`` pieces with the highest scores among the real ones (indices 1 .. N-2; ties: the earlier)."""
    inner = np.asarray(scores, dtype=float)[1:-1]
    order = np.argsort(-inner, kind="stable")[:max(0, k)]
    return sorted(int(i) + 1 for i in order)


def random_set(n_tokens: int, k: int, seed: int) -> list[int]:
    """``k`` real pieces drawn uniformly without replacement (NumPy's generator with ``seed``)."""
    rng = np.random.default_rng(seed)
    inner = np.arange(1, n_tokens - 1)
    return sorted(int(i) for i in rng.choice(inner, size=min(k, inner.size), replace=False))


def faithfulness_of_sets(classifier: Classifier, input_ids: Sequence[int], sets: Mapping[str, Sequence[int]], *,
                         target: int | None = None, batch_size: int = 64) -> tuple[int, dict[str, tuple[float, float]]]:
    """Comprehensiveness and sufficiency of several token sets of one text (module docstring).

    Args:
        input_ids: ``[N]`` the text's ids, [CLS] first and [SEP] last.
        sets: name -> token indices (the rationale r).
        target: the class j; None for the full-length prediction.

    Returns:
        ``(j, {name: (comprehensiveness, sufficiency)})``, probabilities in [0, 1] so each figure in [-1, 1].
    """
    names = list(sets)
    seqs: list[list[int]] = [list(input_ids)]
    index: dict[tuple[int, ...], int] = {tuple(input_ids): 0}
    slots = []
    for name in names:
        pair = []
        for seq in removal_inputs(input_ids, sets[name]):
            key = tuple(seq)
            if key not in index:  # the same sequence twice (two equal sets) runs once
                index[key] = len(seqs)
                seqs.append(seq)
            pair.append(index[key])
        slots.append(pair)
    probs = class_probabilities(classifier, seqs, batch_size)  # (S, C)
    j = int(probs[0].argmax()) if target is None else int(target)
    p = probs[:, j]
    return j, {name: (float(p[0] - p[w]), float(p[0] - p[o])) for name, (w, o) in zip(names, slots)}


@dataclass
class TextFaithfulness:
    """One text's figures: per selector, its kept set's size and (comprehensiveness, sufficiency), and each
    reference of the same size."""

    target: int
    sizes: dict[str, int]
    selectors: dict[str, tuple[float, float]]
    references: dict[str, dict[str, tuple[float, float]]] = field(default_factory=dict)  # selector -> ref -> figures


def text_faithfulness(classifier: Classifier, input_ids: Sequence[int], traces: Mapping[str, Trace],
                      saliency: Mapping[str, Sequence[float]], *, seed: int = 0, target: int | None = None,
                      batch_size: int = 64) -> TextFaithfulness:
    """Every selector's kept set on one text, and the references of each selector's size.

    Args:
        traces: selector name -> its trace of this text (any schedule).
        saliency: ``grad_x_input`` and ``integrated_gradients`` -> ``[N]`` per-token scores of the full-length
            classifier (either may be missing: that reference is left out).
        seed: the random reference's seed (per text; the same size gives the same draw).
    """
    sets: dict[str, list[int]] = {}
    sizes = {}
    for name, tr in traces.items():
        kept = kept_to_the_end(tr)
        sets[f"sel:{name}"] = kept
        sizes[name] = len(kept)
    n = len(input_ids)
    for k in sorted(set(sizes.values())):
        for ref in REFERENCES:
            if ref == "random":
                sets[f"ref:{ref}:{k}"] = random_set(n, k, seed * 7919 + k)
            elif ref in saliency:
                sets[f"ref:{ref}:{k}"] = top_k_set(saliency[ref], k)
    j, figs = faithfulness_of_sets(classifier, input_ids, sets, target=target, batch_size=batch_size)
    out = TextFaithfulness(target=j, sizes=sizes, selectors={name: figs[f"sel:{name}"] for name in traces})
    for name, k in sizes.items():
        out.references[name] = {ref: figs[f"ref:{ref}:{k}"] for ref in REFERENCES if f"ref:{ref}:{k}" in figs}
    return out


FAITHFULNESS_KEYS = ("selector", "retention", "n", "mean_size", "comprehensiveness", "comp_low", "comp_high",
                     "sufficiency", "suff_low", "suff_high", "comp_vs_random", "comp_vs_random_low",
                     "comp_vs_random_high", "suff_vs_random", "suff_vs_random_low", "suff_vs_random_high",
                     "comp_vs_grad_x_input", "comp_vs_grad_x_input_low", "comp_vs_grad_x_input_high",
                     "suff_vs_grad_x_input", "suff_vs_grad_x_input_low", "suff_vs_grad_x_input_high")
"""Columns of a data-set faithfulness row. ``selector`` is a selector's name, or ``grad_x_input@S``,
``integrated_gradients@S``, ``random@S`` for the reference sets of selector S's size; the ``*_vs_*`` columns are
the selector's paired difference with that reference (same examples, same sizes), with its 95% paired bootstrap
interval (empty on reference rows)."""


def faithfulness_rows(per_text: Sequence[TextFaithfulness], retention: float) -> list[dict]:
    """Data-set rows (:data:`FAITHFULNESS_KEYS`) from the figures of every text at one retention: means with 95%
    bootstrap intervals over texts, and each selector's paired differences with its random and gradient x input
    references."""
    if not per_text:
        return []
    rows = []
    for name in per_text[0].selectors:
        comp = [t.selectors[name][0] for t in per_text]
        suff = [t.selectors[name][1] for t in per_text]
        c, s = mean_interval(comp), mean_interval(suff)
        row = {"selector": name, "retention": retention, "n": len(per_text),
               "mean_size": float(np.mean([t.sizes[name] for t in per_text])),
               "comprehensiveness": c.value, "comp_low": c.low, "comp_high": c.high,
               "sufficiency": s.value, "suff_low": s.low, "suff_high": s.high}
        for ref in ("random", "grad_x_input"):
            if all(ref in t.references[name] for t in per_text):
                rc = [t.references[name][ref][0] for t in per_text]
                rs = [t.references[name][ref][1] for t in per_text]
                dc, ds = paired_difference(comp, rc), paired_difference(suff, rs)
                row.update({f"comp_vs_{ref}": dc.value, f"comp_vs_{ref}_low": dc.low, f"comp_vs_{ref}_high": dc.high,
                            f"suff_vs_{ref}": ds.value, f"suff_vs_{ref}_low": ds.low, f"suff_vs_{ref}_high": ds.high})
        rows.append(row)
        for ref in REFERENCES:
            if all(ref in t.references[name] for t in per_text):
                rc = mean_interval([t.references[name][ref][0] for t in per_text])
                rs = mean_interval([t.references[name][ref][1] for t in per_text])
                rows.append({"selector": f"{ref}@{name}", "retention": retention, "n": len(per_text),
                             "mean_size": row["mean_size"], "comprehensiveness": rc.value, "comp_low": rc.low,
                             "comp_high": rc.high, "sufficiency": rs.value, "suff_low": rs.low, "suff_high": rs.high})
    return [{k: r.get(k, "") for k in FAITHFULNESS_KEYS} for r in rows]


def dataset_faithfulness(classifier: Classifier, texts_ids: Sequence[Sequence[int]], trace_fn: Callable,
                         selectors: Sequence[str], retentions: Sequence[float], *, ig_steps: int = 20,
                         progress: bool = True) -> list[dict]:
    """Faithfulness rows over a data set (two extra passes per selector, retention and text, plus the references).

    Args:
        texts_ids: each text's token ids. trace_fn: ``(ids, selector, retention) -> Trace`` (the regime's trace,
            start layer as the caller wants). selectors: names. retentions: final retention ratios.
        ig_steps: Integrated Gradients' steps for its reference.

    Returns:
        Rows with :data:`FAITHFULNESS_KEYS`, retentions outermost.
    """
    from .attribution import gradient_saliency

    per: dict[float, list[TextFaithfulness]] = {float(r): [] for r in retentions}
    iterator = enumerate(texts_ids)
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(iterator, total=len(texts_ids), desc="faithfulness", unit="text")
    for idx, ids in iterator:
        ids = list(ids)
        att = gradient_saliency(classifier, ids, methods=("grad_x_input", "integrated_gradients"), ig_steps=ig_steps)
        sal = {k: v.tolist() for k, v in att.scores.items()}
        for rho in per:
            traces = {name: trace_fn(ids, name, rho) for name in selectors}
            per[rho].append(text_faithfulness(classifier, ids, traces, sal, seed=idx, target=att.target))
    return [row for rho, items in per.items() for row in faithfulness_rows(items, rho)]
