"""Fine-tuning a sequence classifier with LoRA (peft), optionally with the pyramid in the loop.

The encoder is the base model with LoRA adapters on every linear layer of its BERT layers
(:func:`pyramid.classifier.lora_config`); the head is :class:`ClassificationHead` on the [CLS]
state after the last layer. The forward pass is :class:`PyramidEncoder`: with
``Schedule(retention=1.0)`` nothing is dropped (the ordinary full-length model); with a selector and
a schedule, selection is active in training exactly as at inference, which is Pyramid-BERT's
fine-tuning procedure (methods.md 1.5). Optimiser: AdamW with linear warm-up and decay, as in the
standard GLUE recipe methods.md 1.5 names; LoRA needs a larger learning rate than full fine-tuning
(the project default 5e-4 is the usual LoRA setting, [UNCONFIRMED] for Pyramid-BERT).
"""

from __future__ import annotations

import copy
import math
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import torch

from .batching import encode_texts, pad_batch, pad_id_of
from .classifier import ClassificationHead, HeadConfig, SequenceClassifier, lora_config
from .data import read_labelled
from .encoder import PyramidEncoder
from .loading import LoadedEncoder, encoder_from_model
from .schedule import Schedule
from .selectors import get_selector


@dataclass
class TrainSettings:
    """Settings of one fine-tuning run (all recorded in the model card).

    Attributes:
        data: training file (TSV/CSV, see :func:`pyramid.data.read_labelled`).
        dev: evaluation file, or None.
        out: artifact folder to write.
        name: artifact name.
        selector: None for full-length fine-tuning, or a selector name (``coreset``) to fine-tune
            with the pyramid in the loop.
        retention, start_layer: the schedule used with ``selector``.
        epochs: passes over the (limited) training data; fractions allowed.
        limit: use only the first ``limit`` shuffled training rows (None = all).
        batch_size: examples per step.
        lr: learning rate of the LoRA weights; head_lr: of the head.
        weight_decay, warmup: AdamW weight decay; warm-up share of the steps.
        lora_r, lora_alpha, lora_dropout: LoRA rank, scaling numerator, dropout.
        max_length: truncation of training texts (tokens).
        seed: seeds shuffling, initialisation, dropout and stochastic selectors.
        labels: label names (index = id).
        command: the command line that ran this (for the model card).
        retention_range: ``(lo, hi)``: LengthDrop (Kim & Cho, ACL 2021; methods.md 8.5): every
            pass draws its final retention uniformly from this range instead of using ``retention``,
            so that one model serves every retention in it. None: the fixed ``retention``.
        sandwich: with ``retention_range``, LengthDrop's sandwich rule with in-place distillation:
            per step a full-length pass (label cross-entropy), the smallest sub-model (``lo``) and
            ``sandwich`` sub-models at random retentions, each trained with ``KL(p_sub || p_full)``
            (full logits detached), every loss divided by ``sandwich + 2``, one optimiser step
            (methods.md 8.5, [code]). ``-1``: no sandwich, one pass per step at a random retention
            with the label cross-entropy.
        init_head: start from this trained head's LoRA and head weights (a shipped name or folder;
            its LoRA shape must equal ``lora_r``/``lora_alpha``) instead of fresh ones.
    """

    data: str
    out: str
    name: str
    dev: str | None = None
    selector: str | None = None
    retention: float = 0.3
    start_layer: int = 1
    epochs: float = 1.0
    limit: int | None = None
    batch_size: int = 32
    lr: float = 5e-4
    head_lr: float = 1e-3
    weight_decay: float = 0.01
    warmup: float = 0.06
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    max_length: int = 128
    seed: int = 0
    labels: Sequence[str] = ("negative", "positive")
    command: str = ""
    retention_range: tuple[float, float] | None = None
    sandwich: int = 2
    init_head: str | None = None


def linear_warmup_decay(step: int, total: int, warmup: int) -> float:
    """Learning-rate factor: linear warm-up over ``warmup`` steps, then linear decay to 0 at ``total``."""
    if step < warmup:
        return (step + 1) / max(1, warmup)
    return max(0.0, (total - step) / max(1, total - warmup))


def train_classifier(base: LoadedEncoder, settings: TrainSettings, *, progress: bool = True) -> SequenceClassifier:
    """Fine-tune LoRA adapters and a head on ``settings.data``, write the artifact, return the model.

    The base encoder is not modified (its weights are copied). Writes into ``settings.out``:
    ``adapter_config.json``, ``adapter_model.safetensors``, ``head.safetensors``,
    ``head_config.json`` and ``README.md`` (model card).

    Returns:
        The trained :class:`SequenceClassifier` (LoRA merged, eval mode).

    Raises:
        DataError: unreadable data. KeyError: unknown selector. ScheduleError: bad schedule.
    """
    from peft import get_peft_model
    from safetensors.torch import save_file
    from tqdm.auto import tqdm

    s = settings
    torch.manual_seed(s.seed)
    rng = random.Random(s.seed)
    data = read_labelled(s.data, label_names=s.labels)
    order = list(range(len(data)))
    rng.shuffle(order)
    if s.limit is not None:
        order = order[: s.limit]
    texts = [data.texts[i] for i in order]
    labels = torch.tensor([data.labels[i] for i in order])

    model = copy.deepcopy(base.model)
    head = ClassificationHead(base.config.hidden_size, len(s.labels), dropout=0.1)
    if s.init_head:
        from peft import PeftModel
        from safetensors.torch import load_file

        from .classifier import HeadConfig as _HC, resolve_head_path

        init_path = resolve_head_path(s.init_head)
        init_cfg = _HC.from_json((init_path / "head_config.json").read_text(encoding="utf-8"))
        if (init_cfg.lora.get("r"), init_cfg.lora.get("alpha")) != (s.lora_r, s.lora_alpha):
            raise ValueError(f"--init-head {s.init_head} has LoRA r={init_cfg.lora.get('r')}, "
                             f"alpha={init_cfg.lora.get('alpha')}; this run asks for r={s.lora_r}, alpha={s.lora_alpha}")
        peft_model = PeftModel.from_pretrained(model, str(init_path), is_trainable=True)
        head.load_state_dict(load_file(str(init_path / "head.safetensors")))
    else:
        peft_model = get_peft_model(model, lora_config(s.lora_r, s.lora_alpha, s.lora_dropout))
    encoder = encoder_from_model(model, base.tokenizer, name=base.name)
    if s.selector:
        selector = get_selector(s.selector)
        if not selector.uses_retention:
            raise ValueError(f"the {s.selector} selector sets its own lengths; train it with its own command")
    else:
        selector = None
    full_pyramid = PyramidEncoder(encoder, get_selector("first-k"), Schedule(retention=1.0))

    def pyramid_at(rho: float) -> PyramidEncoder:
        """The pyramid with the run's selector at final retention ``rho`` (full length without a selector)."""
        if selector is None or rho >= 1.0:
            return full_pyramid
        return PyramidEncoder(encoder, selector, Schedule(retention=rho, start_layer=s.start_layer))

    lo_hi = tuple(s.retention_range) if (s.retention_range and selector is not None) else None

    ids = encode_texts(encoder, texts, s.max_length)
    pad = pad_id_of(encoder)
    steps_per_epoch = math.ceil(len(ids) / s.batch_size)
    total = max(1, int(round(steps_per_epoch * s.epochs)))
    warmup = int(s.warmup * total)
    lora_params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        [{"params": lora_params, "lr": s.lr}, {"params": head.parameters(), "lr": s.head_lr}],
        weight_decay=s.weight_decay,
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda st: linear_warmup_decay(st, total, warmup))
    loss_fn = torch.nn.CrossEntropyLoss()
    draw = random.Random(s.seed + 1)  # retentions of LengthDrop's sub-models

    model.train()
    head.train()
    t_start = time.perf_counter()
    bar = tqdm(total=total, desc=f"train {s.name}", unit="step", disable=not progress)
    step, ema_loss, ema_acc = 0, None, None
    while step < total:
        perm = list(range(len(ids)))
        rng.shuffle(perm)
        for b in range(0, len(perm), s.batch_size):
            if step >= total:
                break
            chunk = perm[b:b + s.batch_size]
            batch = pad_batch([ids[i] for i in chunk], pad)
            y = labels[chunk]
            optimizer.zero_grad(set_to_none=True)
            if lo_hi is not None and s.sandwich >= 0:
                # LengthDrop's sandwich rule with in-place distillation (methods.md 8.5): the full model
                # learns from the labels, each sub-model from the full model's (detached) distribution.
                parts = s.sandwich + 2
                out = full_pyramid(batch.input_ids, batch.attention_mask, seed=s.seed + step)
                logits = head(out.cls_hidden)  # (B, C)
                loss = loss_fn(logits, y)
                (loss / parts).backward()
                p_full = torch.softmax(logits.detach().float(), -1)  # (B, C)
                for i in range(s.sandwich + 1):
                    rho = lo_hi[0] if i == 0 else draw.uniform(*lo_hi)
                    sub = pyramid_at(rho)(batch.input_ids, batch.attention_mask, seed=s.seed + step * 31 + i)
                    log_p_sub = torch.log_softmax(head(sub.cls_hidden).float(), -1)  # (B, C)
                    # KL(p_sub || p_full), batch mean, as the authors' KLDivLoss(log p_full, p_sub)
                    kl = (log_p_sub.exp() * (log_p_sub - p_full.clamp_min(1e-12).log())).sum(-1).mean()
                    (kl / parts).backward()
            else:
                rho = draw.uniform(*lo_hi) if lo_hi is not None else (s.retention if selector is not None else 1.0)
                out = pyramid_at(rho)(batch.input_ids, batch.attention_mask, seed=s.seed + step)
                logits = head(out.cls_hidden)  # (B, C)
                loss = loss_fn(logits, y)
                loss.backward()
            torch.nn.utils.clip_grad_norm_(lora_params + list(head.parameters()), 1.0)
            optimizer.step()
            scheduler.step()
            step += 1
            acc = float((logits.argmax(-1) == y).float().mean())
            lv = loss.item()
            ema_loss = lv if ema_loss is None else 0.98 * ema_loss + 0.02 * lv
            ema_acc = acc if ema_acc is None else 0.98 * ema_acc + 0.02 * acc
            bar.update(1)
            bar.set_postfix(loss=f"{ema_loss:.3f}", acc=f"{ema_acc:.3f}")
    bar.close()
    train_seconds = time.perf_counter() - t_start

    out_dir = Path(s.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.eval()
    head.eval()
    peft_model.save_pretrained(str(out_dir))
    save_file({k: v.contiguous() for k, v in head.state_dict().items()}, str(out_dir / "head.safetensors"))

    trained_with = None
    if s.selector:
        trained_with = {"selector": s.selector, "retention": s.retention, "start_layer": s.start_layer}
        if lo_hi is not None:
            trained_with.update(retention_range=list(lo_hi), sandwich=s.sandwich)
        if s.init_head:
            trained_with["init_head"] = s.init_head
    config = HeadConfig(
        name=s.name, labels=list(s.labels), base_model=base.name, hidden_size=base.config.hidden_size,
        num_layers=base.num_layers,
        lora={"r": s.lora_r, "alpha": s.lora_alpha, "dropout": s.lora_dropout,
              "target_modules": sorted(peft_model.peft_config["default"].target_modules)},
        trained_with=trained_with, max_length=s.max_length,
        training={**{k: v for k, v in asdict(s).items() if k not in ("out", "command")},
                  "labels": list(s.labels), "examples": len(ids), "steps": total,
                  "retention_range": list(s.retention_range) if s.retention_range else None,
                  "train_seconds": round(train_seconds, 1), "command": s.command,
                  "torch": torch.__version__},
    )
    (out_dir / "head_config.json").write_text(config.to_json(), encoding="utf-8")

    from .classifier import load_classifier
    classifier = load_classifier(out_dir, base)
    if s.dev:
        from .evaluation import accuracy_of

        dev = read_labelled(s.dev, label_names=s.labels)
        config.metrics["dev"] = s.dev
        config.metrics["dev_accuracy_full_length"] = round(accuracy_of(classifier, dev), 4)
        if s.selector:
            rhos = (0.5, 0.3, 0.1) if lo_hi is not None else (s.retention,)
            for rho in rhos:
                config.metrics[f"dev_accuracy_{s.selector}_rho{rho}"] = round(
                    accuracy_of(classifier, dev, s.selector, rho, s.start_layer), 4)
        classifier.config = config
        (out_dir / "head_config.json").write_text(config.to_json(), encoding="utf-8")
    (out_dir / "README.md").write_text(model_card(config, out_dir), encoding="utf-8")
    return classifier


def model_card(config: HeadConfig, folder: Path) -> str:
    """A Markdown model card: what the head is, data, hyper-parameters, command, metrics, files."""
    t = config.training
    tw = config.trained_with
    if not tw:
        how = "at full length (selection only at inference)"
    elif tw.get("retention_range"):
        lo, hi = tw["retention_range"]
        rule = (f"LengthDrop's sandwich rule (Kim & Cho, ACL 2021): per step the full model (label loss), the "
                f"smallest sub-model (rho = {lo}) and {tw.get('sandwich')} sub-models at retentions drawn from "
                f"[{lo}, {hi}], each distilled from the full model with KL(p_sub || p_full) (methods.md 8.5)"
                if tw.get("sandwich", -1) >= 0 else
                f"the final retention drawn per step uniformly from [{lo}, {hi}] (LengthDrop's length sampling)")
        how = (f"with `{tw['selector']}` selection in the loop (Train-Select), start layer {tw['start_layer']}, "
               f"using {rule}; one model for every retention in that range")
    else:
        how = (f"with `{tw['selector']}` selection in the loop (Train-Select) at the fixed final retention "
               f"{tw['retention']}, start layer {tw['start_layer']} (Pyramid-BERT's procedure, methods.md 1.5)")
    if tw and tw.get("init_head"):
        how += f", starting from the trained head `{tw['init_head']}` (its LoRA and head weights)"
    sizes = "\n".join(f"| `{p.name}` | {p.stat().st_size / 1e6:.2f} MB |"
                      for p in sorted(folder.iterdir()) if p.is_file() and p.name != "README.md")
    metrics = "\n".join(f"| {k} | {v} |" for k, v in config.metrics.items()) or "| (none) | |"
    hp = "\n".join(f"| {k} | {t[k]} |" for k in (
        "epochs", "limit", "examples", "steps", "batch_size", "lr", "head_lr", "weight_decay", "warmup",
        "lora_r", "lora_alpha", "lora_dropout", "max_length", "seed", "train_seconds", "torch") if k in t)
    return f"""# {config.name}: binary sentiment head for {config.base_model}

LoRA adapters (peft) on every linear layer of the encoder's {config.num_layers} BERT layers
(`{', '.join(config.lora['target_modules'])}`, r = {config.lora['r']}, alpha = {config.lora['alpha']}) and a
classification head (dense, tanh, linear) on the [CLS] state after the last layer. Labels:
{', '.join(f'{i} = {n}' for i, n in enumerate(config.labels))}.

Fine-tuned {how}.

## Data
Training: `{t.get('data')}` (shuffled with seed {t.get('seed')}, first {t.get('examples')} rows used).
Evaluation: `{config.metrics.get('dev', 'none')}`.

## Metrics
| metric | value |
|---|---|
{metrics}

## Hyper-parameters
| name | value |
|---|---|
{hp}

## Command
    {t.get('command') or '(not recorded)'}

## Files
| file | size |
|---|---|
{sizes}

## Limits
Trained on SST-2 movie-review phrases: English, short, lower-cased, pre-tokenised text. Long reviews
(IMDB) are out of its training distribution; expect lower accuracy there. Not for decisions about people.
"""
