"""Saliency over a whole data set: do the learned selectors' scores agree with gradient x input, and
does each selector keep the most salient tokens?

Reported by ``python -m pyramid saliency-report``:

* per learned selector and point where it selects, the mean over examples of the Spearman
  correlation between its token scores (:func:`pyramid.analysis.attribution.selector_scores`, full-length
  states; AdapLeR's CP_l, TR-BERT's pi, LTP's score) and the gradient x input saliency of the gold
  class (docs/methods.md 2.2, the target AdapLeR's predictors are distilled from);
* per selector and layer, the mean share of each example's top-k salient tokens (gradient x input)
  that are still kept after that layer, under the same schedule for the fixed-length selectors
  (AdapLeR sets its own lengths).

Texts with fewer than k + 2 tokens are skipped for the top-k shares (the whole text would be "top-k").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from .attribution import saliency_targets, selector_scores, spearman
from ..batching import encode_texts, length_sorted_batches, pad_id_of
from ..classifier import Classifier
from ..data import LabelledData
from ..core.schedule import Schedule
from ..core.selectors import LearnedSelector, Selector, get_selector

REPORT_KEYS = ("kind", "selector", "layer", "value", "n")
"""Columns of a report row: ``kind`` is ``score_spearman`` or ``top<k>_kept``."""


@dataclass
class SaliencyAgreement:
    """The data-set-wide report.

    Attributes:
        score_spearman: learned selector name -> {layer -> mean Spearman(its score, gradient x input)}.
        topk_kept: selector name -> ``[L]`` mean share of the top-k salient tokens kept after layer j.
        n: examples used for the Spearman means; n_topk: examples long enough for the top-k shares.
        k: the k; retention: the fixed-length selectors' final retention ratio.
    """

    score_spearman: dict[str, dict[int, float]]
    topk_kept: dict[str, list[float]]
    n: int
    n_topk: int
    k: int
    retention: float

    def rows(self) -> list[dict]:
        """Flat rows with :data:`REPORT_KEYS` (for CSV and JSON)."""
        out = [{"kind": "score_spearman", "selector": name, "layer": j, "value": v, "n": self.n}
               for name, per_layer in self.score_spearman.items() for j, v in per_layer.items()]
        for name, shares in self.topk_kept.items():
            out += [{"kind": f"top{self.k}_kept", "selector": name, "layer": j, "value": v, "n": self.n_topk}
                    for j, v in enumerate(shares, start=1)]
        return out


def saliency_agreement(
    classifier: Classifier,
    data: LabelledData,
    selectors: Sequence[str | Selector],
    *,
    retention: float = 0.3,
    start_layer: int = 1,
    k: int = 5,
    batch_size: int = 16,
    max_length: int | None = None,
    progress: bool = True,
) -> SaliencyAgreement:
    """Compute the report (see the module docstring).

    Args:
        classifier: the fine-tuned model the saliency is taken on.
        data: labelled texts (gold labels give the explained class).
        selectors: registry names or instances; each must run on ``classifier``'s head. The learned
            ones also get Spearman rows.
        retention, start_layer: schedule of the fixed-length selectors.
        k: how many top salient tokens to follow.

    Returns:
        :class:`SaliencyAgreement`.

    Raises:
        ValueError: a selector tied to another head.
    """
    from tqdm.auto import tqdm

    enc = classifier.encoder
    L = enc.num_layers
    sels = [get_selector(s) for s in selectors]
    for sel in sels:
        if sel.head is not None and sel.head != classifier.name:
            raise ValueError(f"the {sel.name} selector runs on the head '{sel.head}', not '{classifier.name}'")
    ids = encode_texts(enc, data.texts, max_length)
    sal = saliency_targets(classifier, ids, data.labels, batch_size, progress)  # n x (N_i,)
    learned = [sel for sel in sels if isinstance(sel, LearnedSelector)]
    sums: dict[str, dict[int, float]] = {sel.name: {} for sel in learned}
    n_rho = 0
    if learned:
        for row, s in zip(tqdm(ids, desc="selector scores vs saliency", disable=not progress), sal):
            if len(row) < 3:
                continue
            for sel in learned:
                for layer, scores in selector_scores(classifier, sel, row).items():
                    sums[sel.name][layer] = sums[sel.name].get(layer, 0.0) + spearman(scores, s)
            n_rho += 1
    schedule = Schedule(retention=retention, start_layer=start_layer)
    long_enough = [i for i, row in enumerate(ids) if len(row) >= k + 2]
    topk_kept: dict[str, list[float]] = {}
    pad = pad_id_of(enc)
    for sel in sels:
        pyr = classifier.pyramid(sel, schedule)
        totals = [0.0] * L
        sub = [ids[i] for i in long_enough]
        for batch in tqdm(list(length_sorted_batches(sub, batch_size, pad)), desc=f"top-{k} kept: {sel.name}",
                          disable=not progress):
            with torch.inference_mode():
                out = pyr(batch.input_ids, batch.attention_mask)
            for b, local in enumerate(batch.index.tolist()):
                s = sal[long_enough[local]]
                top = set(torch.topk(s, k).indices.tolist())
                for j, lo in enumerate(out.layers):
                    kept = set(lo.positions[b][lo.keep[b]].tolist())
                    totals[j] += len(top & kept) / k
        topk_kept[sel.name] = [v / max(1, len(long_enough)) for v in totals]
    return SaliencyAgreement(
        score_spearman={name: {j: v / n_rho for j, v in per.items()} for name, per in sums.items()} if n_rho else {},
        topk_kept=topk_kept, n=n_rho, n_topk=len(long_enough), k=k, retention=retention,
    )
