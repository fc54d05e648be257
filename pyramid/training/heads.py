"""Fine-tuning a sentiment head with LoRA (peft), at full length or with a selector in the loop.

The encoder is the base model with LoRA adapters on every linear layer of its BERT layers
(:func:`pyramid.classifier.lora_config`); the head is :class:`ClassificationHead` on the [CLS]
state after the last layer. The forward pass is :class:`PyramidEncoder`: without a selector nothing
is dropped (the ordinary full-length model, ``sst2-lora``); with one, selection is active in training
exactly as at inference (Train-Select, docs/methods.md 1.5 and 8):

* at a fixed final retention (Pyramid-BERT's setting, ``--retention``), or
* with LengthDrop (Kim & Cho, ACL 2021; docs/methods.md 8.5, ``--retention-range``): each pass draws
  its retention from a range, by default with the sandwich rule and in-place distillation (the full
  model learns from the labels, the smallest and ``sandwich`` random sub-models from the full
  model's distribution with ``KL(p_sub || p_full)``), so that one model serves every retention.

Optimiser: AdamW with linear warm-up and decay (the GLUE recipe, docs/methods.md 1.5); LoRA needs a
larger learning rate than full fine-tuning (1e-3 here, [UNCONFIRMED] for the papers, which fine-tune
every weight at 2e-5 to 5e-5).
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Sequence

import torch

from ..core.artifacts import DEFAULT_HEAD, HEADS_DIR
from ..batching import encode_texts, pad_id_of
from ..classifier import PYRAMID_HEAD, ClassificationHead, HeadConfig, SequenceClassifier, lora_config
from ..data import read_labelled
from ..core.encoder import PyramidEncoder
from ..core.loading import LoadedEncoder, encoder_from_model
from ..core.schedule import Schedule
from ..core.selectors import Selector, full_length_selector, get_selector
from .. import argtypes as at
from .common import (DEFAULT_TRAIN, DEVICE_HELP, SST2_LABELS, ModelCard, TrainerCommand, comma_strings,
                     option, shuffled_rows, training_labels)
from .lengthdrop import Objective, check_settings, dev_file, fit


@dataclass
class TrainSettings:
    """Settings of one fine-tuning run (all recorded in the model card)."""

    data: str = option(DEFAULT_TRAIN, "training file (TSV/CSV with a text and a label column)")
    out: str | None = option(None, "artifact folder (default assets/heads/NAME; beside the --init-head folder for "
                                   "its Train-Select head)")
    name: str | None = option(None, "artifact name (default sst2-lora; sst2-lora-pyramid with --selector; "
                                    "sst2-lora-ts-SELECTOR with --retention-range; HEAD-ts-SELECTOR with "
                                    "--init-head HEAD)")
    dev: str | None = option(None, "evaluation file measured after training ('' for none; default: SST-2 dev when "
                                   "--data is SST-2 train, else none)")
    selector: str | None = option(None, "fine-tune with this selector in the loop (Train-Select), e.g. coreset",
                                  parse=at.selector_name)
    retention: float = option(0.3, "final retention of the schedule with --selector", parse=at.retention)
    start_layer: int = option(1, "schedule start layer with --selector", parse=at.int_at_least(1, "--start-layer"))
    epochs: float = option(1.0, "passes over the (limited) training rows; fractions allowed", parse=at.positive_float)
    limit: int | None = option(None, "use only this many shuffled training rows (0 = all)", parse=at.limit_or_all)
    batch_size: int = option(32, "examples per step", parse=at.int_at_least(1, "--batch-size"))
    lr: float = option(1e-3, "learning rate of the LoRA weights", parse=at.positive_float)
    head_lr: float = option(1e-3, "learning rate of the classification head", parse=at.positive_float)
    weight_decay: float = option(0.01, "AdamW weight decay", parse=at.nonneg_float)
    warmup: float = option(0.06, "warm-up share of the steps", parse=at.share)
    lora_r: int = option(16, "LoRA rank", parse=at.int_at_least(1, "--lora-r"))
    lora_alpha: int = option(32, "LoRA scaling numerator", parse=at.int_at_least(1, "--lora-alpha"))
    lora_dropout: float = option(0.05, "LoRA dropout", parse=at.share)
    max_length: int = option(128, "truncation of training texts (tokens)", parse=at.max_length)
    seed: int = option(0, "seeds shuffling, initialisation, dropout and stochastic selectors", parse=at.seed)
    group_by_length: bool = option(True, "batches of texts of similar length (less padding), shuffled", parse=at.boolean)
    device: str = option("cpu", DEVICE_HELP, parse=at.device)
    retention_range: tuple[float, float] | None = option(
        None, "LO,HI: with --selector, each pass draws its final retention from this range (LengthDrop), so "
              "that one model serves every retention in it", parse=at.retention_range, metavar="LO,HI")
    sandwich: int = option(2, parse=at.int_at_least(-1, "--sandwich"), help="with --retention-range: LengthDrop's sandwich rule with N random sub-models plus the "
                              "full and the smallest, distilled from the full model; -1 = one pass per step at a "
                              "random retention with the label loss")
    init_head: str | None = option(None, "start from this trained head's LoRA and head weights (shipped name or "
                                         "folder); its LoRA rank and alpha replace --lora-r and --lora-alpha")
    layer_drop: float = option(0.0, "LengthDrop's LayerDrop: each layer of a sub-model's pass is skipped with this "
                                     "probability (the authors train with 0.2; 0 = off, the shipped models)",
                               parse=at.share)
    detach_rejoined: bool = option(False, "Token Dropping: rejoined states carry no gradient to the layers before "
                                          "the drop (the shipped model's training; the authors keep it)",
                                   parse=at.boolean)
    init_head_label: str | None = option(None, "how the model card names the starting head (default: its path)",
                                         cli=False)
    fp16_weights: bool = option(True, "store the LoRA weights in float16 (half the file; loaded back into float32)",
                                parse=at.boolean)
    labels: Sequence[str] | None = option(None, "comma-separated label names in id order (default: from the file; SST-2's "
                                                "0/1 are negative, positive; a checkpoint's own id2label with --model)",
                                          parse=comma_strings, metavar="A,B,...")
    text_column: str | None = option(None, "text column of --data (guessed: sentence, text, review...)")
    label_column: str | None = option(None, "label column of --data (guessed: label, sentiment...)")
    full: bool = option(False, "with --model CHECKPOINT: fine-tune every weight instead of LoRA adapters",
                        parse=at.boolean)
    full_lr: float = option(2e-5, "learning rate of every weight with --full (the GLUE recipe's)",
                            parse=at.positive_float)
    proportional_attention: bool = option(
        True, "merging selectors (tome, coreset-pool): add log(size) to later attention logits while training (the "
              "shipped models; ToMe's timm patch advises off for training, docs/methods.md 10.2). The model runs "
              "with it on unless told otherwise", parse=at.boolean)
    command: str = option("", "the command line that ran this", cli=False)


def _default_names(s: TrainSettings) -> dict:
    if s.name:
        name = s.name
    elif s.selector and s.retention_range and s.init_head:
        from ..core.artifacts import head_train_select_name

        name = head_train_select_name(s.init_head, s.selector)  # sst2-lora-ts-S from sst2-lora
        if Path(s.init_head).is_dir() and not s.out:  # beside the head it starts from, where evaluate finds it
            return {"name": name, "out": str(Path(s.init_head).resolve().parent / name)}
    elif s.selector and s.retention_range:
        from ..core.artifacts import train_select_head_name

        name = train_select_head_name(s.selector)
    elif s.selector:
        name = PYRAMID_HEAD
    else:
        name = DEFAULT_HEAD
    return {"name": name, "out": s.out or str(HEADS_DIR / name)}


def train_classifier(base: LoadedEncoder, settings: TrainSettings, *, progress: bool = True,
                     selector: Selector | None = None) -> SequenceClassifier:
    """Fine-tune LoRA adapters and a head on ``settings.data``, write the artifact, return the model.

    The base encoder is not modified (its weights are copied). Writes into ``settings.out``:
    ``adapter_config.json``, ``adapter_model.safetensors``, ``head.safetensors``,
    ``head_config.json`` and ``README.md`` (model card).

    Args:
        base: the base encoder.
        settings: :class:`TrainSettings`.
        selector: a selector instance to train with instead of ``settings.selector`` (for instance
            LTP's hard stage with its learned thresholds).

    Returns:
        The trained :class:`SequenceClassifier` (LoRA merged, eval mode).

    Raises:
        DataError: unreadable data. KeyError: unknown selector. ScheduleError: bad schedule.
        ValueError: bad settings, or a selector that sets its own lengths given by name.
    """
    s = settings
    check_settings(s)
    names = _default_names(s)
    torch.manual_seed(s.seed)
    data = read_labelled(s.data, s.text_column, s.label_column, label_names=s.labels or None)
    s = replace(s, labels=training_labels(data, s.labels), dev=dev_file(s))
    order = shuffled_rows(len(data), s.seed, s.limit)
    texts = [data.texts[i] for i in order]
    labels = torch.tensor([data.labels[i] for i in order])

    if s.init_head:  # the adapter's shape is the starting head's
        from ..classifier import resolve_head_path

        init_cfg = HeadConfig.from_json((resolve_head_path(s.init_head) / "head_config.json").read_text(encoding="utf-8"))
        s = replace(s, lora_r=int(init_cfg.lora.get("r", s.lora_r)), lora_alpha=int(init_cfg.lora.get("alpha", s.lora_alpha)),
                    lora_dropout=float(init_cfg.lora.get("dropout", s.lora_dropout)))
    peft_model, model, head = trainable_head(base, s.init_head, s.lora_r, s.lora_alpha, s.lora_dropout, len(s.labels))
    encoder = encoder_from_model(model, base.tokenizer, name=base.name)
    if selector is None and s.selector:
        selector = get_selector(s.selector)
        if not selector.uses_retention:
            raise ValueError(f"the {s.selector} selector sets its own lengths; train it with its own command")
    full_pyramid = PyramidEncoder(encoder, full_length_selector(), Schedule(retention=1.0))
    lo_hi = tuple(s.retention_range) if (s.retention_range and selector is not None) else None

    def pyramid_at(rho: float) -> PyramidEncoder:
        """The pyramid with the run's selector at final retention ``rho`` (full length without one)."""
        if selector is None or (rho >= 1.0 and selector.uses_retention):
            return full_pyramid
        options = {"detach_parked": True} if s.detach_rejoined and selector.routing == "rejoin" else None
        return PyramidEncoder(encoder, selector, Schedule(retention=rho, start_layer=s.start_layer),
                              proportional_attention=s.proportional_attention, routing_options=options)

    ids = encode_texts(encoder, texts, s.max_length)
    lora_params = [p for p in model.parameters() if p.requires_grad]
    objective = Objective(logits=lambda out: head(out.cls_hidden), num_labels=len(s.labels))  # (B, C)
    model.train()
    head.train()
    train_seconds, total = fit(s, ids, labels, groups=[(lora_params, s.lr), (list(head.parameters()), s.head_lr)],
                        full_pyramid=full_pyramid, pyramid_at=pyramid_at, objective=objective,
                        num_layers=encoder.num_layers, pad=pad_id_of(encoder), name=names["name"], lo_hi=lo_hi,
                        fixed_rho=s.retention if selector is not None else 1.0,
                        modules=(model, head, getattr(selector, "weights", None)), progress=progress)

    model.eval()
    head.eval()
    trained_with = None
    if selector is not None:
        trained_with = {"selector": selector.name, "retention": s.retention, "start_layer": s.start_layer}
        if lo_hi is not None:
            trained_with.update(retention_range=list(lo_hi), sandwich=s.sandwich)
        if not selector.uses_retention:
            trained_with.update(retention=None, start_layer=None)
    if s.init_head:
        trained_with = {**(trained_with or {}), "init_head": s.init_head_label or s.init_head}
    out_dir = Path(names["out"])
    training = {**{k: v for k, v in asdict(s).items()
                   if k not in ("out", "command", "name", "fp16_weights", "init_head_label")},
                "init_head": s.init_head_label or s.init_head,
                "labels": list(s.labels), "examples": len(ids), "steps": total,
                "retention_range": list(s.retention_range) if s.retention_range else None,
                "train_seconds": round(train_seconds, 1), "command": s.command}
    config = write_head(out_dir, base, peft_model, head, name=names["name"], training=training,
                        trained_with=trained_with, labels=s.labels, max_length=s.max_length, fp16=s.fp16_weights)

    from ..classifier import load_classifier

    classifier = load_classifier(out_dir, base)
    if s.dev:
        from ..analysis.evaluation import accuracy_of

        dev = read_labelled(s.dev, s.text_column, s.label_column, label_names=s.labels)
        config.metrics["dev"] = s.dev
        config.metrics["dev_accuracy_full_length"] = round(accuracy_of(classifier, dev), 4)
        if selector is not None:
            rhos = (0.5, 0.3, 0.1) if lo_hi is not None else ((s.retention,) if selector.uses_retention else (1.0,))
            for rho in rhos:
                key = f"dev_accuracy_{selector.name}" + (f"_rho{rho}" if selector.uses_retention else "")
                config.metrics[key] = round(accuracy_of(classifier, dev, selector, rho, s.start_layer), 4)
        classifier.config = config
        (out_dir / "head_config.json").write_text(config.to_json(), encoding="utf-8")
        model_card(config).write(out_dir)
    return classifier


def trainable_head(base: LoadedEncoder, init_head: str | None = None, lora_r: int = 16, lora_alpha: int = 32,
                   lora_dropout: float = 0.05, num_labels: int | None = None):
    """A private copy of the base model with trainable LoRA adapters, and a classification head.

    Args:
        base: the base encoder (not modified).
        init_head: a trained head (shipped name or folder) whose LoRA and head weights to start
            from; its LoRA shape wins over ``lora_r``/``lora_alpha`` (checked by the caller) and its label
            count over ``num_labels``. None: fresh LoRA (B = 0, so the model starts as the base model) and
            a fresh head with ``num_labels`` outputs.

    Returns:
        ``(peft_model, model, head)``: ``model`` is the copy with LoRA layers inside (what the
        pyramid runs), ``peft_model`` the peft wrapper that saves the adapter.

    Raises:
        HeadLoadError: ``init_head`` cannot be found.
    """
    from peft import PeftModel, get_peft_model
    from safetensors.torch import load_file

    from ..classifier import resolve_head_path

    model = copy.deepcopy(base.model)
    if init_head is not None:  # the starting head's own label count
        num_labels = len(HeadConfig.from_json((resolve_head_path(init_head) / "head_config.json")
                                              .read_text(encoding="utf-8")).labels)
    if num_labels is None:
        raise ValueError("a fresh head needs its number of labels")
    head = ClassificationHead(base.config.hidden_size, num_labels, dropout=0.1)
    if init_head is None:
        return get_peft_model(model, lora_config(lora_r, lora_alpha, lora_dropout, family=base.family)), model, head
    path = resolve_head_path(init_head)
    peft_model = PeftModel.from_pretrained(model, str(path), is_trainable=True)
    for p in peft_model.parameters():  # fp16-stored adapters come back in float32
        if p.requires_grad and p.dtype != torch.float32:
            p.data = p.data.float()
    head.load_state_dict({k: v.float() for k, v in load_file(str(path / "head.safetensors")).items()})
    return peft_model, model, head


def write_head(out_dir: Path, base: LoadedEncoder, peft_model, head: ClassificationHead, *, name: str,
               training: dict, labels: Sequence[str], trained_with: dict | None = None,
               max_length: int = 128, fp16: bool = True, summary_extra: str = "") -> HeadConfig:
    """Write a head artifact (adapter, head weights, ``head_config.json``, model card) into ``out_dir``.

    Args:
        peft_model: the peft wrapper whose adapter to save. head: the trained classification head.
        name: the artifact name. training: what the card's hyper-parameter table shows (with
            ``data``, ``command``). labels: the head's label names in id order (any number).
            trained_with: the selector it was fine-tuned with, if any.
        fp16: store the LoRA weights in float16 (half the size; loaded back into float32).
        summary_extra: a sentence added to the card's summary.

    Returns:
        The written :class:`HeadConfig`.
    """
    from safetensors.torch import save_file

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    peft_model.save_pretrained(str(out_dir))
    if fp16:
        _to_fp16(out_dir / "adapter_model.safetensors")
    save_file({k: v.detach().contiguous() for k, v in head.state_dict().items()}, str(out_dir / "head.safetensors"))
    lora = peft_model.peft_config["default"]
    config = HeadConfig(
        name=name, labels=list(labels), base_model=base.name, hidden_size=base.config.hidden_size,
        num_layers=base.num_layers,
        lora={"r": lora.r, "alpha": lora.lora_alpha, "dropout": lora.lora_dropout,
              "target_modules": sorted(lora.target_modules)},
        trained_with=trained_with, max_length=max_length,
        training={**training, "fp16_weights": fp16, "torch": torch.__version__},
    )
    (out_dir / "head_config.json").write_text(config.to_json(), encoding="utf-8")
    card = model_card(config)
    if summary_extra:
        card.summary += " " + summary_extra
    card.write(out_dir)
    return config


def record_head_metrics(out_dir: Path, metrics: dict, summary_extra: str = "") -> None:
    """Put dev figures measured after :func:`write_head` (those of a selection trained jointly with the
    head) into the head's ``head_config.json`` and re-write its model card.

    Args:
        out_dir: the folder :func:`write_head` wrote. metrics: metric name -> value, added to the config's.
        summary_extra: the same sentence given to :func:`write_head`, if any.

    Raises:
        OSError: ``out_dir`` holds no ``head_config.json``.
    """
    from ..classifier import HeadConfig

    out_dir = Path(out_dir)
    config = HeadConfig.from_json((out_dir / "head_config.json").read_text(encoding="utf-8"))
    config.metrics.update(metrics)
    (out_dir / "head_config.json").write_text(config.to_json(), encoding="utf-8")
    card = model_card(config)
    if summary_extra:
        card.summary += " " + summary_extra
    card.write(out_dir)


def _to_fp16(path: Path) -> None:
    """Rewrite a safetensors file with every floating tensor in float16."""
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(path))
    save_file({k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in tensors.items()}, str(path))


def model_card(config: HeadConfig) -> ModelCard:
    """The model card of a head: what it is, how it was fine-tuned, data, metrics, command."""
    t = config.training
    tw = config.trained_with or {}
    if not tw.get("selector"):
        how = "Fine-tuned at full length (selection only at inference): the model of the inference-only regime."
    elif tw.get("retention_range"):
        lo, hi = tw["retention_range"]
        rule = (f"LengthDrop's sandwich rule (Kim & Cho, ACL 2021; docs/methods.md 8.5): per step the full model "
                f"(label loss), the smallest sub-model (rho = {lo}) and {tw.get('sandwich')} sub-models at retentions "
                f"drawn from [{lo}, {hi}], each distilled from the full model with KL(p_sub || p_full), every loss "
                f"divided by {int(tw.get('sandwich', 0)) + 2}, one optimiser step"
                if tw.get("sandwich", -1) >= 0 else
                f"the final retention drawn per step uniformly from [{lo}, {hi}] (LengthDrop's length sampling)")
        how = (f"Fine-tuned with `{tw['selector']}` selection in the loop (Train-Select), start layer "
               f"{tw['start_layer']}, using {rule}: one model for every retention in that range. The schedule is "
               "the project's geometric one with a retention drawn per sub-model (LengthDrop draws each layer's "
               "length; a stated deviation).")
    elif tw.get("retention") is None and t.get("method"):
        how = (f"Fine-tuned with the learned `{tw['selector']}` selection in the loop (Train-Select): {t['method']}; "
               "the selection's own card gives the details.")
    elif tw.get("retention") is None:
        how = f"Fine-tuned with the learned `{tw['selector']}` selection active in the forward pass (hard selection)."
    else:
        how = (f"Fine-tuned with `{tw['selector']}` selection in the loop (Train-Select) at the fixed final retention "
               f"{tw['retention']}, start layer {tw['start_layer']} (Pyramid-BERT's procedure, docs/methods.md 1.5).")
    if tw.get("selector") and tw.get("retention_range"):
        if "layer_drop" in t:
            how += (f" LayerDrop {t['layer_drop']:g} on the sub-models' passes (the authors train with 0.2)."
                    if t["layer_drop"] else " No LayerDrop (the authors train with 0.2: a stated project choice, "
                                             "docs/methods.md 8.5).")
        else:
            how += " No LayerDrop (the authors train with 0.2: a stated project choice, docs/methods.md 8.5)."
        if tw["selector"] == "token-dropping" and t.get("detach_rejoined", True):  # older artifacts: detached
            how += (" The rejoined tokens' states carried no gradient to the layers before the drop (the authors keep "
                    "it; docs/methods.md 4.1).")
    if tw.get("init_head"):
        start = tw["init_head"]
        start = start if " " in start else f"the trained head `{start}`"  # a path or name, or a label in words
        how += f" Started from {start} (its LoRA and head weights)."
    lora = config.lora
    n = len(config.labels)
    sentiment = [x.lower() for x in config.labels] == list(SST2_LABELS)
    kind = "binary sentiment head" if sentiment else f"{n}-label classification head"
    summary = (f"A {kind} for `{config.base_model}`: LoRA adapters (peft) on every linear layer of the "
               f"encoder's {config.num_layers} BERT layers (`{', '.join(lora['target_modules'])}`, r = {lora['r']}, "
               f"alpha = {lora['alpha']}) and a classification head (dense, tanh, linear) on the [CLS] state after "
               f"the last layer. Labels: {', '.join(f'{i} = {n}' for i, n in enumerate(config.labels))}.")
    hyper = {k: t[k] for k in ("epochs", "limit", "examples", "steps", "batch_size", "lr", "head_lr", "weight_decay",
                               "warmup", "lora_r", "lora_alpha", "lora_dropout", "max_length", "seed", "sandwich",
                               "layer_drop", "detach_rejoined", "fp16_weights", "train_seconds", "torch") if k in t}
    return ModelCard(
        title=f"{config.name}: {kind} for {config.base_model}",
        summary=summary, method=how,
        data=(f"Training: `{t.get('data')}` (shuffled with seed {t.get('seed')}, first {t.get('examples')} rows used).\n"
              f"Evaluation: `{config.metrics.get('dev', 'none')}`."),
        metrics=config.metrics, hyper=hyper, command=t.get("command", ""),
        limits=("Trained on SST-2 movie-review phrases: English, short, lower-cased, pre-tokenised text. Long reviews "
                "(IMDB) are out of its training distribution; expect lower accuracy there. Not for decisions about people."
                if "sst2" in str(t.get("data", "")).lower() else
                f"Trained on `{t.get('data')}` only: expect lower accuracy on text unlike it. Not for decisions about "
                "people."),
    )


def run(settings: TrainSettings, base: LoadedEncoder, progress: bool = True) -> dict:
    """``python -m pyramid train``: train and return the JSON summary.

    On a fine-tuned classifier checkpoint (``--model DIR`` whose config names a ``*ForSequenceClassification``)
    this fine-tunes the checkpoint's own Train-Select model (:func:`pyramid.training.checkpoint.train_checkpoint`);
    on an encoder, a LoRA head of the project's kind.

    Raises:
        ValueError: a checkpoint whose head Pyramid Lens cannot train (a regression head), see the trainers.
    """
    if base.has_own_head:
        from .checkpoint import train_checkpoint

        return train_checkpoint(base, settings, progress=progress)
    if base.head_note:
        raise ValueError(f"cannot train '{base.name}': {base.head_note}")
    clf = train_classifier(base, settings, progress=progress)
    return {"head": clf.config.name, "out": clf.path, "metrics": clf.config.metrics}


COMMAND = TrainerCommand(name="train", help="fine-tune a LoRA sentiment head (optionally with a selector in the loop)",
                         settings=TrainSettings, run=run, defaults=_default_names)
