"""Saliency over a whole data set: do AdapLeR's predictors agree with gradient x input, and does each
selector keep the most salient tokens?

Reported by ``python -m pyramid saliency-report`` (issue "saliency lab"):

* per layer l, the mean over examples of the Spearman correlation between CP_l's predicted
  contribution (:func:`pyramid.adapler.contributions`, full-length states) and the gradient x input
  saliency of the gold class (methods.md 2.2, the same target the CPs were distilled from);
* per selector and layer, the mean share of each example's top-k salient tokens (gradient x input)
  that are still kept after that layer, under the same schedule for the fixed-length selectors
  (AdapLeR sets its own lengths).

Texts with fewer than k + 2 tokens are skipped for the top-k shares (the whole text would be "top-k").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from .attribution import spearman
from .batching import encode_texts, length_sorted_batches, pad_id_of
from .classifier import SequenceClassifier
from .data import LabelledData
from .schedule import Schedule
from .selectors import get_selector

REPORT_KEYS = ("kind", "selector", "layer", "value", "n")
"""Columns of a report row: ``kind`` is ``cp_spearman`` or ``topk_kept``."""


@dataclass
class SaliencyAgreement:
    """The data-set-wide report.

    Attributes:
        cp_spearman: ``[L]`` mean Spearman(CP_l, gradient x input), or empty without predictors.
        topk_kept: selector name -> ``[L]`` mean share of the top-k salient tokens kept after layer j.
        n: examples used for the Spearman means; n_topk: examples long enough for the top-k shares.
        k: the k; retention: the fixed-length selectors' final retention ratio.
    """

    cp_spearman: list[float]
    topk_kept: dict[str, list[float]]
    n: int
    n_topk: int
    k: int
    retention: float

    def rows(self) -> list[dict]:
        """Flat rows with :data:`REPORT_KEYS` (for CSV and JSON)."""
        out = [{"kind": "cp_spearman", "selector": "adapler", "layer": j, "value": v, "n": self.n}
               for j, v in enumerate(self.cp_spearman)]
        for name, shares in self.topk_kept.items():
            out += [{"kind": f"top{self.k}_kept", "selector": name, "layer": j, "value": v, "n": self.n_topk}
                    for j, v in enumerate(shares, start=1)]
        return out


def saliency_agreement(
    classifier: SequenceClassifier,
    data: LabelledData,
    selectors: Sequence[str],
    *,
    retention: float = 0.3,
    start_layer: int = 1,
    k: int = 5,
    predictors=None,
    batch_size: int = 16,
    max_length: int | None = None,
    progress: bool = True,
) -> SaliencyAgreement:
    """Compute the report (see the module docstring).

    Args:
        classifier: the fine-tuned model the saliency is taken on.
        data: labelled texts (gold labels give the explained class).
        selectors: registry names; a learned selector must belong to ``classifier``'s head.
        retention, start_layer: schedule of the fixed-length selectors.
        k: how many top salient tokens to follow.
        predictors: AdapLeR predictors for the Spearman rows (None: no Spearman rows).

    Returns:
        :class:`SaliencyAgreement`.

    Raises:
        ValueError: a learned selector trained on another head.
    """
    from tqdm.auto import tqdm

    from .adapler import contributions
    from .adapler import saliency_targets

    enc = classifier.encoder
    L = enc.num_layers
    ids = encode_texts(enc, data.texts, max_length)
    sal = saliency_targets(classifier, ids, data.labels, batch_size, progress)  # n x (N_i,)
    rho_sum = [0.0] * L
    n_rho = 0
    if predictors is not None:
        for row, s in zip(tqdm(ids, desc="CP vs saliency", disable=not progress), sal):
            if len(row) < 3:
                continue
            cp = contributions(classifier, predictors, row)  # (L, N)
            for j in range(L):
                rho_sum[j] += spearman(cp[j], s)
            n_rho += 1
    schedule = Schedule(retention=retention, start_layer=start_layer)
    long_enough = [i for i, row in enumerate(ids) if len(row) >= k + 2]
    topk_kept: dict[str, list[float]] = {}
    pad = pad_id_of(enc)
    for name in selectors:
        sel = get_selector(name)
        head = getattr(sel, "head", None)
        if head is not None and head != classifier.config.name:
            raise ValueError(f"the {name} selector belongs to the head '{head}', not '{classifier.config.name}'")
        pyr = classifier.pyramid(sel, schedule)
        sums = [0.0] * L
        sub = [ids[i] for i in long_enough]
        for batch in tqdm(list(length_sorted_batches(sub, batch_size, pad)), desc=f"top-{k} kept: {name}",
                          disable=not progress):
            with torch.inference_mode():
                out = pyr(batch.input_ids, batch.attention_mask)
            for b, local in enumerate(batch.index.tolist()):
                s = sal[long_enough[local]]
                top = set(torch.topk(s, k).indices.tolist())
                for j, lo in enumerate(out.layers):
                    kept = set(lo.positions[b][lo.keep[b]].tolist())
                    sums[j] += len(top & kept) / k
        topk_kept[name] = [v / max(1, len(long_enough)) for v in sums]
    return SaliencyAgreement(
        cp_spearman=[v / n_rho for v in rho_sum] if n_rho else [],
        topk_kept=topk_kept, n=n_rho, n_topk=len(long_enough), k=k, retention=retention,
    )
