"""The fine-tuning loop every classifier trainer shares: full length, a fixed schedule, or LengthDrop.

One function, :func:`fit`, runs the steps of the project's sentiment heads (``sst2-lora`` and its
Train-Select heads) and of a user's classifier checkpoint (:mod:`pyramid.training.checkpoint`): what
differs between them is only where the logits come from and how many labels there are, which an
:class:`Objective` says. So a checkpoint's Train-Select step is the default model's step, line for line.

LengthDrop (Kim & Cho, ACL 2021; docs/methods.md 8.5): with a retention range and ``sandwich >= 0`` each
step runs the full model (label loss), the smallest sub-model and ``sandwich`` sub-models at retentions
drawn from the range, each distilled from the full model's detached distribution, every loss divided by
the number of passes, one optimiser step.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
import torch.nn.functional as F

from ..batching import pad_batch
from ..core.schedule import Schedule
from .common import DEFAULT_DEV, DEFAULT_TRAIN, epoch_batches, on_device, warmup_scheduler


def dev_file(s) -> str:
    """The evaluation file of a run: ``s.dev`` when given (``''``: none), else SST-2 dev when the training
    file is SST-2 train (the default), else none (another file's dev split is the user's to name)."""
    import os

    if s.dev is not None:
        return s.dev
    same = os.path.exists(s.data) and os.path.exists(DEFAULT_TRAIN) and os.path.samefile(s.data, DEFAULT_TRAIN)
    return DEFAULT_DEV if same or s.data == DEFAULT_TRAIN else ""


def check_settings(s) -> None:
    """Refuse inconsistent settings of a classifier run (retention range, sandwich, epochs, schedule).

    Raises:
        ValueError, ScheduleError: which setting, and why.
    """
    if s.retention_range is not None:
        lo_hi = tuple(s.retention_range)
        if len(lo_hi) != 2 or not 0 < lo_hi[0] <= lo_hi[1] <= 1:
            raise ValueError(f"--retention-range takes LO,HI with 0 < LO <= HI <= 1, got {s.retention_range}")
        if s.sandwich < -1:
            raise ValueError("--sandwich must be -1 (no sandwich) or at least 0")
    if s.epochs <= 0 or s.batch_size < 1:
        raise ValueError("--epochs must be > 0 and --batch-size at least 1")
    Schedule(retention=s.retention, start_layer=s.start_layer)


@dataclass
class Objective:
    """What a classifier is trained on: its logits from a pyramid pass, its label loss and its
    distillation loss.

    Attributes:
        logits: ``PyramidOutput -> (B, C)`` logits (a project head on [CLS], or a checkpoint's own head
            on the last layer's states).
        num_labels: C.
        multi_label: independent labels (a sigmoid per class, transformers' ``multi_label_classification``)
            instead of one class per text (softmax).
    """

    logits: Callable
    num_labels: int
    multi_label: bool = False

    def label_loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``(B, C)`` logits and ``(B,)`` label ids -> the batch-mean label loss.

        Single-label: cross-entropy. Multi-label: binary cross-entropy with logits against the one-hot
        of the row's label (a labelled file gives one label per row, docs/methods.md 8.6), as
        ``BertForSequenceClassification`` computes it for ``multi_label_classification``.
        """
        if self.multi_label:
            target = F.one_hot(y, self.num_labels).to(logits.dtype)  # (B, C)
            return F.binary_cross_entropy_with_logits(logits, target)
        return F.cross_entropy(logits, y)

    def teacher(self, logits: torch.Tensor) -> torch.Tensor:
        """``(B, C)`` full-length logits -> the detached float32 probabilities sub-models learn from."""
        logits = logits.detach().float()
        return torch.sigmoid(logits) if self.multi_label else torch.softmax(logits, -1)

    def distill(self, logits_sub: torch.Tensor, p_full: torch.Tensor) -> torch.Tensor:
        """In-place distillation of a sub-model from the full model, batch mean (docs/methods.md 8.5).

        Single-label: ``KL(p_sub || p_full)`` summed over classes (the authors' ``KLDivLoss(log p_full,
        p_sub)``). Multi-label: the Bernoulli ``KL(p_sub || p_full)`` of each class, averaged over classes
        (each sigmoid output is its own two-way distribution).

        Args:
            logits_sub: ``(B, C)`` the sub-model's logits (with gradient).
            p_full: ``(B, C)`` :meth:`teacher` of the full model's logits.
        """
        if self.multi_label:
            log_p = F.logsigmoid(logits_sub.float())  # (B, C) log p_sub
            log_q = F.logsigmoid(-logits_sub.float())  # (B, C) log (1 - p_sub)
            p = log_p.exp()
            t = p_full.clamp(1e-12, 1 - 1e-12)
            kl = p * (log_p - t.log()) + (1 - p) * (log_q - (1 - t).log())  # (B, C)
            return kl.mean(-1).mean()
        log_p_sub = torch.log_softmax(logits_sub.float(), -1)  # (B, C)
        return (log_p_sub.exp() * (log_p_sub - p_full.clamp_min(1e-12).log())).sum(-1).mean()

    def correct(self, logits: torch.Tensor, y: torch.Tensor) -> float:
        """Share of rows whose most probable label is the gold one (how evaluation scores both kinds)."""
        return float((logits.argmax(-1) == y).float().mean())


def fit(s, ids: Sequence[Sequence[int]], labels: torch.Tensor, *, groups: list[tuple[list, float]],
        full_pyramid, pyramid_at: Callable[[float], object], objective: Objective, num_layers: int, pad: int,
        name: str, lo_hi: tuple[float, float] | None, fixed_rho: float, modules: Sequence = (),
        progress: bool = True) -> tuple[float, int]:
    """Train for ``s.epochs`` passes over ``ids``; returns ``(training time in seconds, optimiser steps)``.

    Args:
        s: the run's settings (``epochs``, ``batch_size``, ``seed``, ``weight_decay``, ``warmup``,
            ``sandwich``, ``layer_drop``, ``group_by_length``, ``device``).
        ids: ``[n][N_i]`` token ids of the training rows. labels: ``(n,)`` label ids.
        groups: ``[(parameters, learning rate)]`` of AdamW (LoRA weights, a head...).
        full_pyramid: the full-length :class:`PyramidEncoder`. pyramid_at: ``rho -> PyramidEncoder`` with
            the run's selector (the full pyramid without one).
        objective: :class:`Objective`. num_layers: L (LayerDrop draws among them). pad: the pad id.
        lo_hi: LengthDrop's retention range, or None for one fixed retention ``fixed_rho`` (1.0: full length).
        modules: what moves to ``s.device`` for the loop (None entries skipped); the caller sets train
            and eval mode.

    Random streams (each seeded from ``s.seed``, so a run is reproducible): batch order ``seed``,
    sub-model retentions ``seed + 1``, LayerDrop ``seed + 2``, stochastic selectors ``seed + step``.
    """
    from tqdm.auto import tqdm

    rng = random.Random(s.seed)
    draw = random.Random(s.seed + 1)  # retentions of LengthDrop's sub-models
    layer_draw = random.Random(s.seed + 2)  # LayerDrop's skipped layers (sub-models only)

    def skipped() -> frozenset:
        if s.layer_drop <= 0:
            return frozenset()
        return frozenset(j for j in range(1, num_layers + 1) if layer_draw.random() < s.layer_drop)

    total = max(1, int(round(math.ceil(len(ids) / s.batch_size) * s.epochs)))
    params = [p for group, _ in groups for p in group]
    optimizer = torch.optim.AdamW([{"params": g, "lr": lr} for g, lr in groups], weight_decay=s.weight_decay)
    scheduler = warmup_scheduler(optimizer, total, s.warmup)
    t_start = time.perf_counter()
    bar = tqdm(total=total, desc=f"train {name}", unit="step", disable=not progress)
    step, ema_loss, ema_acc = 0, None, None
    with on_device(s.device, *modules) as device:
        while step < total:
            for chunk in epoch_batches(ids, s.batch_size, rng, s.group_by_length):
                if step >= total:
                    break
                batch = pad_batch([ids[i] for i in chunk], pad).to(device)
                y = labels[chunk].to(device)
                optimizer.zero_grad(set_to_none=True)
                if lo_hi is not None and s.sandwich >= 0:
                    # LengthDrop's sandwich rule with in-place distillation (docs/methods.md 8.5): the full
                    # model learns from the labels, each sub-model from the full model's (detached) distribution.
                    parts = s.sandwich + 2
                    out = full_pyramid(batch.input_ids, batch.attention_mask, seed=s.seed + step)
                    logits = objective.logits(out)  # (B, C)
                    loss = objective.label_loss(logits, y)
                    (loss / parts).backward()
                    p_full = objective.teacher(logits)  # (B, C)
                    for i in range(s.sandwich + 1):
                        rho = lo_hi[0] if i == 0 else draw.uniform(*lo_hi)
                        sub = pyramid_at(rho)(batch.input_ids, batch.attention_mask, seed=s.seed + step * 31 + i,
                                              skip_layers=skipped())
                        (objective.distill(objective.logits(sub), p_full) / parts).backward()
                else:
                    rho = draw.uniform(*lo_hi) if lo_hi is not None else fixed_rho
                    out = pyramid_at(rho)(batch.input_ids, batch.attention_mask, seed=s.seed + step)
                    logits = objective.logits(out)  # (B, C)
                    loss = objective.label_loss(logits, y)
                    loss.backward()
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                optimizer.step()
                scheduler.step()
                step += 1
                acc = objective.correct(logits, y)
                lv = loss.item()
                ema_loss = lv if ema_loss is None else 0.98 * ema_loss + 0.02 * lv
                ema_acc = acc if ema_acc is None else 0.98 * ema_acc + 0.02 * acc
                bar.update(1)
                bar.set_postfix(loss=f"{ema_loss:.3f}", acc=f"{ema_acc:.3f}")
    bar.close()
    return time.perf_counter() - t_start, total
