"""Accuracy, agreement and FLOPs speedup of selectors and retentions on a labelled data set.

One row per (regime, selector, retention) with the keys :data:`ROW_KEYS`:

* ``regime``: ``inference`` (the selector on the full-length ``sst2-lora`` head) or ``train-select``
  (on the head fine-tuned with it); ``head``: the head that ran;
* ``accuracy``: share of examples whose predicted label equals the gold label, with ``ci_low``, ``ci_high``
  its 95% percentile bootstrap interval over examples (docs/methods.md 9);
* ``macro_f1``: the unweighted mean of the per-class F1, with ``f1_low``, ``f1_high``;
* ``agreement``: share whose prediction equals the full-length model's;
* ``diff_full``: accuracy minus the full-length model's on the same examples, with ``diff_low``,
  ``diff_high`` its paired bootstrap interval (an interval that excludes 0: distinguishable from full length);
* ``flops_speedup``: mean over examples of the analytic speedup of the pyramid over the full encoder,
  ``sum_j c(n) / (sum_j c(alive_j) + selection FLOPs)`` (docs/methods.md 1.3 and 6, item 4);
* ``wall_s``: measured encoder + head time over the whole set, batches sorted by length (seconds);
* ``correct``: which examples were right, in the data's order, as packed bits in base64
  (:func:`pack_correct`), so that any two rows of a file can be compared pairwise later (the Benchmarks
  page's matched-speedup comparisons).

A multi-label classifier is scored by its most probable label against the one gold label of a row.

At retention 1.0 no selector drops anything, so those rows reuse the full-length run (same
computation) instead of repeating it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from ..batching import encode_texts, length_sorted_batches, pad_id_of
from ..classifier import Classifier
from ..data import LabelledData
from ..core.encoder import PyramidOutput
from ..core.schedule import Schedule, flops_speedup
from ..core.selectors import Selector, full_length_selector, get_selector

ROW_KEYS = ("regime", "head", "selector", "retention", "n", "accuracy", "ci_low", "ci_high", "macro_f1", "f1_low",
            "f1_high", "agreement", "diff_full", "diff_low", "diff_high", "flops_speedup", "wall_s", "correct")


def pack_correct(correct) -> str:
    """``(n,)`` bools -> base64 of the bits packed 8 per byte (``numpy.packbits``, big-endian bit order)."""
    import base64

    import numpy as np

    return base64.b64encode(np.packbits(np.asarray(correct, dtype=bool)).tobytes()).decode("ascii")


def unpack_correct(text: str, n: int):
    """Inverse of :func:`pack_correct`: ``(n,)`` bool numpy array.

    Raises:
        ValueError: the text is not base64 of at least ``n`` bits.
    """
    import base64
    import binascii

    import numpy as np

    try:
        raw = np.frombuffer(base64.b64decode(text.encode("ascii"), validate=True), dtype=np.uint8)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise ValueError(f"not packed bits: {exc}") from None
    bits = np.unpackbits(raw)
    if bits.size < n:
        raise ValueError(f"{bits.size} bits for {n} examples")
    return bits[:n].astype(bool)


def score_row(pred: torch.Tensor, gold: torch.Tensor, full_pred: torch.Tensor, n_classes: int) -> dict:
    """The scored columns of a row: accuracy, macro-F1 and the paired difference with the full-length run,
    each with its 95% interval (:mod:`pyramid.analysis.stats`), the agreement, and the packed correctness."""
    from .stats import accuracy_interval, macro_f1_interval, paired_difference

    correct = (pred == gold).numpy()
    full_correct = (full_pred == gold).numpy()
    acc = accuracy_interval(correct)
    f1 = macro_f1_interval(gold.numpy(), pred.numpy(), n_classes=n_classes)
    diff = paired_difference(correct, full_correct)
    return {"accuracy": acc.value, "ci_low": acc.low, "ci_high": acc.high,
            "macro_f1": f1.value, "f1_low": f1.low, "f1_high": f1.high,
            "agreement": float((pred == full_pred).double().mean()),
            "diff_full": diff.value, "diff_low": diff.low, "diff_high": diff.high,
            "correct": pack_correct(correct)}


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
    """Per-example analytic FLOPs speedup of one pyramid batch (:func:`pyramid.core.schedule.flops_speedup`).

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
    runner: Callable | None = None,
    proportional_attention: bool = True,
) -> DatasetRun:
    """Run one pyramid over pre-tokenised texts.

    Args:
        classifier: the model.
        ids: token ids per example ([CLS] first), already truncated.
        selector, schedule: the pyramid (``Schedule(retention=1.0)`` = full length).
        batch_size: examples per batch (batches hold texts of similar length).
        seed: selector seed (the same for every batch).
        progress: called with the number of examples done after each batch (it may raise to stop).
        runner: ``runner(fn, *args, **kwargs)`` runs each batch's forward (the app: on its torch thread,
            one batch at a time, so that other users' requests run between batches); None: directly.
        proportional_attention: merging selectors add ``log(size)`` to later attention logits (default on).

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
        if runner is None:
            p, out = classifier.predict(batch.input_ids, batch.attention_mask, selector, schedule, seed=seed,
                                        proportional_attention=proportional_attention)
        else:
            p, out = runner(classifier.predict, batch.input_ids, batch.attention_mask, selector, schedule, seed=seed,
                            proportional_attention=proportional_attention)
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
    progress: bool | Callable[[int, int, str], None] = True,
    runner: Callable | None = None,
    proportional_attention: bool = True,
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
        progress: True for a tqdm bar on stderr, False for none, or a callable
            ``progress(done, total, what)`` called after every batch with the examples done over all runs
            (it may raise to stop the evaluation: the exception propagates).
        runner: how each batch's forward runs (see :func:`run_dataset`).
        proportional_attention: merging selectors add ``log(size)`` to later attention logits (default on;
            docs/methods.md 10.1).

    Returns:
        One dict per pair with the keys :data:`ROW_KEYS`, selectors outermost, in the order given.

    Raises:
        KeyError: an unknown selector. ScheduleError: a bad retention or start layer.
        ValueError: a selector tied to another head than ``classifier``'s.
    """
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
    bar = _Progress(n * runs_needed(sels, retentions), progress)

    bar.set_postfix_str("full length")
    full = run_dataset(classifier, ids, full_length_selector(), Schedule(retention=1.0), batch_size=batch_size, seed=seed,
                       progress=bar.update, runner=runner)
    rows = []
    n_tok = torch.tensor([len(x) for x in ids], dtype=torch.float64)  # (n,)
    for sel in sels:
        rows += _selector_rows(classifier, sel, ids, gold, full, retentions, schedules, n_tok, bar,
                               dict(batch_size=batch_size, seed=seed, proportional_attention=proportional_attention,
                                    progress=bar.update, runner=runner))
    bar.close()
    return rows


def _selector_rows(classifier, sel, ids, gold, full, retentions, schedules, n_tok, bar, run_kwargs) -> list[dict]:
    """One selector's rows of :func:`evaluate`: one per retention (the full-length run stands for rho = 1), or one
    operating point for learned thresholds (AdapLeR, TR-BERT, LTP), whose retention is the measured mean share of
    tokens entering the last layer."""
    n, C = len(ids), len(classifier.labels)
    if not sel.uses_retention:
        bar.set_postfix_str(sel.name)
        run = run_dataset(classifier, ids, sel, Schedule(retention=1.0), **run_kwargs)
        return [_row(sel, classifier.name, float((run.alive[:, -1].double() / n_tok).mean()), n,
                     score_row(run.predictions, gold, full.predictions, C), run)]
    rows = []
    for r in retentions:
        if float(r) >= 1.0:
            run = full
        else:
            bar.set_postfix_str(f"{sel.name} rho={r}")
            run = run_dataset(classifier, ids, sel, schedules[r], **run_kwargs)
        rows.append(_row(sel, classifier.name, float(r), n, score_row(run.predictions, gold, full.predictions, C), run))
    return rows


class _Progress:
    """A tqdm bar, or the caller's ``progress(done, total, what)`` callback (see :func:`evaluate`)."""

    def __init__(self, total: int, progress) -> None:
        from tqdm.auto import tqdm

        self.total, self.done, self.what = total, 0, ""
        self.callback = progress if callable(progress) else None
        self.bar = tqdm(total=total, desc="evaluate", unit="ex", disable=not (progress is True))

    def set_postfix_str(self, what: str) -> None:
        self.what = what
        self.bar.set_postfix_str(what)

    def update(self, k: int) -> None:
        self.done += k
        self.bar.update(k)
        if self.callback is not None:
            self.callback(self.done, self.total, self.what)

    def close(self) -> None:
        self.bar.close()


def runs_needed(selectors: Sequence[Selector], retentions: Sequence[float]) -> int:
    """Passes over the data set that :func:`evaluate` makes: the full-length run, one per (fixed-schedule
    selector, retention below 1), one per learned selector."""
    fixed = sum(1 for sel in selectors for r in retentions if float(r) < 1.0 and sel.uses_retention)
    return 1 + fixed + sum(1 for sel in selectors if not sel.uses_retention)


def _row(sel: Selector, head: str, retention: float, n: int, scores: dict, run: DatasetRun) -> dict:
    """One result row in :data:`ROW_KEYS` order."""
    row = {"regime": sel.regime, "head": head, "selector": sel.name, "retention": retention, "n": n, **scores,
           "flops_speedup": float(run.speedup.mean()), "wall_s": float(run.wall_s)}
    return {k: row[k] for k in ROW_KEYS}


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
    from ..data import read_labelled

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
    progress: bool | Callable[[int, int, str], None] = True,
    runner: Callable | None = None,
    proportional_attention: bool = True,
) -> list[dict]:
    """:func:`evaluate` in each regime: every selector on ``head`` (inference-only), and each selector
    on the head fine-tuned with it (Train-Select), as :func:`pyramid.plan.plan_evaluation` plans them.

    Args:
        model: a :class:`pyramid.api.Model` (or a :class:`pyramid.core.loading.LoadedEncoder`, wrapped in one).
        selectors: registry names. regimes: any of ``inference``, ``train-select``.
        head: the inference-only regime's classifier (the model's own: a checkpoint's head, or
            ``sst2-lora`` on the default model, when None).

    Returns:
        Rows with :data:`ROW_KEYS`, regimes outermost.

    Raises:
        HeadLoadError, ValueError: a head or a selector's artifact is missing, a selector cannot run on the model
            in a regime (leave it out: :func:`pyramid.plan.plan_evaluation` says which), or the model has no
            classifier for the inference-only regime.
    """
    from ..api import Model
    from ..classifier import HeadLoadError
    from ..plan import plan_evaluation

    if not isinstance(model, Model):
        model = Model(model)
    if "inference" in regimes and (head or model.inference_head) is None:
        raise HeadLoadError(f"'{model.name}' has no classifier for the inference-only regime; give a head")
    plan = plan_evaluation(model, selectors, regimes, head)
    if plan.left_out or plan.elsewhere:  # asked for and cannot run: the caller leaves it out (the plan says which)
        raise ValueError((plan.left_out + plan.elsewhere)[0].refusal(model.name))
    rows = []
    kwargs = dict(start_layer=start_layer, batch_size=batch_size, seed=seed, max_length=max_length, progress=progress,
                  runner=runner, proportional_attention=proportional_attention)
    for run in plan.runs:
        clf = model.classifier(run.head)
        sels = [model.selector(n, run.regime) for n in run.selectors]
        rows += evaluate(clf, data.with_labels(clf.labels), sels, retentions, **kwargs)
    return rows
