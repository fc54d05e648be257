"""Accuracy, agreement and FLOPs speedup of selectors and retentions on a labelled data set.

One row per (regime, selector, retention) with the keys :data:`ROW_KEYS`:

* ``regime``: ``inference`` (the selector on the full-length ``sst2-lora`` head) or ``train-select``
  (on the head fine-tuned with it); ``head``: the head that ran;
* ``accuracy``: share of examples whose predicted label equals the gold label;
* ``agreement``: share whose prediction equals the full-length model's;
* ``flops_speedup``: mean over examples of the analytic speedup of the pyramid over the full encoder,
  ``sum_j c(n) / (sum_j c(alive_j) + selection FLOPs)`` (docs/methods.md 1.3 and 6, item 4);
* ``wall_s``: measured encoder + head time over the whole set, batches sorted by length (seconds).

At retention 1.0 no selector drops anything, so those rows reuse the full-length run (same
computation) instead of repeating it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from .batching import encode_texts, length_sorted_batches, pad_id_of
from .classifier import Classifier
from .data import LabelledData
from .encoder import PyramidOutput
from .schedule import Schedule, flops_speedup
from .selectors import Selector, full_length_selector, get_selector

ROW_KEYS = ("regime", "head", "selector", "retention", "n", "accuracy", "agreement", "flops_speedup", "wall_s")


@dataclass
class DatasetRun:
    """Predictions of one pyramid on a whole data set.

    Attributes:
        probs: ``(n, C)`` float32 class probabilities, in data order.
        speedup: ``(n,)`` float64 analytic FLOPs speedup per example (selection FLOPs included).
        alive: ``(n, L)`` long, tokens entering each layer per example.
        wall_s: total forward time (seconds).
    """

    probs: torch.Tensor
    speedup: torch.Tensor
    alive: torch.Tensor
    wall_s: float

    @property
    def predictions(self) -> torch.Tensor:
        """``(n,)`` long predicted label ids."""
        return self.probs.argmax(-1)


def example_speedups(out: PyramidOutput, config) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-example analytic FLOPs speedup of one pyramid batch (:func:`pyramid.schedule.flops_speedup`).

    Returns:
        ``(speedup (B,) float64, alive (B, L) long)``; the FLOPs the selector that ran spent
        (``out.selection_flops``) and a cross layer's extra keys (``out.routing_flops``) are added
        to the pyramid's cost.
    """
    alive = out.alive_counts().cpu()  # (B, L)
    extra = out.selection_flops + out.routing_flops  # (B,)
    rows = [flops_speedup(int(out.n_tokens[b]), alive[b].tolist(), config, float(extra[b]))
            for b in range(alive.shape[0])]
    return torch.tensor(rows, dtype=torch.float64), alive


def run_dataset(
    classifier: Classifier,
    ids: Sequence[Sequence[int]],
    selector: Selector,
    schedule: Schedule,
    *,
    batch_size: int = 16,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
) -> DatasetRun:
    """Run one pyramid over pre-tokenised texts.

    Args:
        classifier: the model.
        ids: token ids per example ([CLS] first), already truncated.
        selector, schedule: the pyramid (``Schedule(retention=1.0)`` = full length).
        batch_size: examples per batch (batches hold texts of similar length).
        seed: selector seed (the same for every batch).
        progress: called with the number of examples done after each batch.

    Returns:
        :class:`DatasetRun`.
    """
    n = len(ids)
    C = len(classifier.labels)
    L = classifier.encoder.num_layers
    probs = torch.zeros(n, C)
    speed = torch.zeros(n, dtype=torch.float64)
    alive = torch.zeros(n, L, dtype=torch.long)
    wall = 0.0
    pad = pad_id_of(classifier.encoder)
    for batch in length_sorted_batches(ids, batch_size, pad):
        t0 = time.perf_counter()
        p, out = classifier.predict(batch.input_ids, batch.attention_mask, selector, schedule, seed=seed)
        wall += time.perf_counter() - t0
        s, a = example_speedups(out, classifier.encoder.config)
        probs[batch.index], speed[batch.index], alive[batch.index] = p, s, a
        if progress is not None:
            progress(len(batch.index))
    return DatasetRun(probs, speed, alive, wall)


def evaluate(
    classifier: Classifier,
    data: LabelledData,
    selectors: Sequence[str | Selector],
    retentions: Sequence[float],
    *,
    start_layer: int = 1,
    batch_size: int = 16,
    seed: int = 0,
    max_length: int | None = None,
    progress: bool = True,
) -> list[dict]:
    """Evaluate every (selector, retention) pair on ``data``.

    Args:
        classifier: a :class:`pyramid.classifier.Classifier` (a project head or a checkpoint's own head).
        data: texts and gold labels (label names must match the classifier's).
        selectors: registry names (inference-only regime) or :class:`Selector` instances. A
            learned-threshold selector (``uses_retention`` False: AdapLeR, TR-BERT, LTP) gives one
            row whatever ``retentions`` says; its ``retention`` is the measured mean share of tokens
            entering the last layer. Token Dropping reads each retention as its keep fraction.
        retentions: final retention ratios rho in (0, 1].
        start_layer: first layer after which selection happens.
        batch_size: examples per forward.
        seed: seed of stochastic selectors.
        max_length: truncation in tokens (the model's limit when None).
        progress: show a tqdm bar on stderr.

    Returns:
        One dict per pair with the keys :data:`ROW_KEYS`, selectors outermost, in the order given.

    Raises:
        KeyError: an unknown selector. ScheduleError: a bad retention or start layer.
        ValueError: a selector tied to another head than ``classifier``'s.
    """
    from tqdm.auto import tqdm

    sels = [get_selector(s) for s in selectors]
    for sel in sels:
        if sel.head is not None and sel.head != classifier.name:
            raise ValueError(f"the {sel.name} selector ({sel.regime}) runs on the head '{sel.head}', not on "
                             f"'{classifier.name}'; evaluate it with --head {sel.head}")
    schedules = {r: Schedule(retention=float(r), start_layer=start_layer) for r in retentions}
    for sch in schedules.values():
        sch.validate(classifier.encoder.num_layers)
    ids = encode_texts(classifier.encoder, data.texts, max_length)
    gold = torch.tensor(data.labels)
    n = len(ids)
    runs_needed = 1 + sum(1 for sel in sels for r in retentions if float(r) < 1.0 and sel.uses_retention)
    runs_needed += sum(1 for sel in sels if not sel.uses_retention)
    bar = tqdm(total=n * runs_needed, desc="evaluate", unit="ex", disable=not progress)

    bar.set_postfix_str("full length")
    full = run_dataset(classifier, ids, full_length_selector(), Schedule(retention=1.0), batch_size=batch_size, seed=seed,
                       progress=bar.update)
    full_pred = full.predictions
    rows = []
    n_tok = torch.tensor([len(x) for x in ids], dtype=torch.float64)  # (n,)
    for sel in sels:
        if not sel.uses_retention:
            # Learned thresholds (AdapLeR, TR-BERT): one operating point; its retention is the
            # measured mean share of tokens entering the last layer.
            bar.set_postfix_str(sel.name)
            run = run_dataset(classifier, ids, sel, Schedule(retention=1.0), batch_size=batch_size, seed=seed,
                              progress=bar.update)
            pred = run.predictions
            rows.append({
                "regime": sel.regime, "head": classifier.name,
                "selector": sel.name, "retention": float((run.alive[:, -1].double() / n_tok).mean()), "n": n,
                "accuracy": float((pred == gold).double().mean()),
                "agreement": float((pred == full_pred).double().mean()),
                "flops_speedup": float(run.speedup.mean()),
                "wall_s": float(run.wall_s),
            })
            continue
        for r in retentions:
            if float(r) >= 1.0:
                run = full
            else:
                bar.set_postfix_str(f"{sel.name} rho={r}")
                run = run_dataset(classifier, ids, sel, schedules[r], batch_size=batch_size, seed=seed,
                                  progress=bar.update)
            pred = run.predictions
            rows.append({
                "regime": sel.regime, "head": classifier.name,
                "selector": sel.name, "retention": float(r), "n": n,
                "accuracy": float((pred == gold).double().mean()),
                "agreement": float((pred == full_pred).double().mean()),
                "flops_speedup": float(run.speedup.mean()),
                "wall_s": float(run.wall_s),
            })
    bar.close()
    return rows


def accuracy_of(classifier: Classifier, data: LabelledData, selector: str | Selector | None = None,
                retention: float = 1.0, start_layer: int = 1, batch_size: int = 32,
                max_length: int | None = None) -> float:
    """Accuracy of one pyramid on ``data`` (full length when ``selector`` is None)."""
    ids = encode_texts(classifier.encoder, data.texts, max_length)
    sel = full_length_selector() if selector is None else get_selector(selector)
    run = run_dataset(classifier, ids, sel, Schedule(retention=retention, start_layer=start_layer),
                      batch_size=batch_size)
    return float((run.predictions == torch.tensor(data.labels)).double().mean())


def operating_point(classifier: Classifier, selector: Selector | None, path: str, batch_size: int = 32,
                    schedule: Schedule | None = None) -> dict:
    """Accuracy, mean FLOPs speedup (selector cost included) and last-layer retention of one
    pyramid on a labelled file (the figures a learned selector's model card reports).

    Returns:
        ``{"dev", "dev_accuracy", "dev_flops_speedup", "dev_last_layer_retention"}``.

    Raises:
        DataError: unreadable file.
    """
    from .data import read_labelled

    data = read_labelled(path, label_names=classifier.labels)
    ids = encode_texts(classifier.encoder, data.texts)
    run = run_dataset(classifier, ids, selector if selector is not None else full_length_selector(),
                      schedule or Schedule(retention=1.0), batch_size=batch_size)
    gold = torch.tensor(data.labels)
    n = torch.tensor([len(x) for x in ids], dtype=torch.float32)
    return {
        "dev": path,
        "dev_accuracy": round(float((run.predictions == gold).double().mean()), 4),
        "dev_flops_speedup": round(float(run.speedup.mean()), 3),
        "dev_last_layer_retention": round(float((run.alive[:, -1].float() / n).mean()), 3),
    }



def evaluate_regimes(
    model,
    data: LabelledData,
    selectors: Sequence[str],
    retentions: Sequence[float],
    *,
    regimes: Sequence[str] = ("inference", "train-select"),
    head: str | None = None,
    start_layer: int = 1,
    batch_size: int = 16,
    seed: int = 0,
    max_length: int | None = None,
    progress: bool = True,
) -> list[dict]:
    """:func:`evaluate` in each regime: every selector on ``head`` (inference-only), and each selector
    on the head fine-tuned with it (Train-Select, :attr:`Selector.head` of its train-select form).

    Args:
        model: a :class:`pyramid.api.Model` (or a :class:`pyramid.loading.LoadedEncoder`, wrapped in one).
        selectors: registry names. regimes: any of ``inference``, ``train-select``.
        head: the inference-only regime's classifier (the model's own: a checkpoint's head, or
            ``sst2-lora`` on the default model, when None).

    Returns:
        Rows with :data:`ROW_KEYS`, regimes outermost.

    Raises:
        HeadLoadError, ValueError: a head or a selector's artifact is missing, or the model has no
            classifier for the inference-only regime.
    """
    from .api import Model
    from .classifier import HeadLoadError

    if not isinstance(model, Model):
        model = Model(model)
    rows = []
    kwargs = dict(start_layer=start_layer, batch_size=batch_size, seed=seed, max_length=max_length, progress=progress)
    for regime in regimes:
        if regime == "inference":
            name = head or model.inference_head
            if name is None:
                raise HeadLoadError(f"'{model.name}' has no classifier for the inference-only regime; give a head")
            clf = model.classifier(name)
            sels = [get_selector(n, "inference") for n in selectors]
            for sel in sels:  # a learned selector trained on another head cannot run on this one
                if sel.head is not None and sel.head != clf.name:
                    raise ValueError(f"the {sel.name} selector runs on the head '{sel.head}', not '{clf.name}'")
            rows += evaluate(clf, data.with_labels(clf.labels), sels, retentions, **kwargs)
        else:
            for n in selectors:
                sel = get_selector(n, regime)
                clf = model.classifier(model.prediction_head(sel))
                rows += evaluate(clf, data.with_labels(clf.labels), [sel], retentions, **kwargs)
    return rows
